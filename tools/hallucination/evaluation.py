"""Held-out evaluation of a detector: the report (:class:`HallucinationEval`), reliability
bins, bootstrap intervals, the text-only controls and leave-one-family-out transfer."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from .. import hallu_data as D
from .. import hallu_text as HT
from ..results import Figure, ToolResult, provenance
from ..stats import auroc
from .detector import HallucinationDetector
from .linear import _oof_logits, fit_linear
from .signals import SIGNAL_TEXT, Signals


class ReliabilityBin(BaseModel):
    lo: float
    hi: float
    count: int
    mean_risk: float | None
    frac_hallucinated: float | None


class HallucinationEval(BaseModel):
    """Held-out evaluation of a freshly trained detector (split by entity)."""

    model: str
    n_train: int
    n_test: int
    test_positive_rate: float  # share of test answers that are wrong or made up
    dataset: dict[str, dict[str, int]]  # per family: n, right, wrong, made_up, declined
    auroc: dict[str, float]  # held-out AUROC per signal alone and combined
    auroc_ci: dict[str, list[float]] = Field(default_factory=dict)  # bootstrap 95% CI
    baselines: dict[str, float] = Field(default_factory=dict)
    layers: dict[str, int] = Field(default_factory=dict)
    cv_auroc_by_layer: dict[str, dict[str, float]] = Field(default_factory=dict)
    reliability: list[ReliabilityBin] = Field(default_factory=list)
    ece: float = 0.0
    brier: float = 0.0
    transfer: list[dict[str, Any]] = Field(default_factory=list)  # leave-one-family-out
    # the same held-out answers without the fabricated subjects (controls refit on real ones only)
    n_test_real: int = 0
    auroc_real: dict[str, float] = Field(default_factory=dict)
    auroc_real_ci: dict[str, list[float]] = Field(default_factory=dict)
    # strongest model-free text-only control (hallu_text) on all / real-only held-out answers,
    # and the paired-bootstrap 95% CI of the combined detector's margin over it
    text_control: dict[str, dict[str, Any]] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    saved_to: str | None = None

    def figures(self) -> list[Figure]:
        figs = []
        names = list(self.auroc)
        figs.append(Figure(kind="bar", title="Held-out AUROC per signal (chance 0.5)", data={"labels": names, "values": [self.auroc[n] for n in names], "ylabel": "AUROC"}))
        xs = [round((b.lo + b.hi) / 2, 3) for b in self.reliability]
        figs.append(
            Figure(
                kind="line",
                title=f"Reliability of the risk on held-out answers (ECE {self.ece:.3f})",
                data={
                    "x": xs,
                    "series": {
                        "observed share hallucinated": [b.frac_hallucinated if b.frac_hallucinated is not None else float("nan") for b in self.reliability],
                        "perfect calibration": xs,
                    },
                    "xlabel": "predicted risk (bin centre)",
                    "ylabel": "share wrong or made up",
                },
                caption="counts per bin: " + ", ".join(str(b.count) for b in self.reliability),
            )
        )
        if self.cv_auroc_by_layer:
            layers = sorted({int(l) for d in self.cv_auroc_by_layer.values() for l in d})
            figs.append(
                Figure(
                    kind="line",
                    title="Probe AUROC by layer (cross-validated on the training split)",
                    data={"x": layers, "series": {w: [d.get(str(l)) for l in layers] for w, d in self.cv_auroc_by_layer.items()}, "xlabel": "layer", "ylabel": "AUROC"},
                )
            )
        return figs

    def to_tool_result(self) -> ToolResult:
        c = self.auroc.get("combined", 0.5)
        ci = self.auroc_ci.get("combined")
        ppl = self.auroc.get("neg_mean_logprob", 0.5)
        summary = (
            f"Held-out AUROC of the combined hallucination detector: {c:.3f}"
            + (f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
            + f" on {self.n_test} answers about entities never seen in training; perplexity alone {ppl:.3f}, chance 0.5."
        )
        for part, label in (("all", "all answers"), ("real", "real subjects only")):
            tc = self.text_control.get(part)
            if tc and tc.get("auroc") is not None:
                summary += (
                    f" A model-free classifier of {HT.CONTROL_LABELS.get(tc['control'], tc['control'])} ({label}): {tc['auroc']:.3f}; detector {tc['detector']:.3f}, "
                    f"margin {tc['margin']:+.3f} (95% CI {tc['margin_ci'][0]:+.2f} to {tc['margin_ci'][1]:+.2f})."
                )
        return ToolResult(
            tool="hallucination_eval",
            summary=summary,
            headline={
                "auroc_combined": c,
                "auroc_perplexity": ppl,
                "ece": self.ece,
                "n_test": self.n_test,
                **{f"auroc_text_only_{p}": t["auroc"] for p, t in self.text_control.items() if t.get("auroc") is not None},
                **({"auroc_combined_real": self.auroc_real["combined"]} if "combined" in self.auroc_real else {}),
            },
            evidence=[{"signal": k, "auroc": v, "meaning": SIGNAL_TEXT.get(k, k)} for k, v in self.auroc.items()] + self.transfer,
            figures=self.figures(),
            provenance=provenance(None, model=self.model, split="by entity", layers=self.layers),
            timings=self.timings,
            data=self.model_dump(mode="json"),
        )


def _reliability(risk: np.ndarray, y: np.ndarray, n_bins: int = 10) -> tuple[list[ReliabilityBin], float]:
    bins, ece = [], 0.0
    edges = np.linspace(0, 1, n_bins + 1)
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        m = (risk >= lo) & ((risk < hi) if i < n_bins - 1 else (risk <= hi))
        cnt = int(m.sum())
        if cnt:
            mr, fp = float(risk[m].mean()), float(y[m].mean())
            ece += cnt / len(risk) * abs(mr - fp)
            bins.append(ReliabilityBin(lo=float(lo), hi=float(hi), count=cnt, mean_risk=round(mr, 4), frac_hallucinated=round(fp, 4)))
        else:
            bins.append(ReliabilityBin(lo=float(lo), hi=float(hi), count=0, mean_risk=None, frac_hallucinated=None))
    return bins, float(ece)


def _bootstrap(stat: Callable[[np.ndarray], float], y: np.ndarray, n: int, seed: int, empty: float) -> list[float]:
    """95% percentile interval of ``stat(i)`` over resamples ``i`` of the answers that hold both classes."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if len(set(y[i].tolist())) == 2:
            vals.append(stat(i))
    if not vals:
        return [empty, empty]
    return [round(float(np.percentile(vals, 2.5)), 4), round(float(np.percentile(vals, 97.5)), 4)]


def _bootstrapauroc(scores: np.ndarray, y: np.ndarray, n: int = 500, seed: int = 0) -> list[float]:
    return _bootstrap(lambda i: auroc(scores[i], y[i]), y, n, seed, 0.5)


def _bootstrap_margin(a: np.ndarray, b: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> list[float]:
    """Paired bootstrap 95% interval of ``AUROC(a) - AUROC(b)`` on the same answers."""
    return _bootstrap(lambda i: auroc(a[i], y[i]) - auroc(b[i], y[i]), y, n, seed, 0.0)


def _text_control(exs: Sequence[D.Example], y: np.ndarray, tr: Sequence[int], te: Sequence[int], detector_risk: np.ndarray, seed: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit the text-only controls on ``tr`` and score ``te``; their AUROCs and the strongest
    one beside the detector's (``detector_risk`` on ``te``), with the margin's interval."""
    yte = y[te]
    if len(set(y[tr].tolist())) < 2 or len(set(yte.tolist())) < 2:
        return {}, {"n": len(te), "note": "one class only on a side of the split"}
    sc = HT.text_only_scores([exs[i].question for i in tr], y[tr], [exs[i].entity for i in tr], [exs[i].question for i in te], seed=seed)
    au = {k: round(auroc(v, yte), 4) for k, v in sc.items()}
    best = max(au, key=au.get)  # type: ignore[arg-type]  # every key of au is in au: get never returns None here
    det = auroc(detector_risk, yte)
    return au, {
        "n": len(te),
        "control": best,
        "auroc": au[best],
        "auroc_ci": _bootstrapauroc(sc[best], yte, seed=seed),
        "detector": round(det, 4),
        "margin": round(det - au[best], 4),
        "margin_ci": _bootstrap_margin(detector_risk, sc[best], yte, seed=seed),
    }


def _transfer(sig: Signals, y: np.ndarray, exs: Sequence[D.Example], det: HallucinationDetector) -> list[dict[str, Any]]:
    """Train on every family but one, test on that one (probe layers fixed to the chosen ones)."""
    rows = []
    fams = sorted({e.family for e in exs})
    for fam in fams:
        te = [i for i, e in enumerate(exs) if e.family == fam]
        tr = [i for i, e in enumerate(exs) if e.family != fam]
        if len(set(y[te].tolist())) < 2 or len(set(y[tr].tolist())) < 2:
            rows.append({"test_family": fam, "n": len(te), "note": "one class only in this family"})
            continue
        s_tr, s_te = sig.subset(tr), sig.subset(te)
        groups = [exs[i].entity for i in tr]
        folds = D.group_folds(groups, 5, 0)
        Xq_tr, Xa_tr = s_tr.resid("question", det.layer_q), s_tr.resid("answer", det.layer_a)
        cq, ca = det.meta["probe_question"]["C"], det.meta["probe_answer"]["C"]
        pq, pa = fit_linear(Xq_tr, y[tr], cq), fit_linear(Xa_tr, y[tr], ca)
        oof = np.column_stack([_oof_logits(Xq_tr, y[tr], folds, cq), _oof_logits(Xa_tr, y[tr], folds, ca), s_tr.unc])
        comb = fit_linear(oof, y[tr], 1.0)
        feats = np.column_stack([pq.logit(s_te.resid("question", det.layer_q)), pa.logit(s_te.resid("answer", det.layer_a)), s_te.unc])
        rows.append(
            {
                "test_family": fam,
                "n": len(te),
                "positive_rate": round(float(y[te].mean()), 3),
                "auroc_combined": round(auroc(comb.prob(feats), y[te]), 4),
                "auroc_probe_question": round(auroc(feats[:, 0], y[te]), 4),
                "auroc_probe_answer": round(auroc(feats[:, 1], y[te]), 4),
                "auroc_perplexity": round(auroc(s_te.unc[:, 0], y[te]), 4),
            }
        )
    return rows
