"""`gnothi hallucination`: is the model making this up?

    gnothi hallucination "What is the capital of Australia?"
    gnothi hallucination "Who wrote Walden?" --answer "Walden was written by Emerson." --json
    gnothi hallucination "Where was she born?" --context "Ada Lovelace was born in London."
    gnothi hallucination --eval --json        # retrain + held-out AUROC (same as `gnothi eval hallucination`)

The JSON holds ``answer``, ``risk`` (0 to 1), ``signals`` (each with its value, the log-odds
it added, its held-out AUROC) and ``detector`` ("trained" or "fallback").
"""

from __future__ import annotations

import sys

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser(
        "hallucination",
        help="answer a question and say how likely the answer is made up, from the model's internals",
        description="Run the model on QUESTION (or score --answer) and report a calibrated hallucination risk "
        "with the internal signals behind it. The first use per model trains the detector on the built-in "
        "fact table (minutes on a CPU) unless --no-train is given.",
    )
    p.add_argument("question", nargs="?", default=None, help="the question to put to the model")
    p.add_argument("--answer", default=None, help="score this answer instead of the model's own")
    p.add_argument("--context", default=None, help="text put before the question (e.g. a passage the question is about)")
    p.add_argument("--context-file", default=None, help="read the context from this file")
    p.add_argument("--no-train", action="store_true", help="never train: without a saved detector, use uncertainty alone")
    p.add_argument("--retrain", action="store_true", help="train the detector again now (whole fact table) before answering; alone, train it ahead of the first question")
    p.add_argument("--eval", action="store_true", help="retrain and report held-out AUROC per signal (like `gnothi eval hallucination --full`)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools import hallucination as H
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import handle_from_args, print_json

    context = args.context
    if args.context_file:
        try:
            with open(args.context_file, encoding="utf-8") as f:
                context = f.read()
        except OSError as e:
            raise InputError(f"Cannot read the context file {args.context_file!r} ({e.strerror}).", "Check the path.") from None
    if not (args.eval or args.retrain) and (args.question is None or not args.question.strip()):
        raise InputError("The question is empty.", 'Ask a question, e.g. gnothi hallucination "What is the capital of Australia?"')
    h = handle_from_args(args)
    if args.eval or args.retrain:
        full = args.eval  # the evaluation adds the transfer sets and the text-only controls; a retrain needs neither
        _, ev = H.train_and_evaluate(h, progress=True, save=True, transfer=full, controls=full)
        if args.eval:
            if args.json:
                print_json(ev)
            else:
                _print_eval(ev)
            return 0
        if args.question is None or not args.question.strip():  # `--retrain` alone: train ahead of the first question
            if args.json:
                print_json({"trained": True, "heldout_auroc": ev.auroc, "saved_to": str(H.detector_dir(h.name))})
            else:
                print(f"Trained the hallucination detector for {h.name}: held-out AUROC {ev.auroc['combined']:.3f}; "
                      f"saved to {H.detector_dir(h.name)}.")
            return 0
    rep = H.detect(h, args.question, answer=args.answer, context=context, train=not args.no_train, progress=True)
    if args.json:
        d = rep.model_dump(mode="json")
        print_json(d)
        return 0
    print(f"Q: {rep.question}")
    print(f"A: {rep.answer}" + ("  (given)" if rep.answer_source == "given" else ""))
    print(f"\nRisk that this is wrong or made up: {rep.risk:.2f} ({rep.level})  [{_how(rep)}]")
    if rep.drivers:
        print("What drove it:")
        for driver in rep.drivers:
            print(f"  - {driver}")
    print("\nSignals:")
    for k, v in rep.signals.items():
        extra = f"  adds {v.contribution:+.2f} log-odds" if v.contribution is not None else ""
        au = f"  (held-out AUROC alone {v.heldout_auroc:.2f})" if v.heldout_auroc is not None else ""
        print(f"  {k:<18} {v.value:>8.3f}{extra}{au}")
    for w in rep.warnings:
        print(f"note: {w}", file=sys.stderr)
    return 0


def _how(rep) -> str:
    if rep.detector == "fallback":
        return "uncertainty-only fallback, not calibrated"
    au = rep.detector_info.get("heldout_auroc_combined")
    src = {"loaded": "saved detector", "trained": "detector trained just now"}.get(rep.detector_how, rep.detector_how)
    return f"{src}, held-out AUROC {au:.2f}" if au is not None else src


def _print_eval(ev) -> None:
    print(f"Hallucination detector for {ev.model}: {ev.n_train} training / {ev.n_test} held-out answers (split by entity)")
    print(f"  {ev.test_positive_rate:.0%} of held-out answers are wrong or made up")
    print("  held-out AUROC (chance 0.5):")
    for k, v in ev.auroc.items():
        ci = ev.auroc_ci.get(k)
        print(f"    {k:<22} {v:.3f}" + (f"  [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
    print(f"  calibration: ECE {ev.ece:.3f}, Brier {ev.brier:.3f}")
    print(f"  probe layers: question {ev.layers.get('probe_question')}, answer {ev.layers.get('probe_answer')}")
    if ev.transfer:
        print("  transfer (train on the other families, test on this one): combined / perplexity AUROC")
        for r in ev.transfer:
            if "auroc_combined" in r:
                print(f"    {r['test_family']:<18} n={r['n']:<4} {r['auroc_combined']:.3f} / {r['auroc_perplexity']:.3f}")
            else:
                print(f"    {r['test_family']:<18} n={r['n']:<4} {r.get('note', '')}")
    if ev.saved_to:
        print(f"  saved to {ev.saved_to}")
