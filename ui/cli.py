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
