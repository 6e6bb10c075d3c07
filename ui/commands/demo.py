"""`gnothi demo`: the offline main job until the chat UI lands: describe the default model
and answer one question about it with a measurement."""

from __future__ import annotations

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser("demo", help="describe the model and answer one question about it, offline")
    add_model_args(p)
    p.add_argument("--question", default="What is the capital of France?")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from gnothi.tools.tokens import label
    from gnothi.ui.cli_common import handle_from_args

    h = handle_from_args(args)
    d = h.describe()
    print(f"Model: {d['name']} ({d['architecture']}, {d['n_params'] / 1e6:.1f}M parameters) on {d['device']}")
    print(f"  {d['n_layers']} layers, d_model {d['d_model']}, {d['d_mlp']} MLP neurons per layer, {d['n_heads']} heads")
    answer = h.generate(args.question, max_new_tokens=24)
    print(f"\nQ: {args.question}\nA: {answer}")
    # one measurement: at which layer does the answer's first token become the top prediction
    # (logit lens over the residual stream at the last prompt position)
    prompt = h.chat_prompt(args.question)
    toks = h.to_tokens(prompt, prepend_bos=False)
    first = h.tokenizer(answer, add_special_tokens=False)["input_ids"][:1]
    names = [h.hook_name("resid_post", l) for l in range(h.n_layers)]
    _, cache = h.run_with_cache(toks, names)
    ranks = []
    with torch.inference_mode():
        for n in names:
            logits = h.unembed(h.final_norm(cache[n][:, -1:, :]))[0, -1]
            if first:
                ranks.append(int((logits > logits[first[0]]).sum().item()) + 1)
    if first:
        tok = label(h.tokenizer, first[0])
        top1 = next((l for l, r in enumerate(ranks) if r == 1), None)
        print(f"\nLogit lens: rank of the answer's first token {tok!r} at the last prompt position, by layer:")
        print("  " + " ".join(f"L{l}:{r}" for l, r in enumerate(ranks)))
        if top1 is not None:
            print(f"  It is the top prediction from layer {top1} on.")
    return 0
