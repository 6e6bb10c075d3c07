"""Evaluation suites: a registry that refuses duplicates.

A suite is a function ``run(ctx: SuiteContext) -> SuiteResult`` in a module
``gnothi/evals/suite_<name>.py``, registered with ``@suite("<name>")``. ``gnothi eval``
imports every ``suite_*`` module, runs the suites asked for, and writes the report.
Every metric a suite reports has its baseline (control) beside it in ``baselines`` under
the same key.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from gnothi.tools.results import Figure


@dataclass
class SuiteContext:
    model: str | None = None  # model name for get_handle (None = bundled default)
    llm: Any = None  # an LLM client/callable when configured, else None
    out_dir: Path = Path("eval-out")
    quick: bool = True  # quick tier (minutes, run by the test command) vs full tier
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    model_handle: Any = None  # a ready ModelHandle (tests pass a tiny one); else loaded by name

    def handle(self):
        if self.model_handle is not None:
            return self.model_handle
        from gnothi.tools.model import get_handle

        return get_handle(self.model)


class SuiteResult(BaseModel):
    suite: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    baselines: dict[str, Any] = Field(default_factory=dict)  # same keys as metrics: the control value
    tables: list[dict[str, Any]] = Field(default_factory=list)  # {"title": str, "columns": [...], "rows": [[...]]}
    figures: list[Figure] = Field(default_factory=list)
    passed: bool | None = None  # a suite with a checked answer says whether it held
    notes: list[str] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0


class SuiteSkipped(Exception):
    """Raised by a suite that has nothing to measure here (no LLM configured, no SAE for this model, no usable
    fact pairs for this tokenizer...). A suite imports its tools directly: a missing tool fails at import time.

    The runner records the suite as skipped with this reason; it never invents numbers.
    """


SuiteFn = Callable[[SuiteContext], SuiteResult]
SUITES: dict[str, SuiteFn] = {}


def suite(name: str) -> Callable[[SuiteFn], SuiteFn]:
    def deco(fn: SuiteFn) -> SuiteFn:
        if name in SUITES and SUITES[name] is not fn:
            raise ValueError(f"evaluation suite {name!r} is registered twice")
        SUITES[name] = fn
        return fn

    return deco


def discover() -> dict[str, SuiteFn]:
    """Import every ``gnothi.evals.suite_*`` module and return the registry."""
    import gnothi.evals as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name.startswith("suite_"):
            importlib.import_module(f"gnothi.evals.{m.name}")
    return SUITES
