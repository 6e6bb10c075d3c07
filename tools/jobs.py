"""Long first-use work in the background of a long-lived process (the chat server).

A chat turn that would otherwise block for minutes (training the hallucination detector
on first use) starts the work here instead, answers with what it can now, and says how
far the work has got; the next turn that needs it finds it done. One job per key runs at
a time; a job that failed is reported once and may be started again.

Background work is on when ``GNOTHI_BACKGROUND=1`` (``gnothi serve`` sets it unless
``--no-background``); a one-shot command (``gnothi ask``) waits for the work instead,
since its process ends with the turn.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import env_flag
from .errors import describe_failure


def background_enabled() -> bool:
    return env_flag("GNOTHI_BACKGROUND", False)


@dataclass
class Job:
    key: str
    what: str  # "training the hallucination detector for smollm2-135m-instruct"
    estimate_s: float
    started: float = field(default_factory=time.time)
    ended: float | None = None
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.ended is None

    def status(self) -> str:
        """One sentence for a reply: how far the job is, or how it ended."""
        if self.error is not None:
            return f"{self.what[0].upper()}{self.what[1:]} failed in the background: {self.error}"
        if self.ended is not None:
            return f"{self.what[0].upper()}{self.what[1:]} finished in the background after {self.ended - self.started:.0f} s."
        spent = time.time() - self.started
        left = self.estimate_s - spent
        eta = f"about {_minutes(left)} left" if left > 30 else "it should finish any moment"
        return f"{self.what[0].upper()}{self.what[1:]} is running in the background (started {spent:.0f} s ago; {eta})."


def _minutes(s: float) -> str:
    m = max(1, round(s / 60))
    return f"{m} minute{'s' if m != 1 else ''}"


_JOBS: dict[str, Job] = {}
_LOCK = threading.Lock()


def get(key: str) -> Job | None:
    with _LOCK:
        return _JOBS.get(key)


def start(key: str, what: str, fn: Callable[[], Any], estimate_s: float) -> Job:
    """The running job under ``key``, or a new one running ``fn`` (also when the last one
    failed or finished). What ``fn`` returns is not kept: it leaves its work on disk."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and job.running:
            return job
        job = _JOBS[key] = Job(key=key, what=what, estimate_s=float(estimate_s))

    def work():
        try:
            fn()
        except BaseException as e:  # reported by the next turn that asks, never raised in a thread
            job.error = describe_failure(e)
        finally:
            job.ended = time.time()

    job.thread = threading.Thread(target=work, name=f"gnothi-job:{key}", daemon=True)
    job.thread.start()
    return job
