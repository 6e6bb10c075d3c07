"""The ``gnothi`` command line.

Subcommands live one per module in ``gnothi/ui/commands/``; each module defines
``register(subparsers)`` which adds its parser and sets ``func`` (``args -> int``). New
tools add a module there; nothing here changes. Expected problems
(:class:`~gnothi.tools.errors.GnothiError`) print their message and fix (or a JSON object
with ``--json``) and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Options every model-using command shares."""
    p.add_argument("--model", default=None, help="bundled name, local folder, or cached HF id (default: bundled SmolLM2)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps or auto (default: auto)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: float32 on CPU)")
    p.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin/.pt) checkpoints")
    p.add_argument("--trust-remote-code", action="store_true", help="allow running a model repository's own code")


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


def build_parser() -> argparse.ArgumentParser:
    from gnothi import __version__
    from gnothi.ui import commands

    parser = argparse.ArgumentParser(
        prog="gnothi",
        description="Ask a language model about its own insides, and get answers backed by measurements.",
    )
    parser.add_argument("--version", action="version", version=f"gnothi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"gnothi.ui.commands.{mod.name}")
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    from gnothi.tools.errors import GnothiError

    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except GnothiError as e:
        if getattr(args, "json", False):
            print(json.dumps(e.to_dict(), indent=2))
        else:
            print(f"error: {e.message}", file=sys.stderr)
            if e.fix:
                print(f"  fix: {e.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
