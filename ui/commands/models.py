"""`gnothi models`: what can be loaded here, and how to add more."""

from __future__ import annotations

HOW_TO_ADD = """How to add a model:
  * a local folder saved with save_pretrained (config.json, *.safetensors, tokenizer files):
      gnothi info --model /path/to/folder
  * a Hugging Face id already in the local HF cache (gnothi never downloads):
      huggingface-cli download Qwen/Qwen2.5-0.5B   # on a machine with network
      gnothi info --model Qwen/Qwen2.5-0.5B
  Any architecture TransformerLens 3.9's TransformerBridge has an adapter for can be loaded
  (`gnothi models --json` lists all of them). Pickle checkpoints need --allow-pickle;
  repositories with their own code need --trust-remote-code."""


def register(sub):
    p = sub.add_parser("models", help="list models that can be loaded, and how to add more")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools.model import list_models
    from gnothi.ui.cli_common import print_json

    from gnothi.tools.adapter import TESTED, bridge_architectures

    models = list_models()
    if args.json:
        print_json({"models": models, "tested_architectures": TESTED, "bridge_architectures": bridge_architectures(), "how_to_add": HOW_TO_ADD})
        return 0
    print("Models gnothi can load here:")
    for m in models:
        flag = "ok " if m["available"] else "-- "
        extra = ""
        if m["kind"] == "bundled":
            extra = " (converted, cached)" if m.get("converted") else " (converted on first use, ~1 min)"
            if not m["available"]:
                extra = f" (not installed: {m['install']})"
        print(f"  {flag}{m['name']:<28} {m['kind']:<9} {m['description']}{extra}")
    print()
    print("Architectures tested here (every tool's core checks on the real model; the hook-point")
    print("and patching identities on the tiny random one):")
    for arch, how in TESTED.items():
        print(f"  {arch:<22} {how}")
    n = len(bridge_architectures())
    print(f"The bridge claims {n} architectures in all; the others are untested here.")
    print()
    print(HOW_TO_ADD)
    return 0
