"""The LLM client: any OpenAI-compatible endpoint (OpenAI, llama.cpp's server, vLLM, ...).

Configuration comes from arguments or the environment:

* ``GNOTHI_LLM_BASE_URL`` -- e.g. ``http://127.0.0.1:8080/v1`` (no LLM when unset)
* ``GNOTHI_LLM_MODEL`` -- the model name the endpoint expects (default ``local``)
* ``GNOTHI_LLM_API_KEY`` or ``OPENAI_API_KEY`` -- the key (``none`` for local servers)
* ``GNOTHI_LLM_TIMEOUT`` -- seconds per request (default 60)

:meth:`LLMClient.complete` is the plain ``complete(prompt) -> str`` callable the tools'
LLM explainers take (``llm=client.complete`` or ``llm=client``). Every failure becomes an
:class:`~gnothi.tools.errors.LLMError` that says what to check.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from pydantic import BaseModel

from gnothi.tools.errors import LLMError, describe_failure, shorten


class _LLMFail(LLMError):
    """An LLMError that remembers its kind: connect, timeout, status, server or garbage."""

    def __init__(self, message: str, fix: str = "", kind: str = "status"):
        super().__init__(message, fix)
        self.kind = kind


class LLMConfig(BaseModel):
    base_url: str
    model: str = "local"
    api_key: str = "none"
    timeout: float = 60.0
    retries: int = 1  # extra attempts after the first, on connection errors and timeouts
    turn_deadline: float = 120.0  # seconds a turn may spend on LLM calls in all (GNOTHI_TURN_DEADLINE); 0 = none
    max_tokens: int = 512
    temperature: float = 0.0
    planner_mode: str = "json"  # "json" (JSON-schema response_format) or "tools" (tool calling)
    json_style: str = "auto"  # "json_schema" (OpenAI), "json_object" (llama.cpp's server: type json_object + schema), or auto

    @classmethod
    def from_env(cls, **over) -> "LLMConfig | None":
        url = over.pop("base_url", None) or os.environ.get("GNOTHI_LLM_BASE_URL")
        if not url:
            return None
        kw: dict[str, Any] = {
            "base_url": url,
            "model": os.environ.get("GNOTHI_LLM_MODEL") or "local",
            "api_key": os.environ.get("GNOTHI_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none",
        }
        for var, key in (("GNOTHI_LLM_TIMEOUT", "timeout"), ("GNOTHI_TURN_DEADLINE", "turn_deadline")):
            _seconds_from_env(var, key, kw)
        kw.update({k: v for k, v in over.items() if v is not None})
        return cls(**kw)


def _seconds_from_env(var: str, key: str, kw: dict) -> None:
    """``kw[key]`` from environment variable ``var`` (a positive number of seconds), or LLMError."""
    raw = os.environ.get(var)
    if not raw:
        return
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise LLMError(
            f"{var} is {raw!r}, not a number of seconds.",
            f"Set it to a positive number, e.g. {var}=30, or unset it (default {LLMConfig.model_fields[key].default:g}).",
        )
    kw[key] = value


BREAKER_RETRY_S = 60.0  # outside a turn, a failed endpoint is asked again after this long


class LLMClient:
    """A small wrapper over ``openai.OpenAI`` with timeouts, retries and clear errors."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self._client = None
        self.calls = 0
        self.seconds = 0.0
        self.down: str | None = None  # why the endpoint is treated as down for the rest of this turn
        self.down_at = 0.0
        self.deadline: float | None = None  # time.monotonic() by which this turn's calls must end
        self._count_lock = threading.Lock()  # one client may serve several threads (bulk explanations)

    def begin_turn(self, seconds: float | None = None) -> None:
        """A new turn: the endpoint gets a fresh chance, and every call of the turn must end
        within ``seconds`` (default: ``turn_deadline``) of now."""
        self.down = None
        limit = self.config.turn_deadline if seconds is None else seconds
        self.deadline = time.monotonic() + limit if limit and limit > 0 else None

    def end_turn(self) -> None:
        """The turn is over: its deadline no longer applies (a tripped breaker then retries
        after a while, as outside turns)."""
        self.deadline = None

    def reset_breaker(self) -> None:
        """Ask a failed endpoint again from the next call (a bulk run retrying a unit after a backoff)."""
        self.down = None

    @property
    def name(self) -> str:
        return f"{self.config.model} @ {self.config.base_url}"

    @property
    def identity(self) -> str:
        """What decides this client's answers (endpoint, model, sampling): the key of cached explanations."""
        c = self.config
        return f"{c.model} @ {str(c.base_url).rstrip('/')} t={c.temperature:g} max_tokens={c.max_tokens}"

    def describe(self) -> dict:
        return {"type": "openai-compatible", "base_url": self.config.base_url, "model": self.config.model}

    def _openai(self):
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.config.base_url, api_key=self.config.api_key, timeout=self.config.timeout, max_retries=0)
        return self._client

    def chat(self, messages: list[dict], **kw) -> Any:
        """One chat completion (the raw ``ChatCompletion``), retried on connection errors and timeouts.

        Circuit breaker: once the endpoint has failed to answer (unreachable, or hanging past
        the timeout) it is not asked again in this turn, so a turn that would call it hundreds of times
        (explaining and simulating many records) costs one timeout, not hundreds; the callers
        fall back to their offline methods. No call outlives the turn's deadline."""
        import openai

        if self.down and self.deadline is None and time.monotonic() - self.down_at > BREAKER_RETRY_S:
            self.down = None  # outside a turn (evals, scripts): try the endpoint again after a while
        if self.down:
            raise _LLMFail(f"The LLM endpoint {self.config.base_url} is not asked again in this turn: {self.down}.",
                           "Start or fix the server; until then the offline methods answer.", "down")
        last: Exception | None = None
        for attempt in range(self.config.retries + 1):
            t0 = time.perf_counter()
            timeout = self.config.timeout
            if self.deadline is not None:
                timeout = min(timeout, self.deadline - time.monotonic())
                if timeout <= 0.05:
                    self.down, self.down_at = f"the turn's deadline of {self.config.turn_deadline:g} s has passed", time.monotonic()
                    raise _LLMFail(f"The turn's deadline ({self.config.turn_deadline:g} s) has passed; the LLM endpoint is not asked again.",
                                   "Raise GNOTHI_TURN_DEADLINE or use a faster endpoint; the offline methods answered the rest.", "deadline")
            try:
                r = self._openai().with_options(timeout=timeout).chat.completions.create(
                    model=self.config.model,
                    messages=messages,
                    max_tokens=kw.pop("max_tokens", self.config.max_tokens),
                    temperature=kw.pop("temperature", self.config.temperature),
                    **kw,
                )
                with self._count_lock:
                    self.calls += 1
                    self.seconds += time.perf_counter() - t0
                if not getattr(r, "choices", None):
                    raise _LLMFail(f"The LLM endpoint {self.config.base_url} answered without any choices.", "Check the server and model name.", "garbage")
                return r
            except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, openai.RateLimitError) as e:
                with self._count_lock:
                    self.seconds += time.perf_counter() - t0
                last = e
                if attempt < self.config.retries:
                    time.sleep(min(2.0, 0.25 * (2**attempt)))
                    continue
            except openai.APIStatusError as e:
                raise _LLMFail(
                    f"The LLM endpoint {self.config.base_url} refused the request (HTTP {e.status_code}: {shorten(str(e), 160)}).",
                    "Check GNOTHI_LLM_MODEL and the API key, or run without an LLM.",
                    "status",
                ) from None
            except LLMError:
                raise
            except Exception as e:  # garbage that the client cannot parse, and the like
                raise _LLMFail(
                    f"The LLM endpoint {self.config.base_url} sent an unusable answer ({describe_failure(e, 160)}).",
                    "Check that GNOTHI_LLM_BASE_URL points at an OpenAI-compatible /v1 endpoint.",
                    "garbage",
                ) from None
        timeout = last is not None and "Timeout" in type(last).__name__
        server = last is not None and type(last).__name__ in ("InternalServerError", "RateLimitError")
        what = ("timed out" if timeout else "was rate-limited" if type(last).__name__ == "RateLimitError"
                else "failed with a server error" if server else "could not be reached")
        if not server:  # unreachable or hanging; a server that answers with errors is still up (another format may work)
            self.down, self.down_at = f"it {what} ({type(last).__name__})", time.monotonic()
        raise _LLMFail(
            f"The LLM endpoint {self.config.base_url} {what} after {self.config.retries + 1} attempt(s) ({type(last).__name__}).",
            "Start the server or fix GNOTHI_LLM_BASE_URL; or run without an LLM (the offline planner and writer are the default).",
            "timeout" if timeout else "server" if server else "connect",
        )

    def complete(self, prompt: str, system: str | None = None, **kw) -> str:
        """Plain text completion of one user prompt."""
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        r = self.chat(msgs, **kw)
        return r.choices[0].message.content or ""

    __call__ = complete

    def complete_json(self, messages: list[dict], schema: dict, name: str = "answer", **kw) -> dict:
        """A completion constrained by a JSON schema; the parsed object (LLMError if it is not JSON)."""
        styles = ["json_schema", "json_object"] if self.config.json_style == "auto" else [self.config.json_style]
        r = None
        for i, style in enumerate(styles):
            fmt = ({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}} if style == "json_schema"
                   else {"type": "json_object", "schema": schema})
            try:
                r = self.chat(messages, response_format=fmt, **dict(kw))
                if self.config.json_style == "auto":
                    self.config.json_style = style  # remember what this endpoint takes
                break
            except _LLMFail as e:
                if i + 1 < len(styles) and e.kind in ("status", "server"):
                    continue  # e.g. llama.cpp's server rejects json_schema but takes json_object + schema
                raise
        assert r is not None  # every style either answered or raised
        text = r.choices[0].message.content or ""
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            raise LLMError(f"The LLM did not answer with JSON (got {text[:80]!r}).", "Use a model that supports JSON-schema output.") from None
        if not isinstance(obj, dict):
            raise LLMError(f"The LLM answered with JSON that is not an object ({type(obj).__name__}).", "Use a model that supports JSON-schema output.")
        return obj


def make_llm(llm: Any) -> LLMClient | None:
    """Normalize what callers pass as ``llm``: None, "env", a URL, an LLMConfig, a dict, or a client."""
    if llm is None or llm is False:
        return None
    if isinstance(llm, LLMClient):
        return llm
    if isinstance(llm, LLMConfig):
        return LLMClient(llm)
    if isinstance(llm, dict):
        return LLMClient(LLMConfig(**llm))
    if isinstance(llm, str):
        if llm == "env":
            cfg = LLMConfig.from_env()
            return LLMClient(cfg) if cfg else None
        return LLMClient(LLMConfig.from_env(base_url=llm) or LLMConfig(base_url=llm))
    raise TypeError(f"llm must be None, 'env', a base URL, an LLMConfig or an LLMClient, not {type(llm).__name__}")
