"""Train a TopK sparse autoencoder on one hook point of a model, on a CPU, in minutes.

The recipe follows OpenAI's TopK SAEs (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders") at a size a laptop CPU finishes in minutes:

1. stream ``n_tokens`` of the corpus through the model once, stopping after the SAE's
   layer, and keep the hook activations (BOS positions left out: their huge norm is not
   what the SAE should spend features on) in fp16 in memory;
2. scale activations so their mean squared norm is ``d_in`` (folded into the weights at the
   end, so the saved SAE reads raw activations);
3. train ``f = TopK_k(ReLU((x - b_dec) W_enc + b_enc))``, ``x_hat = f W_dec + b_dec`` with
   Adam on the normalized MSE, unit-norm decoder rows, and the AuxK loss that lets dead
   latents learn the residual (coefficient 1/32), for a few epochs over the cached
   activations;
4. measure, on held-out windows: explained variance, L0, dead fraction, and the
   CE-loss recovered: ``(CE_zero - CE_sae) / (CE_zero - CE_clean)`` where ``CE_sae``
   splices the reconstruction into the forward pass and ``CE_zero`` zero-ablates the
   hook point (at every position but BOS in both); beside it the same figure in
   sae-lens's convention (``ce_loss_recovered_saelens``, its evals' ``ce_loss_score``: BOS
   zeroed too, predictions made from BOS not counted); the two differ, so both are reported
   under their own names;
5. save in SAELens format under ``model_cache_dir(model)/saes/<name>/``.

``train_sae(handle, TrainConfig(layer=6))`` returns a :class:`TrainResult`.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, PrivateAttr

from .errors import InputError, check_range
from .results import Figure, ToolResult, provenance
from .sae import (  # TrainConfig and estimate_train_seconds live with the SAE format, below this module
    SAE,
    TrainConfig,
    default_sae_name,
    estimate_train_seconds,  # noqa: F401  (re-exported: callers import it from here)
    record_throughput,
    sae_config,
    save_sae,
    saes_dir,
)


class SAEMetrics(BaseModel):
    """Quality of an SAE on held-out tokens (all measured)."""

    explained_variance: float  # 1 - sum|x - x_hat|^2 / sum|x - mean x|^2
    l0: float  # mean active latents per token
    ce_loss_recovered: float | None  # (CE_zero - CE_sae) / (CE_zero - CE_clean), zero ablation keeping BOS
    ce_clean: float | None
    ce_sae: float | None
    ce_zero: float | None
    # the same in sae-lens's convention (its evals' ce_loss_score): zero ablation of every
    # position, BOS included, and predictions made from BOS left out of every CE
    ce_loss_recovered_saelens: float | None = None
    ce_zero_all: float | None = None
    dead_fraction_eval: float  # latents that never fired on the held-out tokens
    n_eval_tokens: int
    n_ce_tokens: int = 0  # next-token predictions the CE numbers average over


class TrainResult(BaseModel):
    name: str
    path: str
    model: str
    layer: int
    hook_name: str
    d_in: int
    d_sae: int
    k: int
    n_train_tokens: int
    epochs: int
    explained_variance: float
    l0: float
    ce_loss_recovered: float | None
    dead_fraction: float  # latents that never fired during the last epoch (all training tokens)
    metrics: SAEMetrics
    explained_variance_before: float  # the initialized SAE, before any step
    loss_curve: list[list[float]]  # [tokens seen, normalized MSE]
    config: dict[str, Any]
    timings: dict[str, float]
    next_step: str = ""
    _sae: Any = PrivateAttr(default=None)

    @property
    def sae(self):
        """The trained SAE object (in this process only; not serialized)."""
        return self._sae

    def to_tool_result(self, handle=None) -> ToolResult:
        m = self.metrics
        ce = f"{self.ce_loss_recovered:.1%}" if self.ce_loss_recovered is not None else "n/a"
        summary = (
            f"Trained a TopK SAE ({self.d_sae} features, k={self.k}) on {self.hook_name}: it explains "
            f"{self.explained_variance:.1%} of the variance of held-out activations (L0 {self.l0:.1f}), "
            f"recovers {ce} of the CE loss (zero-ablation baseline keeping BOS"
            + (f"; {m.ce_loss_recovered_saelens:.1%} in sae-lens's convention, BOS zeroed too" if m.ce_loss_recovered_saelens is not None else "")
            + f"), {self.dead_fraction:.1%} of features dead."
        )
        fig = Figure(
            kind="line",
            title=f"SAE training: normalized MSE ({self.hook_name})",
            data={
                "x": [p[0] for p in self.loss_curve],
                "series": {"normalized MSE": [p[1] for p in self.loss_curve]},
                "xlabel": "training tokens seen",
                "ylabel": "MSE / variance",
            },
            caption="1 - explained variance on each training batch",
        )
        return ToolResult(
            tool="sae_train",
            summary=summary,
            headline={
                "explained_variance": self.explained_variance,
                "l0": self.l0,
                "ce_loss_recovered": self.ce_loss_recovered,
                "ce_loss_recovered_saelens": m.ce_loss_recovered_saelens,
                "dead_fraction": self.dead_fraction,
                "explained_variance_before": self.explained_variance_before,
                "path": self.path,
            },
            evidence=[
                {"ce_clean": m.ce_clean, "ce_sae": m.ce_sae, "ce_zero": m.ce_zero, "n_eval_tokens": m.n_eval_tokens},
                {"dead_fraction_eval": m.dead_fraction_eval, "n_train_tokens": self.n_train_tokens, "epochs": self.epochs},
            ],
            figures=[fig],
            provenance=provenance(handle, hook_point=self.hook_name, corpus=self.config.get("corpus"), seed=self.config.get("seed"), sae=self.path),
            timings=self.timings,
            warnings=[] if self.explained_variance > 0.5 else ["Explained variance is low: train on more tokens (--tokens) or more epochs."],
            data=self.model_dump(mode="json"),
        )


# ============================================================================ pieces


def _bar(total, desc, unit, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True, unit_scale=True)


def training_windows(handle, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_windows, eval_windows)`` token ids ``[n, window]`` with a BOS each; disjoint."""
    from .corpus import bytes_for_tokens, load_corpus, token_windows

    corpus = load_corpus(cfg.corpus, max_bytes=bytes_for_tokens(cfg.n_tokens + cfg.eval_tokens))
    per = cfg.window - 1  # non-BOS tokens per window
    n_train = max(1, math.ceil(cfg.n_tokens / per))
    n_eval = max(1, math.ceil(cfg.eval_tokens / per))
    wins = token_windows(corpus, handle.tokenizer, window=cfg.window, n_tokens=(n_train + n_eval) * cfg.window,
                         seed=cfg.seed, bos_token_id=handle.bos_token_id)
    if len(wins) < n_eval + 1:
        raise InputError(
            f"Corpus {cfg.corpus!r} gives only {len(wins)} windows of {cfg.window} tokens; at least {n_eval + 1} are needed.",
            "Use a bigger corpus, fewer --eval-tokens, or a smaller window.",
        )
    wins_t = torch.from_numpy(np.ascontiguousarray(wins))
    # eval windows taken from the end of a deterministic shuffle, train from the rest
    return wins_t[: len(wins_t) - n_eval], wins_t[len(wins_t) - n_eval :]


@torch.inference_mode()
def collect_activations(handle, hook_name: str, windows: torch.Tensor, batch: int = 8, progress: bool = True,
                        dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Hook activations for every non-BOS position of ``windows``: ``[n * (window - 1), d]``.

    One forward per ``batch`` windows, stopped after the hook's layer. Memory is the
    result itself (fp16 by default), allocated once.
    """
    n, w = windows.shape
    out: torch.Tensor | None = None
    bar = _bar(n * (w - 1), f"Reading {hook_name}", "tok", progress)
    row = 0
    for i in range(0, n, batch):
        toks = windows[i : i + batch]
        _, cache = handle.run_with_cache(toks, [hook_name])
        a = cache[hook_name][:, 1:]
        a = a.reshape(-1, a.shape[-1]) if a.dim() == 3 else a.flatten(2).reshape(-1, a.shape[-2] * a.shape[-1])
        if out is None:
            out = torch.empty(n * (w - 1), a.shape[-1], dtype=dtype)
        out[row : row + len(a)] = a.to(dtype)
        row += len(a)
        bar.update(len(a))
    bar.close()
    assert out is not None
    return out[:row]


def _ce(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[float, int, float, int]:
    """Next-token NLL summed over every prediction, and over those made from a non-BOS
    position (sae-lens leaves out predictions whose input is a special token)."""
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -lp.gather(-1, tokens[:, 1:, None].to(lp.device)).squeeze(-1)
    return float(nll.sum()), nll.numel(), float(nll[:, 1:].sum()), nll[:, 1:].numel()


@torch.no_grad()
def evaluate_sae(handle, sae, windows: torch.Tensor, batch: int = 8, with_ce: bool = True, progress: bool = True,
                 ce_windows: int | None = None) -> SAEMetrics:
    """Explained variance, L0, dead fraction and CE-loss recovered of ``sae`` on ``windows``.

    ``windows`` are token ids ``[n, window]`` starting with BOS; BOS positions are left
    out of every number and left untouched in the spliced runs. CE-loss recovered costs
    three full forward passes, so it uses only the first ``ce_windows`` windows (all by
    default); the other numbers use every window (one pass stopped at the SAE's layer).
    """
    n_ce = len(windows) if ce_windows is None else max(0, min(ce_windows, len(windows)))
    with_ce = with_ce and n_ce > 0
    hp = str(sae.hook_name)
    sae = sae.to(handle.device)
    sse = sst = 0.0
    sum_x = None
    sum_x2 = 0.0
    n_tok = 0
    l0_sum = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=handle.device)
    # gnothi's numbers (every prediction; zero ablation keeps BOS) and sae-lens's ("_sl":
    # predictions from BOS left out; zero ablation at every position, BOS included)
    ce = {k: [0.0, 0] for k in ("clean", "sae", "zero", "clean_sl", "sae_sl", "zero_sl")}

    def add(key, logits, toks, full=True, sl=True):
        s_all, n_all, s_sl, n_sl = _ce(logits, toks)
        if full:
            ce[key][0] += s_all
            ce[key][1] += n_all
        if sl:
            ce[key + "_sl"][0] += s_sl
            ce[key + "_sl"][1] += n_sl

    bar = _bar(len(windows), "Evaluating SAE", "win", progress)
    extra: list[torch.Tensor] = []
    for i in range(0, len(windows), batch):
        toks = windows[i : i + batch].to(handle.device)
        store: dict[str, torch.Tensor] = {}

        def keep(act, hook, store=store):
            store["x"] = act.detach().clone()

        do_ce = with_ce and i < n_ce
        if do_ce:
            toks = toks[: max(0, min(len(toks), n_ce - i))] if i + len(toks) > n_ce else toks
            if len(toks) < len(windows[i : i + batch]):  # the CE part ends inside this batch: split it
                rest = windows[i + len(toks) : i + batch].to(handle.device)
                _, cache = handle.run_with_cache(rest, [hp])
                extra.append(cache[hp])
            logits = handle.run_with_hooks(toks, [(hp, keep)])
            add("clean", logits, toks)
        else:
            _, cache = handle.run_with_cache(toks, [hp])
            store["x"] = cache[hp]
        xs = [store["x"]] + extra
        extra.clear()
        x = torch.cat([a[:, 1:].float() for a in xs], 0)
        flat = x.reshape(-1, sae.d_in) if x.shape[-1] == sae.d_in else x.flatten(-2).reshape(-1, sae.d_in)
        f = sae.encode(flat)
        rec = sae.decode(f)
        sse += float((flat - rec).pow(2).sum())
        sum_x = flat.sum(0) if sum_x is None else sum_x + flat.sum(0)
        sum_x2 += float(flat.pow(2).sum())
        n_tok += len(flat)
        l0_sum += float((f > 0).sum())
        fired |= (f > 0).any(0)
        if do_ce:

            def splice(act, hook):
                out = act.clone()
                out[:, 1:] = sae(act[:, 1:].float()).to(act.dtype).reshape(out[:, 1:].shape)
                return out

            def zero(act, hook):
                out = act.clone()
                out[:, 1:] = 0
                return out

            def zero_all(act, hook):
                return torch.zeros_like(act)

            add("sae", handle.run_with_hooks(toks, [(hp, splice)]), toks)
            add("zero", handle.run_with_hooks(toks, [(hp, zero)]), toks, sl=False)
            add("zero", handle.run_with_hooks(toks, [(hp, zero_all)]), toks, full=False)
        bar.update(len(windows[i : i + batch]))
    bar.close()
    assert sum_x is not None
    sst = sum_x2 - float(sum_x.pow(2).sum()) / n_tok
    ev = 1.0 - sse / max(sst, 1e-12)
    out = dict(
        explained_variance=ev,
        l0=l0_sum / n_tok,
        dead_fraction_eval=float((~fired).float().mean()),
        n_eval_tokens=n_tok,
        n_ce_tokens=int(ce["clean"][1]),
        ce_loss_recovered=None,
        ce_clean=None,
        ce_sae=None,
        ce_zero=None,
    )
    if with_ce:
        clean, sae_ce, zero_ce = (ce[k][0] / ce[k][1] for k in ("clean", "sae", "zero"))
        denom = zero_ce - clean
        out.update(ce_clean=clean, ce_sae=sae_ce, ce_zero=zero_ce, ce_loss_recovered=(zero_ce - sae_ce) / denom if abs(denom) > 1e-9 else None)
        if ce["clean_sl"][1]:
            c2, s2, z2 = (ce[k][0] / ce[k][1] for k in ("clean_sl", "sae_sl", "zero_sl"))
            out.update(ce_zero_all=z2, ce_loss_recovered_saelens=(z2 - s2) / (z2 - c2) if abs(z2 - c2) > 1e-9 else None)
    return SAEMetrics(**out)


def explained_variance(sae, acts: torch.Tensor, batch: int = 8192) -> float:
    """Explained variance of ``sae`` on activations ``[n, d_in]`` (no model run)."""
    sse = 0.0
    mean = acts.float().mean(0)
    sst = 0.0
    with torch.no_grad():
        for i in range(0, len(acts), batch):
            x = acts[i : i + batch].float()
            sse += float((x - sae(x)).pow(2).sum())
            sst += float((x - mean).pow(2).sum())
    return 1.0 - sse / max(sst, 1e-12)


# ============================================================================ training


def _default_lr(d_sae: int) -> float:
    return 2e-4 / math.sqrt(d_sae / 16384)


def train_topk(
    acts: torch.Tensor,
    d_sae: int,
    k: int,
    epochs: int = 3,
    batch_size: int = 2048,
    lr: float | None = None,
    aux_k: int | None = None,
    aux_coef: float = 1 / 32,
    dead_after_tokens: int = 40_000,
    seed: int = 0,
    progress: bool = True,
    cfg_template: dict | None = None,
):
    """Train a TopK SAE on activations ``acts [n, d_in]``; returns ``(sae, info)``.

    ``info``: ``loss_curve`` ([tokens, normalized MSE]), ``dead_fraction`` (never fired in
    the last epoch), ``scale`` (the input scale folded into the weights), ``ev_before``.
    """
    n, d = acts.shape
    # small SAEs train faster on one thread (thread hand-offs cost more than tiny matmuls,
    # badly so on a busy machine); the caller's setting is restored afterwards
    threads = torch.get_num_threads()
    if d * d_sae < 2**18 and threads > 1:
        torch.set_num_threads(1)
    try:
        return _train_topk(acts, d_sae, k, epochs, batch_size, lr, aux_k, aux_coef, dead_after_tokens, seed, progress, cfg_template)
    finally:
        torch.set_num_threads(threads)


def _train_topk(acts, d_sae, k, epochs, batch_size, lr, aux_k, aux_coef, dead_after_tokens, seed, progress, cfg_template):

    n, d = acts.shape
    # small budgets: shrink the batch so each epoch still takes ~50 optimizer steps
    batch_size = max(16, min(batch_size, max(128, n // 50), n))
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sample = acts[torch.randperm(n, generator=g)[: min(n, 20_000)]].float()
    scale = math.sqrt(d / float(sample.pow(2).sum(-1).mean().clamp_min(1e-12)))
    cfg = dict(cfg_template or sae_config(d, d_sae, "unknown", "unknown", "topk", k))
    cfg.update(d_in=d, d_sae=d_sae, k=k, architecture="topk")
    sae = SAE(cfg)
    W_dec = torch.randn(d_sae, d, generator=g)
    W_dec /= W_dec.norm(dim=-1, keepdim=True)
    # training parameters; the encoder is kept transposed ([d_sae, d]) so rows gather fast
    We = torch.nn.Parameter(W_dec.clone())
    be = torch.nn.Parameter(torch.zeros(d_sae))
    Wd = torch.nn.Parameter(W_dec.clone())
    bd = torch.nn.Parameter(sample.mean(0) * scale)

    def sync():
        with torch.no_grad():
            sae.W_enc.copy_(We.T)
            sae.b_enc.copy_(be)
            sae.W_dec.copy_(Wd)
            sae.b_dec.copy_(bd)

    sync()
    ev_before = explained_variance(_folded(sae, scale), sample)  # the initialized SAE, raw units
    params = [We, be, Wd, bd]
    lr = lr or _default_lr(d_sae)
    opt = _Adam(params, lr=lr)
    steps_per_epoch = max(1, n // batch_size)
    total = steps_per_epoch * epochs
    warm = max(1, total // 20)
    decay_from = int(total * 0.8)
    aux_k = min(aux_k or d // 2, d_sae)
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    fired_last_epoch = torch.zeros(d_sae, dtype=torch.bool)
    curve: list[list[float]] = []
    bar = _bar(total, f"Training SAE ({d_sae} features, k={k})", "step", progress)
    step = 0
    seen = 0
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        last = ep == epochs - 1
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size : (s + 1) * batch_size]
            x = acts[idx].float() * scale
            xc = x - bd
            pre = xc @ We.T + be
            vals, ind = torch.topk(pre, k, dim=-1, sorted=False)
            vals = vals.relu()
            # sparse decode: sum of the k chosen decoder rows (a gather, not a [B, d_sae] matmul)
            rec = torch.nn.functional.embedding_bag(ind, Wd, per_sample_weights=vals, mode="sum") + bd
            err = x - rec
            var = (x - x.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-8)
            mse = err.pow(2).sum(-1).mean() / var
            loss = mse
            with torch.no_grad():
                active = torch.zeros(d_sae, dtype=torch.bool)
                active[ind[vals.detach() > 0]] = True
            dead = since_fired > dead_after_tokens
            n_dead = int(dead.sum())
            if n_dead and aux_coef > 0:
                # AuxK: the top dead latents reconstruct the residual error
                didx = dead.nonzero().squeeze(-1)
                ka = min(aux_k, n_dead)
                pre_dead = pre[:, didx]  # [B, n_dead]
                av, ai = torch.topk(pre_dead, ka, dim=-1, sorted=False)
                fa = torch.zeros_like(pre_dead).scatter(-1, ai, av.relu())
                e_hat = fa @ Wd[didx]
                aux = (err.detach() - e_hat).pow(2).sum(-1).mean() / var
                loss = loss + aux_coef * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                # keep decoder rows unit norm: drop the gradient along each row
                gW = Wd.grad
                gW -= (gW * Wd).sum(-1, keepdim=True) * Wd
                _clip_grad_norm(params, 1.0)
                if step < warm:
                    cur = lr * (step + 1) / warm
                elif step >= decay_from:
                    cur = lr * max(0.0, (total - step) / max(1, total - decay_from))
                else:
                    cur = lr
                opt.lr = cur
            opt.step()
            with torch.no_grad():
                Wd /= Wd.norm(dim=-1, keepdim=True).clamp_min(1e-8)
                since_fired += len(x)
                since_fired[active] = 0
                if last:
                    fired_last_epoch |= active
            step += 1
            seen += len(x)
            m = float(mse.detach())
            if step == 1 or step % max(1, total // 60) == 0 or step == total:
                curve.append([float(seen), m])
            bar.set_postfix_str(f"mse {m:.3f} dead {n_dead / d_sae:.0%}")
            bar.update(1)
    bar.close()
    sync()
    sae = _folded(sae, scale)
    info = {
        "loss_curve": curve,
        "dead_fraction": float((~fired_last_epoch).float().mean()),
        "scale": scale,
        "ev_before": ev_before,
        "steps": total,
        "lr": lr,
    }
    return sae, info


class _Adam:
    """Plain Adam (Kingma & Ba) without torch.optim, whose import pulls in torch._dynamo
    (seconds to tens of seconds on a busy CPU)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 6.25e-10):
        self.params = list(params)
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-self.lr)


def _clip_grad_norm(params, max_norm: float) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    coef = max_norm / (float(total) + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)


def _folded(sae, scale: float):
    """A copy of ``sae`` that reads raw activations (input scale folded into the weights)."""

    out = SAE(sae.cfg)
    with torch.no_grad():
        out.W_enc.copy_(sae.W_enc * scale)
        out.b_enc.copy_(sae.b_enc)
        out.W_dec.copy_(sae.W_dec / scale)
        out.b_dec.copy_(sae.b_dec / scale)
    out.eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def train_sae(handle, cfg: TrainConfig, progress: bool = True, save: bool = True) -> TrainResult:
    """Train, evaluate and save a TopK SAE for ``handle`` (see module docs)."""

    check_range("layer", cfg.layer, handle.n_layers)
    hook_name = handle.hook_name(cfg.hook, cfg.layer)
    if cfg.hook in ("attn_pattern",):
        raise InputError("SAEs read vector activations; attention patterns are not one.", "Use --hook resid_post, resid_mid, mlp_out or attn_out.")
    if cfg.window > handle.shape.n_ctx:
        raise InputError(f"Window {cfg.window} is longer than the model's context {handle.shape.n_ctx}.", f"Use --window {min(128, handle.shape.n_ctx)}.")
    t0 = time.perf_counter()
    train_w, eval_w = training_windows(handle, cfg)
    t_windows = time.perf_counter() - t0
    t1 = time.perf_counter()
    acts = collect_activations(handle, hook_name, train_w, batch=cfg.model_batch, progress=progress)
    t_collect = time.perf_counter() - t1
    d_in = acts.shape[-1]
    d_sae = cfg.expansion * d_in
    if cfg.k > d_sae:
        raise InputError(f"k={cfg.k} is more than the SAE's {d_sae} features.", f"Use --k below {d_sae}.")
    if not torch.isfinite(acts).all():
        raise InputError(
            f"Activations at {hook_name} overflow fp16 storage.", "Pick another hook point or layer (this one has extreme values)."
        )
    name = cfg.name or default_sae_name(cfg.layer, cfg.hook, cfg.k, d_sae)
    template = sae_config(d_in, d_sae, hook_name, handle.name, "topk", cfg.k, context_size=cfg.window,
                          dataset_path=f"gnothi:{cfg.corpus}")
    t2 = time.perf_counter()
    sae, info = train_topk(
        acts, d_sae, cfg.k, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, aux_k=cfg.aux_k,
        aux_coef=cfg.aux_coef, dead_after_tokens=cfg.dead_after_tokens, seed=cfg.seed, progress=progress,
        cfg_template=template,
    )
    t_train = time.perf_counter() - t2
    del acts
    t3 = time.perf_counter()
    ce_w = math.ceil(cfg.ce_tokens / (cfg.window - 1)) if cfg.ce_tokens else 0
    metrics = evaluate_sae(handle, sae, eval_w, batch=cfg.model_batch, with_ce=ce_w > 0, progress=progress, ce_windows=ce_w)
    t_eval = time.perf_counter() - t3
    n_train_tokens = int(train_w.shape[0] * (train_w.shape[1] - 1))
    if t_collect > 0:
        record_throughput(handle.name, n_train_tokens * (cfg.layer + 1) / t_collect)
    path = saes_dir(handle.name) / name
    timings = {"windows_s": t_windows, "collect_s": t_collect, "train_s": t_train, "eval_s": t_eval,
               "total_s": time.perf_counter() - t0, "collect_tokens_per_s": n_train_tokens / max(t_collect, 1e-9)}
    res = TrainResult(
        name=name,
        path=str(path),
        model=handle.name,
        layer=cfg.layer,
        hook_name=hook_name,
        d_in=d_in,
        d_sae=d_sae,
        k=cfg.k,
        n_train_tokens=n_train_tokens,
        epochs=cfg.epochs,
        explained_variance=metrics.explained_variance,
        l0=metrics.l0,
        ce_loss_recovered=metrics.ce_loss_recovered,
        dead_fraction=info["dead_fraction"],
        metrics=metrics,
        explained_variance_before=info["ev_before"],
        loss_curve=info["loss_curve"],
        config={**cfg.model_dump(), "lr": info["lr"], "steps": info["steps"], "input_scale": info["scale"]},
        timings=timings,
    )
    if save:
        save_sae(sae, path, extra={"metrics": res.model_dump(exclude={"loss_curve"}, mode="json"), "model": handle.name})
    sae.path = path if save else None
    res._sae = sae
    return res


# ============================================================================ several layers, Ray


def _train_layer_task(factory: Any, cfg: dict[str, Any], threads: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One layer's SAE on a Ray worker: the result, and the saved folder's files (the driver
    writes them into its own cache, so the cluster need not share a disk)."""
    from pathlib import Path

    torch.set_num_threads(threads)
    res = train_sae(factory(), TrainConfig(**cfg), progress=False, save=True)
    return res.model_dump(mode="json"), {p.name: p.read_bytes() for p in Path(res.path).iterdir() if p.is_file()}


def train_saes(handle, cfg: TrainConfig, layers: list[int], progress: bool = True, ray: str | None = None,
               ray_workers: int | None = None, factory: Any = None) -> list[TrainResult]:
    """One SAE per layer in ``layers`` (settings of ``cfg`` but its layer and name), in this
    process one after another, or with ``ray`` as Ray tasks, one per layer (``factory()``
    loads the model on each worker; default: this model by name, on the worker's device).
    Each SAE is saved under the model's saes/ as soon as it is trained."""
    for l in layers:
        check_range("layer", l, handle.n_layers)
    per_layer = [cfg.model_copy(update={"layer": l, "name": None if cfg.name is None else f"{cfg.name}-L{l}"}) for l in layers]
    if ray is None:
        return [train_sae(handle, c, progress=progress) for c in per_layer]
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from .cluster import connect, model_factory, result_or_stop, worker_resources

    rt = connect(ray, ray_workers)
    workers, per_task = worker_resources(rt, ray_workers)
    factory = factory or model_factory(handle.name, None, handle.dtype)
    task = rt.remote(_train_layer_task).options(max_retries=3, **per_task)
    fac = rt.put(factory)
    pending = {task.remote(fac, c.model_dump(), int(per_task["num_cpus"])): c.layer for c in per_layer}
    if progress:
        print(f"[gnothi] training {len(layers)} SAEs as Ray tasks on {workers} workers", file=sys.stderr)
    done: dict[int, TrainResult] = {}
    while pending:
        ready, _ = rt.wait(list(pending), num_returns=1)
        for ref in ready:
            layer = pending.pop(ref)
            d, files = result_or_stop(rt, ref, pending, lambda why, layer=layer: InputError(
                f"Training the SAE of layer {layer} failed on Ray: {why}",
                f"The SAEs of layers {sorted(done) or 'none'} are saved; train the others with --layers."))
            res = TrainResult(**d)
            path = saes_dir(handle.name) / res.name
            if Path(res.path).resolve() != path.resolve() or not path.exists():  # another machine's disk
                tmp = Path(tempfile.mkdtemp(prefix=f".{res.name}.", dir=path.parent))
                for name, data in files.items():
                    (tmp / name).write_bytes(data)
                old = path.with_name(path.name + f".old-{os.getpid()}")
                if path.exists():
                    os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            res.path = str(path)
            done[layer] = res
            if progress:
                print(f"[gnothi] layer {layer}: explained variance {res.explained_variance:.3f}, L0 {res.l0:.1f} ({len(done)}/{len(layers)})",
                      file=sys.stderr)
    return [done[l] for l in layers]
