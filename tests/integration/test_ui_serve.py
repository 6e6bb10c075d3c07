"""`gnothi serve` as a user runs it: a real process that answers HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gnothi_serve_starts_and_stops(tmp_path):
    port = _free_port()
    gnothi = Path(sys.executable).with_name("gnothi")
    cmd = [str(gnothi)] if gnothi.exists() else [sys.executable, "-m", "gnothi.ui.cli"]
    env = dict(os.environ, GNOTHI_CACHE_DIR=os.environ.get("GNOTHI_CACHE_DIR", ""), GRADIO_ANALYTICS_ENABLED="False")
    if not env["GNOTHI_CACHE_DIR"]:
        env.pop("GNOTHI_CACHE_DIR")
    proc = subprocess.Popen(cmd + ["serve", "--no-preload", "--port", str(port), "--db", str(tmp_path / "c.sqlite")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        body, deadline = "", time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    body = r.read().decode("utf-8", "replace")
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(1)
        assert proc.poll() is None, proc.stdout.read()
        assert "gnothi" in body.lower()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as r:
            cfg = r.read().decode()
        assert "gn-chat" in cfg and "gn-llm-test" in cfg
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = proc.stdout.read()
    assert f"http://127.0.0.1:{port}" in out
