"""Patching and tracing reports: effect summaries, text, figures and tool results."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from pydantic import BaseModel, Field

from ..results import Figure, ToolResult, provenance
from ..stats import pearson
from .schemas import Component, KindEffects, Mode, PromptPair, TracePeak


def _r(x: torch.Tensor) -> list:
    return [(_r(v) if v.dim() else round(float(v), 4)) for v in x]


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Agreement of two sweeps; None when it is undefined (under three values, or a constant sweep)."""
    return pearson(a.flatten().double().cpu().numpy(), b.flatten().double().cpu().numpy(), undefined=None, min_n=3)


def _component_name(kind: str, idx: tuple, tokens: list[str]) -> str:
    if kind == "resid":
        l, p = idx
        return f"residual at layer {l} on token {tokens[p]!r} (position {p})"
    if kind == "attn":
        return f"attention at layer {idx[0]}"
    if kind == "mlp":
        return f"MLP at layer {idx[0]}"
    return f"head {idx[0]}.{idx[1]}"


def _top_components(effects: dict[str, torch.Tensor], method: str, tokens: list[str], k: int) -> list[Component]:
    """Top ``k`` by |effect|: at most 3 residual entries (they are mostly the changed token), then blocks and heads."""
    items: list[Component] = []
    for kind, t in effects.items():
        flat = [(idx, float(t[idx])) for idx in itertools.product(*[range(s) for s in t.shape])]
        flat = [(i, v) for i, v in flat if v == v]
        flat.sort(key=lambda x: -abs(x[1]))
        keep = flat[: 3 if kind == "resid" else k]
        for idx, v in keep:
            items.append(
                Component(
                    name=_component_name(kind, idx, tokens),
                    kind=kind,
                    layer=idx[0],
                    position=idx[1] if kind == "resid" else None,
                    token=tokens[idx[1]] if kind == "resid" else None,
                    head=idx[1] if kind == "heads" else None,
                    effect=round(v, 4),
                    method=method,
                )
            )
    items.sort(key=lambda c: -abs(c.effect))
    return items[:k]


def _layer_profile(eff: dict[str, torch.Tensor], changed: list[int], n_pos: int) -> dict:
    prof: dict = {}
    if "resid" in eff:
        r = eff["resid"]
        subj = max(changed) if changed else 0
        last = n_pos - 1
        prof["resid_at_changed_token"] = _r(r[:, subj])
        prof["resid_at_last_token"] = _r(r[:, last])
        prof["changed_position"] = subj
        handoff = None
        if subj != last:
            for l in range(r.shape[0]):
                if r[l, last] >= r[l, subj] and r[l, last] > 0.5:
                    handoff = l
                    break
        prof["handoff_layer"] = handoff
    for k in ("attn", "mlp"):
        if k in eff:
            prof[k] = _r(eff[k])
            prof[f"top_{k}_layer"] = int(eff[k].abs().argmax())
    if "heads" in eff:
        h = eff["heads"]
        i = int(h.abs().flatten().argmax())
        prof["top_head"] = f"{i // h.shape[1]}.{i % h.shape[1]}"
    return prof



class PatchReport(BaseModel):
    """Everything one patching question measured. JSON-serializable, no tensors."""

    model: str
    prompts: PromptPair
    answer: str
    alternative: str
    answer_token: str
    alternative_token: str
    metric: str  # what is measured, in words
    clean_metric: float
    corrupted_metric: float
    mode: Mode
    n_layers: int
    n_heads: int
    effects: dict[str, KindEffects]
    top_components: list[Component]
    layer_profile: dict
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    n_patched_runs: int = 0

    # ------------------------------------------------------------------ presentation
    def _labels(self) -> list[str]:
        toks = self.prompts.clean_tokens
        ch = set(self.prompts.changed_positions)
        return [f"{i} {t!r}{'*' if i in ch else ''}" for i, t in enumerate(toks)]

    def figures(self) -> list[Figure]:
        """The residual, attention/MLP and head heatmaps and line plots of the effects measured."""
        figs: list[Figure] = []
        labels = self._labels()
        layers = list(range(self.n_layers))
        r = self.effects.get("resid")
        for method in ("exact", "attribution"):
            z = getattr(r, method) if r else None
            if z is not None:
                figs.append(
                    Figure(
                        kind="heatmap",
                        title=f"Residual stream patching ({method}): {self.answer_token!r} vs {self.alternative_token!r}",
                        data={"z": z, "x": labels, "y": layers, "xlabel": "position (token; * = changed)", "ylabel": "layer (stream entering it)", "center": 0},
                        caption="Normalized effect of copying the clean residual stream at one layer and position into the corrupted run (1 = restores the clean answer).",
                    )
                )
        series = {}
        for k in ("attn", "mlp"):
            e = self.effects.get(k)
            if e is None:
                continue
            for method in ("exact", "attribution"):
                v = getattr(e, method)
                if v is not None:
                    series[f"{'attention' if k == 'attn' else 'MLP'} ({method})"] = v
        if series:
            figs.append(
                Figure(
                    kind="line",
                    title="Attention and MLP outputs patched by layer",
                    data={"x": layers, "series": series, "xlabel": "layer", "ylabel": "normalized effect"},
                    caption="Effect of copying one block's clean output (all positions) into the corrupted run.",
                )
            )
        h = self.effects.get("heads")
        for method in ("exact", "attribution"):
            z = getattr(h, method) if h else None
            if z is not None:
                figs.append(
                    Figure(
                        kind="heatmap",
                        title=f"Attention head patching ({method})",
                        data={"z": z, "x": [f"h{i}" for i in range(self.n_heads)], "y": layers, "xlabel": "head", "ylabel": "layer", "center": 0},
                        caption="Effect of copying one head's clean output (hook_z, all positions) into the corrupted run.",
                    )
                )
        return figs

    def summary(self) -> str:
        """The metrics and the strongest components, in words."""
        top = self.top_components[0] if self.top_components else None
        s = (
            f"Logit difference {self.answer_token!r} - {self.alternative_token!r}: {self.clean_metric:.2f} on the clean prompt, "
            f"{self.corrupted_metric:.2f} on the corrupted one."
        )
        if top is not None:
            s += f" The strongest component is {top.name} (normalized effect {top.effect:.2f}, {top.method})."
        blocks = [c for c in self.top_components if c.kind != "resid"]
        if top is not None and top.kind == "resid" and blocks:
            b = blocks[0]
            s += f" Among attention, MLP blocks and heads: {b.name} ({b.effect:.2f})."
        lp = self.layer_profile
        if lp.get("handoff_layer") is not None:
            s += f" The changed token's information reaches the last position around layer {lp['handoff_layer']}."
        return s

    def to_tool_result(self) -> ToolResult:
        """This report as the common tool result (summary, headline numbers, evidence, spans, figures)."""
        headline = {
            "clean_metric": round(self.clean_metric, 4),
            "corrupted_metric": round(self.corrupted_metric, 4),
            "top_component": self.top_components[0].name if self.top_components else None,
            "top_effect": round(self.top_components[0].effect, 4) if self.top_components else None,
        }
        for k, e in self.effects.items():
            if e.correlation is not None:
                headline[f"attribution_vs_exact_r_{k}"] = round(e.correlation, 3)
        evidence = [c.model_dump() for c in self.top_components]
        spans = []
        r = self.effects.get("resid")
        if r is not None:
            z = r.exact if r.exact is not None else r.attribution
            assert z is not None  # patch() fills at least one of the two
            best_layer = max(range(len(z)), key=lambda l: max(abs(v) for v in z[l]))
            spans.append(
                {
                    "tokens": self.prompts.clean_tokens,
                    "values": z[best_layer],
                    "note": f"residual patching effect per token entering layer {best_layer}",
                }
            )
        return ToolResult(
            tool="patch",
            summary=self.summary(),
            headline=headline,
            evidence=evidence,
            spans=spans,
            figures=self.figures(),
            provenance=provenance(None, model=self.model, metric=self.metric, mode=self.mode, clean=self.prompts.clean, corrupted=self.prompts.corrupted),
            timings=self.timings,
            warnings=self.warnings + self.notes,
            data=self.model_dump(mode="json"),
        )


class TraceReport(BaseModel):
    """Causal tracing of a fact (Meng et al. 2022): where the subject's information matters."""

    model: str
    prompt: str
    tokens: list[str]
    subject: str
    subject_positions: list[int]
    answer: str
    answer_token: str
    metric: str
    p_clean: float
    p_corrupted: float  # mean over noise samples
    p_corrupted_samples: list[float]
    noise_std: float
    samples: int
    window: int
    kinds: list[str]
    # kind -> [layer][position] answer probability with that state restored (mean over samples)
    grids: dict[str, list[list[float]]]
    peaks: dict[str, TracePeak]
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    n_restored_runs: int = 0

    def figures(self) -> list[Figure]:
        """One heatmap (position x layer) of the restored answer probability per traced kind."""
        subj = set(self.subject_positions)
        labels = [f"{i} {t!r}{'*' if i in subj else ''}" for i, t in enumerate(self.tokens)]
        what = {"resid": "hidden state (residual after the layer)", "mlp": f"MLP output ({self.window}-layer window)", "attn": f"attention output ({self.window}-layer window)"}
        figs = []
        for k, g in self.grids.items():
            z = [list(col) for col in zip(*g)]  # positions x layers, as in the paper
            figs.append(
                Figure(
                    kind="heatmap",
                    title=f"Causal trace: restoring the {what[k]}; p({self.answer_token!r})",
                    data={"z": z, "x": list(range(len(g))), "y": labels, "xlabel": "layer", "ylabel": "position (* = noised subject token)"},
                    caption=(
                        f"Probability of {self.answer_token!r} when one clean state is restored into a run with the subject's "
                        f"embeddings noised (clean {self.p_clean:.3f}, noised {self.p_corrupted:.3f}; mean of {self.samples} noise samples)."
                    ),
                )
            )
        return figs

    def summary(self) -> str:
        """The drop in answer probability and where restoring a state brings it back, in words."""
        s = (
            f"Noising {self.subject!r} drops p({self.answer_token!r}) from {self.p_clean:.3f} to {self.p_corrupted:.3f}."
        )
        for k, pk in self.peaks.items():
            word = {"resid": "hidden state", "mlp": "MLP output", "attn": "attention output"}[k]
            s += f" Restoring the {word} at layer {pk.layer} on {pk.token!r} brings it back to {pk.p:.3f} (effect {pk.effect:.2f})."
        return s

    def to_tool_result(self) -> ToolResult:
        """This report as the common tool result (summary, headline numbers, peaks as evidence, figures)."""
        headline: dict[str, Any] = {"p_clean": round(self.p_clean, 4), "p_corrupted": round(self.p_corrupted, 4)}
        for k, pk in self.peaks.items():
            headline[f"peak_{k}"] = f"layer {pk.layer}, token {pk.token!r}"
            headline[f"peak_{k}_effect"] = round(pk.effect, 4)
        return ToolResult(
            tool="causal_trace",
            summary=self.summary(),
            headline=headline,
            evidence=[{"kind": k, **pk.model_dump()} for k, pk in self.peaks.items()],
            figures=self.figures(),
            provenance=provenance(None, model=self.model, prompt=self.prompt, subject=self.subject, noise_std=self.noise_std, samples=self.samples),
            timings=self.timings,
            warnings=self.warnings + self.notes,
            data=self.model_dump(mode="json"),
        )
