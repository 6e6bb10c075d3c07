"""`gnothi sae ...`: train, index, inspect and search sparse-autoencoder features.

    gnothi sae train --layer 6            # TopK SAE on the residual stream, saved in SAELens format
    gnothi sae index                      # explain + score every feature (enables search and pages)
    gnothi sae search "French cities"     # features by meaning
    gnothi sae features "The Eiffel Tower is in Paris" --token Paris
    gnothi sae contrast --a "..." --a "..." --b "..." --b "..."
    gnothi sae feature 123                # one feature's page
    gnothi sae list | info                # SAEs of this model, and their metrics
"""

from __future__ import annotations

import sys

from gnothi.ui.cli_common import add_model_args


def _common(p, sae=True):
    add_model_args(p)
    if sae:
        p.add_argument("--sae", default=None, help="SAE folder (SAELens format) or name under the model's saes/ (default: the newest)")
        p.add_argument("--layer", type=int, default=None, help="with no --sae: use the newest SAE at this layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(sub):
    p = sub.add_parser("sae", help="sparse autoencoders: train, index, search features, contrast texts")
    s = p.add_subparsers(dest="sae_command", metavar="SUBCOMMAND")

    t = s.add_parser("train", help="train a TopK SAE on one layer's residual stream (CPU, minutes) and save it")
    _common(t, sae=False)
    t.add_argument("--layer", type=int, default=None, help="layer whose activations the SAE reads")
    t.add_argument("--layers", default=None, help="one SAE per layer instead: e.g. '0-29', 'all', '2,6,10'")
    t.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="with --layers: train the layers as Ray tasks (alone: a cluster on this machine; 'auto' or ray://HOST:10001)")
    t.add_argument("--ray-workers", type=int, default=None, metavar="N", help="Ray workers (default: one per GPU, else per CPU)")
    t.add_argument("--hook", default="resid_post", help="hook kind: resid_post (default), resid_mid, resid_pre, mlp_out, attn_out")
    t.add_argument("--tokens", type=int, default=None, help="training tokens (default 120000)")
    t.add_argument("--expansion", type=int, default=4, help="features per model dimension (default 4)")
    t.add_argument("-k", "--k", dest="k", type=int, default=32, help="active features per token (default 32)")
    t.add_argument("--epochs", type=int, default=3, help="passes over the cached activations (default 3)")
    t.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for explained variance, L0, dead fraction")
    t.add_argument("--ce-tokens", type=int, default=1024, help="held-out tokens for CE-loss recovered (3 full passes)")
    t.add_argument("--corpus", default="default", help="'default', a .txt/.jsonl file or a folder")
    t.add_argument("--name", default=None, help="folder name under the model's saes/ (default e.g. resid_post-L6-topk32-2304)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--index", action="store_true", help="then index the features (explanations for search and pages)")
    t.add_argument("--index-tokens", type=int, default=None, help="tokens for the feature index (default 32768)")
    t.set_defaults(func=run_train)

    i = s.add_parser("index", help="build the feature store and explain + score every feature (needed by search and pages)")
    _common(i)
    i.add_argument("--tokens", type=int, default=None, help="corpus tokens to stream (default 32768)")
    i.add_argument("--corpus", default=None, help="'default', a .txt/.jsonl file or a folder")
    i.add_argument("--force", action="store_true", help="rebuild even if an index exists")
    i.set_defaults(func=run_index)

    q = s.add_parser("search", help="features whose explanation matches a query by meaning (MiniLM)")
    _common(q)
    q.add_argument("query", help="what to look for, in words")
    q.add_argument("-k", type=int, default=10, help="how many features (default 10)")
    q.add_argument("--min-score", type=float, default=None, help="drop features whose explanation scored below this")
    q.set_defaults(func=run_search)

    f = s.add_parser("features", help="which features fire on a text, or on one token of it")
    _common(f)
    f.add_argument("text", help="the text")
    f.add_argument("--token", default=None, help="a token of the text (its string, or its position from 0)")
    f.add_argument("-k", type=int, default=10, help="how many features (default 10)")
    f.set_defaults(func=run_features)

    c = s.add_parser("contrast", help="features that fire more on one set of texts than on another")
    _common(c)
    c.add_argument("--a", action="append", default=[], metavar="TEXT", help="a text of set A (repeat)")
    c.add_argument("--b", action="append", default=[], metavar="TEXT", help="a text of set B (repeat)")
    c.add_argument("--a-file", default=None, help="set A: one text per line")
    c.add_argument("--b-file", default=None, help="set B: one text per line")
    c.add_argument("--label-a", default="set A")
    c.add_argument("--label-b", default="set B")
    c.add_argument("--reduce", default="max", choices=["max", "mean"], help="per text: max (default) or mean activation")
    c.add_argument("-k", type=int, default=10)
    c.set_defaults(func=run_contrast)

    g = s.add_parser("feature", help="one feature's page: top contexts, explanation and its score, output tokens")
    _common(g)
    g.add_argument("feature", type=int, help="feature index")
    g.add_argument("--no-modes", action="store_true", help="skip the polysemantic mode analysis")
    g.add_argument("--contexts", type=int, default=10)
    g.set_defaults(func=run_feature)

    ls = s.add_parser("list", help="SAEs of this model, their metrics and whether they are indexed")
    add_model_args(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)

    inf = s.add_parser("info", help="describe one SAE (shape, hook point, training metrics)")
    _common(inf)
    inf.set_defaults(func=run_info)

    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _warn(msgs):
    for w in msgs:
        print(f"  warning: {w}", file=sys.stderr)


def _sae(args, h):
    from gnothi.tools.sae import resolve_sae

    return resolve_sae(h, args.sae, layer=args.layer)


# ---------------------------------------------------------------------------- train


def run_train(args) -> int:
    from gnothi.tools.sae import human_seconds
    from gnothi.tools.sae_train import TrainConfig, estimate_train_seconds, train_sae
    from gnothi.ui.cli_common import handle_from_args, print_json

    from gnothi.tools.errors import InputError

    if (args.layer is None) == (args.layers is None):
        raise InputError("Say which layer the SAE reads: --layer L, or --layers for one SAE per layer.",
                         "For example: gnothi sae train --layer 6, or gnothi sae train --layers 0-29 --ray.")
    if args.ray is not None and args.layers is None:
        raise InputError("--ray trains several layers at once.", "Add --layers (e.g. --layers 0-29), or drop --ray.")
    if args.ray_workers is not None and (args.ray is None or args.ray_workers < 1):
        raise InputError("--ray-workers needs --ray and a number of 1 or more.", "For example: --layers 0-29 --ray --ray-workers 4.")
    kw = dict(layer=args.layer if args.layer is not None else 0, hook=args.hook, expansion=args.expansion, k=args.k, epochs=args.epochs,
              eval_tokens=args.eval_tokens, ce_tokens=args.ce_tokens, corpus=args.corpus, name=args.name, seed=args.seed)
    if args.tokens is not None:
        kw["n_tokens"] = args.tokens
    from pydantic import ValidationError

    try:
        cfg = TrainConfig(**kw)
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(f"Bad training setting {'.'.join(map(str, err['loc']))}: {err['msg']}.", "See `gnothi sae train --help`.") from None
    h = handle_from_args(args)
    from gnothi.tools.errors import check_range

    if args.layers is not None:
        return _train_layers(args, h, cfg)
    check_range("layer", args.layer, h.n_layers)
    est = estimate_train_seconds(h, cfg)
    print(f"[gnothi] training a TopK SAE at {h.hook_name(cfg.hook, cfg.layer)}: {cfg.n_tokens:,} tokens, "
          f"{cfg.expansion * h.d_model} features, k={cfg.k}; about {human_seconds(est)} here", file=sys.stderr)
    res = train_sae(h, cfg, progress=True)
    idx_rep = None
    if args.index:
        idx_rep = _index(h, res.sae, args.index_tokens, None, False)
    else:
        from gnothi.tools.features import estimate_index_seconds, index_command

        res.next_step = (f"To search these features by meaning and open feature pages, index them: "
                         f"`{index_command(res.sae)}` (about {human_seconds(estimate_index_seconds(h, res.sae))}).")
    if args.json:
        d = res.model_dump(mode="json")
        if idx_rep is not None:
            d["index"] = idx_rep.model_dump(mode="json")
        print_json(d)
        return 0
    m = res.metrics
    print(res.to_tool_result(h).summary)
    print(f"  saved: {res.path}")
    print(f"  explained variance {res.explained_variance:.3f} (before training {res.explained_variance_before:.3f}), "
          f"L0 {res.l0:.1f}, dead {res.dead_fraction:.1%} (last epoch), {m.dead_fraction_eval:.1%} silent on held-out tokens")
    if m.ce_loss_recovered is not None:
        print(f"  CE loss: clean {m.ce_clean:.3f}, with SAE {m.ce_sae:.3f}, zero-ablated {m.ce_zero:.3f} "
              f"-> {m.ce_loss_recovered:.1%} recovered ({m.n_ce_tokens} predictions)")
    if m.ce_loss_recovered_saelens is not None:
        print(f"  CE loss recovered in sae-lens's convention (every position zero-ablated, BOS included; "
              f"predictions from BOS not counted): {m.ce_loss_recovered_saelens:.1%}")
    t = res.timings
    print(f"  time: reading activations {t['collect_s']:.0f} s ({t['collect_tokens_per_s']:.0f} tokens/s), "
          f"training {t['train_s']:.0f} s, evaluation {t['eval_s']:.0f} s")
    if idx_rep is not None:
        print(idx_rep.to_tool_result(h).summary)
    elif res.next_step:
        print(f"  next: {res.next_step}")
    return 0


def _train_layers(args, h, cfg) -> int:
    """``--layers``: one SAE per layer, here one after another or as Ray tasks."""

    from gnothi.tools.sae import human_seconds
    from gnothi.tools.sae_train import estimate_train_seconds, train_saes
    from gnothi.tools.units import parse_layers
    from gnothi.ui.cli_common import print_json

    layers = parse_layers(args.layers, h.n_layers)
    est = sum(estimate_train_seconds(h, cfg.model_copy(update={"layer": l})) for l in layers)
    print(f"[gnothi] training {len(layers)} TopK SAEs ({cfg.n_tokens:,} tokens each) at layers {args.layers}: about "
          f"{human_seconds(est)} here one after another" + (", shared among the Ray workers" if args.ray else ""), file=sys.stderr)
    factory = None
    if args.ray is not None:
        from gnothi.tools.cluster import model_factory

        factory = model_factory(getattr(args, "model", None), getattr(args, "device", None), getattr(args, "dtype", None))
    results = train_saes(h, cfg, layers, progress=True, ray=args.ray, ray_workers=args.ray_workers, factory=factory)
    if args.json:
        print_json([r.model_dump(mode="json") for r in results])
        return 0
    for r in results:
        ce = f", CE loss recovered {r.ce_loss_recovered:.1%}" if r.ce_loss_recovered is not None else ""
        print(f"layer {r.layer}: {r.name}: explained variance {r.explained_variance:.3f}, L0 {r.l0:.1f}{ce}  ({r.path})")
    return 0


# ---------------------------------------------------------------------------- index


def _index(h, sae, tokens, corpus, force):
    from gnothi.tools.features import DEFAULT_INDEX_TOKENS, estimate_index_seconds, index_features
    from gnothi.tools.sae import human_seconds

    n = tokens or DEFAULT_INDEX_TOKENS
    print(f"[gnothi] indexing {sae.d_sae} features of {sae.name} over {n:,} tokens "
          f"(about {human_seconds(estimate_index_seconds(h, sae, n))})", file=sys.stderr)
    return index_features(h, sae, n_tokens=n, corpus=corpus, force=force, progress=True)


def run_index(args) -> int:
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    sae = _sae(args, h)
    rep = _index(h, sae, args.tokens, args.corpus, args.force)
    if args.json:
        print_json(rep)
        return 0
    print(rep.to_tool_result(h).summary)
    print(f"  store {rep.store_seconds:.0f} s ({'reused' if rep.reused_store else f'{rep.tokens_per_second:.0f} tokens/s'}), "
          f"explanations {rep.explain_seconds:.0f} s; saved in {rep.path}")
    return 0


# ---------------------------------------------------------------------------- questions


def run_search(args) -> int:
    from gnothi.tools.features import search_features
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    res = search_features(h, args.query, _sae(args, h), k=args.k, min_score=args.min_score)
    if args.json:
        print_json(res)
        return 0
    print(f"Features of {res.sae} (layer {res.layer}) closest in meaning to {args.query!r} ({res.n_searched} searched):")
    for f in res.features:
        sc = f"score {f.score:.2f}" if f.score is not None else "score n/a"
        print(f"  #{f.id:<6} similarity {f.similarity:.3f}  ({sc}, fires on {f.frequency:.2%} of tokens)  {f.explanation}")
    _warn(res.warnings)
    return 0


def run_features(args) -> int:
    from gnothi.tools.features import features_on_text
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    tok = args.token
    if tok is not None and tok.lstrip("-").isdigit():
        tok = int(tok)
    res = features_on_text(h, args.text, _sae(args, h), token=tok, k=args.k)
    if args.json:
        print_json(res)
        return 0
    print(res.to_tool_result(h).summary)
    print(f"  {res.mean_active_per_token:.1f} features active per token; the SAE explains {res.explained_variance:.1%} of this text's activation variance")
    for f in res.features:
        ex = f"  {f.explanation}" if f.explanation else ""
        print(f"  #{f.id:<6} {f.activation:8.3g} at {f.token!r} (token {f.position}){ex}")
    _warn(res.warnings)
    return 0


def _read_lines(path):
    from pathlib import Path

    from gnothi.tools.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"No such file: {path}.", "Give a text file with one text per line.")
    return [line.strip() for line in p.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def run_contrast(args) -> int:
    from gnothi.tools.features import contrast_features
    from gnothi.ui.cli_common import handle_from_args, print_json

    a = list(args.a) + (_read_lines(args.a_file) if args.a_file else [])
    b = list(args.b) + (_read_lines(args.b_file) if args.b_file else [])
    h = handle_from_args(args)
    res = contrast_features(h, a, b, _sae(args, h), k=args.k, reduce=args.reduce, label_a=args.label_a, label_b=args.label_b)
    if args.json:
        print_json(res)
        return 0
    print(res.to_tool_result(h).summary)
    for label, hits in ((res.label_a, res.features_a), (res.label_b, res.features_b)):
        print(f"  more on {label}:")
        for x in hits:
            ex = f"  {x.explanation}" if x.explanation else ""
            print(f"    #{x.id:<6} effect {x.effect:+.2f}  AUROC {x.auroc:.2f}  fires on {x.frac_a:.0%} / {x.frac_b:.0%} of texts{ex}")
    _warn(res.warnings)
    return 0


def run_feature(args) -> int:
    from gnothi.tools.features import feature_page
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    page = feature_page(h, args.feature, _sae(args, h), modes=not args.no_modes, n_contexts=args.contexts)
    rep = page.report
    if args.json:
        d = rep.model_dump(mode="json")
        d.update(sae=page.sae, feature=page.feature, promotes=page.promotes, suppresses=page.suppresses)
        print_json(d)
        return 0
    s = rep.score
    print(f"SAE {page.sae}, feature {page.feature} (layer {rep.layer}): {rep.explanation}")
    print(f"  score {s.pearson:.2f} (Pearson, simulated vs true activations on {s.n_records} held-out records); "
          f"shuffled control {s.shuffled_pearson:.2f}")
    st = rep.stats
    print(f"  max {st.max:.3g}, fires on {st.frequency:.2%} of {st.n_tokens} tokens")
    if page.promotes:
        print(f"  promotes:   {', '.join(repr(t) for t, _ in page.promotes[:8])}")
        print(f"  suppresses: {', '.join(repr(t) for t, _ in page.suppresses[:8])}")
    if rep.modes is not None:
        m = rep.modes
        print(f"  {m.k} modes: together {m.union_pearson:.2f} vs single {m.single_pearson:.2f}")
    print("  top contexts:")
    for r in rep.top_contexts:
        i = r.argmax
        left = "".join(r.tokens[max(1, i - 12):i]).replace("\n", "⏎")
        right = "".join(r.tokens[i + 1:i + 6]).replace("\n", "⏎")
        print(f"    {r.max_activation:8.3g}  …{left}[[{r.tokens[i]}]]{right}…")
    _warn(rep.warnings)
    return 0


# ---------------------------------------------------------------------------- library


def run_list(args) -> int:
    from gnothi.tools.sae import list_saes
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    saes = list_saes(h.name)
    if args.json:
        print_json({"model": h.name, "saes": saes})
        return 0
    if not saes:
        print(f"No SAEs for {h.name} yet. Train one: gnothi sae train --layer {max(1, h.n_layers // 5)}")
        return 0
    for e in saes:
        m = e.get("metrics") or {}
        state = "ok" if e["ok"] else f"DAMAGED: {e['problem']}"
        ev = f"EV {m['explained_variance']:.3f}, L0 {m['l0']:.1f}, CE rec. {m['ce_loss_recovered']:.1%}" if m.get("ce_loss_recovered") is not None else ""
        print(f"  {e['name']:<32} layer {e.get('layer')}  d_sae {e.get('d_sae')}  {ev}  {'indexed' if e['indexed'] else 'not indexed'}  [{state}]")
    return 0


def run_info(args) -> int:
    from gnothi.tools.sae import read_manifest
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    sae = _sae(args, h)
    d = sae.describe()
    man = read_manifest(sae.path) if sae.path else {}
    d["metrics"] = man.get("metrics")
    d["index"] = man.get("index")
    if args.json:
        print_json(d)
        return 0
    print(f"{d['name']}: {d['architecture']} SAE, {d['d_sae']} features over {d['hook_name']} (d_in {d['d_in']}), model {d['model_name']}")
    print(f"  path: {d['path']}")
    m = d["metrics"] or {}
    if m:
        print(f"  explained variance {m['explained_variance']:.3f}, L0 {m['l0']:.1f}, dead {m['dead_fraction']:.1%}, "
              f"CE-loss recovered {m['ce_loss_recovered']}")
    print(f"  feature index: {'yes' if d['index'] else 'no (gnothi sae index)'}")
    return 0
