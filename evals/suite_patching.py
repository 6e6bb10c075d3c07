"""Patching suite: identities, agreement with a direct computation, known-answer prompts.

For fact prompts ("The capital of France is" -> " Paris", corrupted "... Italy is" ->
" Rome") the patching tool runs its exact sweep and its attribution estimate. The suite
then checks what must hold whatever the model:

* **Identities.** Patching an activation that is the same in both runs changes nothing:
  the residual stream entering layer 0 at every unchanged token, and at every layer on
  every position before the first changed token (causal masking), must have effect 0.
  Patching everything that differs restores the clean run: with one changed token, the
  residual stream entering layer 0 at that token has effect 1. Baseline: 0 error.
* **Agreement with a direct computation.** The suite recomputes a sample of the same
  patches itself with plain hooks, one run each, and compares the normalized effects.
  Baseline beside the error: the spread (std) of the effects it would have to get right.
* **Known answers.** On true facts the clean logit difference should be positive and
  the corrupted one negative. Baseline: chance (0.5).
* **Attribution vs exact.** Pearson r of the gradient estimate against the exact sweep,
  beside the same correlation with the exact effects shuffled across cells (the
  permutation baseline).
"""

from __future__ import annotations

import random
import time

import numpy as np

from gnothi.tools.results import Figure

from .metrics import mean, pearson
from gnothi.tools import facts
from gnothi.tools import patching

from .registry import SuiteContext, SuiteResult, SuiteSkipped, suite


def fact_pairs(handle, n: int, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(clean, corrupted, answer, alternative) from the capitals fact table: single-token
    answers, prompts of equal token length differing in the subject only."""
    rows = []
    for f in facts.FACTS.get("capitals", []):
        frame = f.frame or ""
        if f.answer is None or not (frame.endswith("{answer}.") or frame.endswith("{answer}")):
            continue  # a fabricated fact has no answer to patch
        prompt = frame.split("{answer}")[0].rstrip()
        ans = " " + f.answer
        ids = handle.tokenizer(ans, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or ids[0] == getattr(handle.tokenizer, "unk_token_id", None):
            continue
        rows.append((prompt, ans, len(handle.to_tokens(prompt)[0]), ids[0]))
    rng = random.Random(seed)
    rng.shuffle(rows)
    pairs, used = [], set()
    for i, (p, a, L, ia) in enumerate(rows):
        if p in used:
            continue
        for q, b, M, ib in rows[i + 1 :]:
            if q in used or M != L or ia == ib:
                continue
            pairs.append((p, q, a, b))
            used.update([p, q])
            break
        if len(pairs) >= n:
            break
    return pairs


def _direct_effects(handle, rep, cells: list[tuple[str, int, int | None]]) -> list[float]:
    """Normalized effects recomputed one patch at a time with plain hooks."""
    clean = handle.to_tokens(rep.prompts.clean)
    corr = handle.to_tokens(rep.prompts.corrupted)
    a = handle.tokenizer(rep.answer_token, add_special_tokens=False)["input_ids"][0]
    b = handle.tokenizer(rep.alternative_token, add_special_tokens=False)["input_ids"][0]
    names = {"resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out"}
    hook_names = sorted({handle.hook_name(names[k], l) for k, l, _ in cells})
    clean_logits, cache = handle.run_with_cache(clean, hook_names, stop_early=False)
    corr_logits = handle.logits(corr)
    lc = float(clean_logits[0, -1, a] - clean_logits[0, -1, b])
    lr = float(corr_logits[0, -1, a] - corr_logits[0, -1, b])
    out = []
    for kind, layer, pos in cells:
        name = handle.hook_name(names[kind], layer)
        src = cache[name]

        def fn(act, hook, src=src, pos=pos):
            act = act.clone()
            if pos is None:
                act[:] = src
            else:
                act[:, pos] = src[:, pos]
            return act

        lg = handle.run_with_hooks(corr, [(name, fn)])
        out.append((float(lg[0, -1, a] - lg[0, -1, b]) - lr) / (lc - lr))
    return out


@suite("patching")
def run(ctx: SuiteContext) -> SuiteResult:
    """Activation patching: identities, agreement with direct hooks, known-answer prompts, attribution vs exact."""
    handle = ctx.handle()
    n_pairs = int(ctx.options.get("patch_pairs", 2 if ctx.quick else 8))
    kinds = ["resid", "attn", "mlp"] if ctx.quick else ["resid", "attn", "mlp", "heads"]
    pairs = fact_pairs(handle, n_pairs, ctx.seed)
    if not pairs:
        raise SuiteSkipped("no fact pairs with single-token answers and equal prompt lengths for this tokenizer")
    rng = random.Random(ctx.seed)
    res = SuiteResult(suite="patching")
    rows, id_zero, id_causal, id_one, agree_err, agree_spread, corr_r, corr_perm = [], [], [], [], [], [], [], []
    clean_pos, corr_neg, clean_lds, corr_lds = [], [], [], []
    n_direct = 6 if ctx.quick else 16
    for clean, corrupted, ans, alt in pairs:
        t0 = time.perf_counter()
        rep = patching.patch(handle, clean, corrupted, answer=ans, alternative=alt, mode="both", kinds=kinds)
        secs = time.perf_counter() - t0
        clean_lds.append(rep.clean_metric)
        corr_lds.append(rep.corrupted_metric)
        clean_pos.append(rep.clean_metric > 0)
        corr_neg.append(rep.corrupted_metric < 0)
        ex = np.asarray(rep.effects["resid"].exact, dtype=float)  # [layers, positions]
        changed = sorted(rep.prompts.changed_positions)
        unchanged = [p for p in range(ex.shape[1]) if p not in changed]
        e0 = float(np.abs(ex[0, unchanged]).max()) if unchanged else 0.0
        ec = float(np.abs(ex[:, : changed[0]]).max()) if changed and changed[0] > 0 else 0.0
        id_zero.append(e0)
        id_causal.append(ec)
        if len(changed) == 1:
            id_one.append(abs(float(ex[0, changed[0]]) - 1.0))
        # direct recomputation of a sample of cells
        cells: list[tuple[str, int, int | None]] = []
        for _ in range(n_direct):
            k = rng.choice(["resid", "resid", "attn", "mlp"])
            layer = rng.randrange(handle.n_layers)
            cells.append((k, layer, rng.randrange(ex.shape[1]) if k == "resid" else None))
        direct = _direct_effects(handle, rep, cells)
        tool = []
        for k, layer, pos in cells:
            v = rep.effects[k].exact
            assert v is not None, f"the patching report has no exact {k} effects"
            tool.append(float(v[layer][pos]) if pos is not None else float(v[layer]))
        err = float(np.max(np.abs(np.asarray(direct) - np.asarray(tool))))
        agree_err.append(err)
        agree_spread.append(float(np.std(ex)))
        for k in kinds:
            e = rep.effects[k]
            if e.exact is None or e.attribution is None:
                continue
            x = np.asarray(e.exact, dtype=float).ravel()
            y = np.asarray(e.attribution, dtype=float).ravel()
            if x.size > 2:
                corr_r.append(pearson(x, y))
                corr_perm.append(pearson(np.random.default_rng(ctx.seed).permutation(x), y))
        top = rep.top_components[0].name if rep.top_components else ""
        rows.append([f"{clean} → {ans!r} / {corrupted} → {alt!r}", rep.clean_metric, rep.corrupted_metric, e0, ec,
                     id_one[-1] if len(changed) == 1 else None, err, rep.layer_profile.get("handoff_layer"), top, round(secs, 1)])
        if len(res.figures) < (1 if ctx.quick else 3):
            figs = rep.figures()
            if figs:
                res.figures.append(figs[0])
        for w in rep.warnings:
            res.notes.append(f"{clean!r}: {w}")
    res.metrics = {
        "identity_unchanged_tokens_layer0_max_abs": max(id_zero),
        "identity_before_first_change_max_abs": max(id_causal),
        "direct_agreement_max_abs_error": max(agree_err),
        "clean_prefers_answer_rate": mean(clean_pos),
        "corrupted_prefers_alternative_rate": mean(corr_neg),
        "mean_clean_logit_diff": mean(clean_lds),
        "mean_corrupted_logit_diff": mean(corr_lds),
    }
    res.baselines = {
        "identity_unchanged_tokens_layer0_max_abs": 0.0,
        "identity_before_first_change_max_abs": 0.0,
        "direct_agreement_max_abs_error": mean(agree_spread),  # the effects' own spread
        "clean_prefers_answer_rate": 0.5,
        "corrupted_prefers_alternative_rate": 0.5,
        "mean_clean_logit_diff": 0.0,
        "mean_corrupted_logit_diff": 0.0,
    }
    if id_one:
        res.metrics["identity_all_differences_patched_abs_error"] = max(id_one)
        res.baselines["identity_all_differences_patched_abs_error"] = 0.0
    if corr_r:
        res.metrics["attribution_vs_exact_pearson"] = mean(corr_r)
        res.baselines["attribution_vs_exact_pearson"] = mean(corr_perm)
    tol = 1e-3
    res.passed = bool(
        max(id_zero) < tol and max(id_causal) < tol and (not id_one or max(id_one) < tol) and max(agree_err) < 1e-2
    )
    res.tables.append({
        "title": "Prompt pairs (identity errors should be 0; agreement error is tool vs direct hooks)",
        "columns": ["pair", "clean LD", "corrupted LD", "|effect| unchanged L0", "|effect| before change",
                    "|all-diff effect − 1|", "direct max error", "handoff layer", "top component", "seconds"],
        "rows": rows,
    })
    res.figures.insert(0, Figure(kind="bar", title="Logit difference (answer − alternative) per prompt pair",
                                 data={"labels": [f"{p[2].strip()} clean" for p in pairs] + [f"{p[3].strip()} corr." for p in pairs],
                                       "values": clean_lds + corr_lds, "ylabel": "logit difference"},
                                 caption="Baseline 0: positive on clean prompts and negative on corrupted ones means the model knows the fact."))
    res.provenance = {"pairs": [list(p) for p in pairs], "kinds": kinds, "direct_cells_per_pair": n_direct, "seed": ctx.seed,
                      "tolerance": tol}
    return res
