"""What every ``gnothi`` subcommand shares: the model options, loading the model they name,
and printing JSON, reports and plots. The subcommands (``gnothi/ui/commands/``) import
these from here; :mod:`gnothi.ui.cli` imports the subcommands, never the other way round."""

from __future__ import annotations

import argparse
import json


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Options every model-using command shares."""
    p.add_argument("--model", default=None, help="bundled name, local folder, or cached HF id (default: bundled SmolLM2)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps or auto (default: auto)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: float32 on CPU)")
    p.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin/.pt) checkpoints")
    p.add_argument("--trust-remote-code", action="store_true", help="allow running a model repository's own code")


def add_llm_args(p: argparse.ArgumentParser, what: str = "LLM explainers and planners") -> None:
    """The options that name an OpenAI-compatible endpoint (else the GNOTHI_LLM_* environment)."""
    p.add_argument("--llm-base-url", default=None, help=f"OpenAI-compatible endpoint for {what} (default: $GNOTHI_LLM_BASE_URL; none = offline)")
    p.add_argument("--llm-model", default=None, help="model name at the endpoint (default: $GNOTHI_LLM_MODEL or 'local')")
    p.add_argument("--llm-timeout", type=float, default=None, help="seconds per LLM request (default: $GNOTHI_LLM_TIMEOUT or 60)")


def llm_from_args(args, **over):
    """The one LLM client (retries, circuit breaker, clear errors) the options name, or None."""
    from gnothi.agents.llm import LLMClient, LLMConfig

    cfg = LLMConfig.from_env(base_url=getattr(args, "llm_base_url", None), model=getattr(args, "llm_model", None),
                             timeout=getattr(args, "llm_timeout", None), **over)
    return LLMClient(cfg) if cfg else None


def handle_from_args(args):
    from gnothi.tools.model import get_handle

    kw = {}
    if getattr(args, "allow_pickle", False):
        kw["allow_pickle"] = True
    if getattr(args, "trust_remote_code", False):
        kw["trust_remote_code"] = True
    return get_handle(getattr(args, "model", None), device=getattr(args, "device", None), dtype=getattr(args, "dtype", None), **kw)


def print_json(obj) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def write_plot(args, tool_result) -> None:
    """``--plot PNG``: the result's first figure as a PNG file."""
    if getattr(args, "plot", None) and tool_result.figures:
        from pathlib import Path

        from gnothi.tools.results import render_png

        Path(args.plot).write_bytes(render_png(tool_result.figures[0]))


def print_report(report, tool_result, **extra) -> None:
    """``--json``: the report as one JSON object, with the result's summary (and ``extra`` fields)."""
    d = report.model_dump(mode="json") if hasattr(report, "model_dump") else dict(report)
    d["summary"] = tool_result.summary
    d.update(extra)
    print_json(d)
