"""SAE suite: SAEBench-style core metrics with their ablation baselines, and feature explanations.

For the model's default SAE (or, in the quick tier when there is none, a small SAE
trained for the evaluation and kept in the evaluation cache, never registered as the
assistant's SAE) on held-out windows:

* **explained variance**, beside zero-ablation (predict 0), mean-ablation (predict the
  mean: 0 by definition) and a *shuffled-decoder* SAE (same codes, decoder rows permuted:
  same sparsity, scrambled features);
* **CE-loss recovered** ``(CE_zero - CE_sae) / (CE_zero - CE_clean)``, beside zero-ablation
  (0 by definition) and mean-ablation (the mean activation spliced in);
* **L0** beside the dense width ``d_in`` and, for TopK, its ``k``;
* **dead fraction** beside 0;
* the tool's explained variance recomputed independently here (agreement, baseline 0 error);
* **sparse probing** (SAEBench): for labelled datasets, test accuracy of a probe on the k
  latents that separate the classes best (k = 1, 2, 5, 10), beside the same probe on k of
  the hook point's own dimensions and on k random latents;
* **feature explanations**: a store over the SAE's features, a seeded sample of live
  features explained and scored exactly like neurons (Pearson with shuffled-explanation and
  random-unit controls, detection, fuzzing).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gnothi.tools.datasets import dataset_names, load_dataset
from gnothi.tools.results import Figure
from gnothi.tools.sparse_probing import sparse_probe

from gnothi.tools import sae as sae_mod
from gnothi.tools import sae_train as tr
from gnothi.tools import store as st_mod

from .registry import SuiteContext, SuiteResult, SuiteSkipped, suite
from .suite_neurons import sample_units, score_explainers, store_fingerprint


def _quick_sae(handle, ctx: SuiteContext):
    """A small TopK SAE for the quick tier, trained once and kept in the evaluation cache."""
    from gnothi.tools.config import model_cache_dir
    from gnothi.tools.errors import SAEError

    layer = max(1, handle.n_layers // 8)
    path = model_cache_dir(handle.name) / "evals" / f"sae-quick-L{layer}"
    if path.exists():
        try:
            return sae_mod.load_sae(path), f"quick-tier SAE at layer {layer} (reused from the evaluation cache)"
        except SAEError:
            pass
    cfg = tr.TrainConfig(layer=layer, expansion=int(ctx.options.get("sae_expansion", 2)), k=16,
                         n_tokens=int(ctx.options.get("sae_tokens", 8192)), epochs=2, eval_tokens=256, seed=ctx.seed)
    t0 = time.perf_counter()
    res = tr.train_sae(handle, cfg, progress=True, save=False)
    sae_mod.save_sae(res.sae, path, extra={"metrics": res.model_dump(exclude={"loss_curve"}, mode="json"), "model": handle.name,
                                           "purpose": "gnothi eval quick tier"})
    sae = sae_mod.load_sae(path)
    return sae, f"quick-tier SAE at layer {layer} trained for this run in {time.perf_counter() - t0:.0f} s ({res.n_train_tokens} tokens, d_sae {res.d_sae}, k {res.k})"


def get_sae(handle, ctx: SuiteContext):
    from gnothi.tools.errors import SAEError

    try:
        return sae_mod.default_sae(handle), "default SAE"
    except SAEError as e:
        if ctx.quick:
            return _quick_sae(handle, ctx)
        if ctx.options.get("train_sae", True):
            res = tr.train_sae(handle, tr.TrainConfig(layer=handle.n_layers // 2, seed=ctx.seed), progress=True, save=True)
            return sae_mod.load_sae(res.path), f"default SAE trained for this run ({res.n_train_tokens} tokens)"
        raise SuiteSkipped(f"no SAE: {e.message}") from None


@torch.no_grad()
def ablation_baselines(handle, sae, windows: torch.Tensor, batch: int = 8, seed: int = 0) -> dict[str, float]:
    """Independent numbers on the same windows: EV of the SAE, zero, mean and shuffled-decoder
    reconstructions; CE of the clean run and with the mean activation spliced in."""
    hp = str(sae.hook_name)
    xs = []
    ce_clean = [0.0, 0]
    for i in range(0, len(windows), batch):
        toks = windows[i : i + batch].to(handle.device)
        logits, cache = handle.run_with_cache(toks, [hp], stop_early=False)
        lp = torch.log_softmax(logits[:, :-1].float(), -1)
        nll = -lp.gather(-1, toks[:, 1:, None]).squeeze(-1)
        ce_clean[0] += float(nll.sum())
        ce_clean[1] += nll.numel()
        xs.append(cache[hp][:, 1:].float().reshape(-1, sae.d_in))
    x = torch.cat(xs)
    mu = x.mean(0)
    sst = float((x - mu).pow(2).sum())
    f = sae.encode(x)
    rec = sae.decode(f)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(sae.d_sae, generator=g)
    rec_shuf = f @ sae.W_dec[perm] + sae.b_dec
    out = {
        "ev_direct": 1 - float((x - rec).pow(2).sum()) / sst,
        "ev_zero": 1 - float(x.pow(2).sum()) / sst,
        "ev_mean": 0.0,
        "ev_shuffled_decoder": 1 - float((x - rec_shuf).pow(2).sum()) / sst,
        "l0_direct": float((f > 0).float().sum(-1).mean()),
        "ce_clean_direct": ce_clean[0] / ce_clean[1],
    }
    # mean-ablation CE: splice the mean activation at every position but BOS
    ce_mean = [0.0, 0]

    def splice_mean(act, hook):
        o = act.clone()
        o[:, 1:] = mu.to(act.dtype).reshape(o[:, 1:].shape[-1:])
        return o

    for i in range(0, len(windows), batch):
        toks = windows[i : i + batch].to(handle.device)
        logits = handle.run_with_hooks(toks, [(hp, splice_mean)])
        lp = torch.log_softmax(logits[:, :-1].float(), -1)
        nll = -lp.gather(-1, toks[:, 1:, None]).squeeze(-1)
        ce_mean[0] += float(nll.sum())
        ce_mean[1] += nll.numel()
    out["ce_mean"] = ce_mean[0] / ce_mean[1]
    return out


@suite("sae")
def run(ctx: SuiteContext) -> SuiteResult:
    """SAE core metrics (explained variance, L0, CE-loss recovered, dead fraction) vs ablations; feature explanation scores."""
    handle = ctx.handle()
    sae, sae_note = get_sae(handle, ctx)
    sae.check_fits(handle)
    res = SuiteResult(suite="sae")
    eval_tokens = int(ctx.options.get("sae_eval_tokens", 512 if ctx.quick else 8192))
    cfg = tr.TrainConfig(layer=sae.layer, n_tokens=256, eval_tokens=eval_tokens, seed=ctx.seed + 1)
    _, windows = tr.training_windows(handle, cfg)
    t0 = time.perf_counter()
    m = tr.evaluate_sae(handle, sae, windows, batch=8, with_ce=True, progress=False)
    t_eval = time.perf_counter() - t0
    b = ablation_baselines(handle, sae, windows, seed=ctx.seed)
    ce_rec_mean = None
    if m.ce_zero is not None and m.ce_clean is not None and abs(m.ce_zero - m.ce_clean) > 1e-9:
        ce_rec_mean = (m.ce_zero - b["ce_mean"]) / (m.ce_zero - m.ce_clean)
    k = sae.cfg.get("k") if sae.architecture == "topk" else None
    res.metrics = {
        "explained_variance": m.explained_variance,
        "ce_loss_recovered": m.ce_loss_recovered,  # zero ablation keeping BOS
        "ce_loss_recovered_saelens": m.ce_loss_recovered_saelens,  # sae-lens's ce_loss_score convention
        "l0": m.l0,
        "dead_fraction": m.dead_fraction_eval,
        "explained_variance_agreement_abs_error": abs(m.explained_variance - b["ev_direct"]),
        "ce_clean_agreement_abs_error": abs((m.ce_clean or 0.0) - b["ce_clean_direct"]),
    }
    res.baselines = {
        "explained_variance": {"zero_ablation": b["ev_zero"], "mean_ablation": b["ev_mean"], "shuffled_decoder": b["ev_shuffled_decoder"]},
        "ce_loss_recovered": {"zero_ablation": 0.0, "mean_ablation": ce_rec_mean},
        "ce_loss_recovered_saelens": {"zero_ablation": 0.0},
        "l0": {"dense_d_in": float(sae.d_in), **({"topk_k": float(k)} if k else {})},
        "dead_fraction": 0.0,
        "explained_variance_agreement_abs_error": 0.0,
        "ce_clean_agreement_abs_error": 0.0,
    }
    res.tables.append({
        "title": "Core metrics on held-out windows (SAEBench style)",
        "columns": ["quantity", "SAE", "zero ablation", "mean ablation", "shuffled decoder", "clean"],
        "rows": [
            ["explained variance", m.explained_variance, b["ev_zero"], 0.0, b["ev_shuffled_decoder"], 1.0],
            ["CE loss (nats/token)", m.ce_sae, m.ce_zero, b["ce_mean"], None, m.ce_clean],
            ["CE-loss recovered (zero ablation keeping BOS)", m.ce_loss_recovered, 0.0, ce_rec_mean, None, 1.0],
            ["CE-loss recovered, sae-lens convention (BOS zeroed too; predictions from BOS not counted)", m.ce_loss_recovered_saelens, 0.0, None, None, 1.0],
            ["L0 (active features/token)", m.l0, 0.0, None, None, float(sae.d_in)],
        ],
    })
    res.figures.append(Figure(kind="bar", title=f"CE loss with the {sae.hook_name} activations replaced",
                              data={"labels": ["clean", "SAE reconstruction", "mean ablation", "zero ablation"],
                                    "values": [m.ce_clean, m.ce_sae, b["ce_mean"], m.ce_zero], "ylabel": "CE loss (nats/token)"},
                              caption="Lower is better; the SAE should sit near clean and well below the ablations."))
    # feature explanations
    n_feat = int(ctx.options.get("n_features", 6 if ctx.quick else 32))
    feat_note = "feature explanations: skipped"
    if n_feat > 0:
        from gnothi.tools.config import model_cache_dir

        units = sae_mod.SAEUnits(sae, handle)
        n_tokens = int(ctx.options.get("sae_store_tokens", 4096 if ctx.quick else 32768))
        existing = None
        try:
            existing = st_mod.open_store(handle, units.id)
        except Exception:
            existing = None
        if existing is not None:
            store = existing
            feat_note = "feature store: the SAE's own store"
        else:
            path = model_cache_dir(handle.name) / "evals" / f"store-{units.id}-{n_tokens}"
            t1 = time.perf_counter()
            st_mod.build_store(handle, units, None, n_tokens=n_tokens, path=path, seed=0, progress=True)
            store = st_mod.ActivationStore(path, verify=False, tokenizer=handle.tokenizer)
            feat_note = f"feature store: {n_tokens} tokens over the SAE's features ({time.perf_counter() - t1:.0f} s)"
        feats, dead = sample_units(store, n_feat, ctx.seed)
        if feats:
            feature_res = SuiteResult(suite="sae")
            score_explainers(store, feats, ctx, feature_res, "SAE features", modes=False)
            for name, fm in feature_res.metrics.items():  # features_refined_explainer, features_single_pass_explainer, ...
                res.metrics[f"features_{name}"] = fm
                res.baselines[f"features_{name}"] = feature_res.baselines[name]
            res.tables.extend(feature_res.tables)
            res.notes.extend(feature_res.notes)
            res.provenance["feature_store"] = store_fingerprint(store)
            res.provenance["features"] = [f"{l}.{u}" for l, u in feats]
            res.provenance["dead_features_drawn"] = dead
    # sparse probing (SAEBench): k latents vs k of the hook point's own dimensions vs k random latents
    names = str(ctx.options.get("sparse_probe_datasets", "sentiment,code_vs_prose" if ctx.quick else ",".join(dataset_names()))).split(",")
    n_ex = int(ctx.options.get("sparse_probe_n", 200 if ctx.quick else 400))
    if names and names[0]:
        sp = sparse_probe(handle, sae, [load_dataset(n, n=n_ex, seed=ctx.seed) for n in names], seed=ctx.seed)
        by_k: dict[int, list] = {}
        for r in sp.rows:
            by_k.setdefault(r.k, []).append(r)
        res.metrics["sparse_probing"] = {f"k{k}": round(float(np.mean([r.sae_latents for r in rs])), 4) for k, rs in by_k.items()}
        res.baselines["sparse_probing"] = {
            f"k{k}": {"neurons": round(float(np.mean([r.neurons for r in rs])), 4),
                      "random_latents": round(float(np.mean([r.random_latents for r in rs])), 4),
                      "chance": round(float(np.mean([sp.chance[r.dataset] for r in rs])), 4)}
            for k, rs in by_k.items()
        }
        res.tables.append({
            "title": f"Sparse probing at the last token ({sp.hook_name}): test accuracy with k SAE latents vs k of the hook point's dimensions vs k random latents",
            "columns": ["dataset", "k", "SAE latents", "hook dimensions", "random latents", "dense probe (all dimensions)", "chance", "n test"],
            "rows": [[r.dataset, r.k, r.sae_latents, r.neurons, r.random_latents, sp.dense[r.dataset], sp.chance[r.dataset], sp.n_test[r.dataset]] for r in sp.rows],
        })
    d = sae.describe()
    res.provenance.update({"sae": d, "sae_note": sae_note, "eval_tokens": m.n_eval_tokens, "eval_seconds": round(t_eval, 1),
                           "seed": ctx.seed, "weights": sae_mod.weights_fingerprint(sae)})
    res.notes.append(f"{sae_note}; {d.get('hook_name')}, d_sae {d.get('d_sae')}; {feat_note}.")
    res.passed = bool(m.explained_variance > max(b["ev_zero"], b["ev_shuffled_decoder"], 0.0)
                      and abs(m.explained_variance - b["ev_direct"]) < 1e-3)
    return res
