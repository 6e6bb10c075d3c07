"""Activation patching, attribution patching and causal tracing: which components *cause* an answer.

The question these tools answer: the model says " Paris" after "The capital of France is";
which layers, positions, attention heads and MLPs carry the information that makes it say
that rather than " Rome"?

**Activation patching** (Vig et al. 2020, Meng et al. 2022, Wang et al. 2022; the
"best practices" of Zhang & Nanda 2023 and Heimersheim & Nanda 2024). Run the model on a
*clean* prompt ("... France is") and on a *corrupted* one that differs in one place
("... Italy is"). The metric is the logit difference ``logit(answer) - logit(alternative)``
at the last position. Then run the corrupted prompt again, but copy ONE activation from the
clean run into it (the residual stream entering layer L at position P, the output of the
attention or MLP block of layer L, or one attention head's output). The normalized effect

    effect = (patched - corrupted) / (clean - corrupted)

is 1 when that single activation restores the clean answer completely, 0 when it does
nothing, and can be negative or above 1. Patching a whole layer's residual at every position
restores the clean run exactly (effect 1), patching nothing leaves it at 0: the unit tests
check both.

*Cost.* A patched run is identical to the corrupted run up to the layer it patches, so every
run that patches layer L starts from the corrupted residual stream entering layer L and runs
only layers L..n-1, and all runs that start at the same layer are stacked into one batch
(chunked to bound memory). Only the last position is unembedded, and only for the two
tokens compared. A full sweep therefore costs less than the same number of plain forwards
(``benchmarks/bench_patching.py`` measures both side by side).

**Attribution patching** (Nanda 2023; Syed et al. 2023, "AtP"). The linear approximation
``patched - corrupted ≈ (a_clean - a_corrupted) · ∂metric/∂a`` evaluated on the corrupted
run gives an estimate for *every* component from one forward and one backward pass (plus
the clean forward for ``a_clean``). It is good for small, local changes and can miss
saturated nonlinearities (attention patterns, norms), so gnothi reports its agreement with
the exact sweep when both run.

**Causal tracing** (Meng et al. 2022, ROME). Corrupt the *subject's* token embeddings with
Gaussian noise (3x the embedding standard deviation), then restore one clean hidden state
(the residual stream after layer L at position P, or the MLP / attention output over a
window of layers) and measure how much of the answer's probability comes back. It shows
where the subject's information matters: at the last subject token in early-middle MLPs,
and at the last token in later layers.

Multi-token answers: the metric is the logit difference at the FIRST token where answer
and alternative differ; any shared leading tokens (" New York" vs " New Delhi" share
" New") are appended to both prompts first, so the comparison is made where the two answers
actually diverge. Later answer tokens are not measured (each report says so).
"""

from __future__ import annotations

import difflib
import itertools
import re
import time
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from pydantic import BaseModel, Field

from . import tokens as tok_text
from .stats import pearson
from .errors import InputError, PromptAlignmentError
from .results import Figure, ToolResult, provenance

Mode = Literal["exact", "attribution", "both"]
KINDS = ("resid", "attn", "mlp", "heads")
KIND_WORDS = {"resid": "residual stream", "attn": "attention output", "mlp": "MLP output", "heads": "attention heads"}

# Words that automatic corruption may swap for one another (same category, same token length).
ENTITIES: dict[str, list[str]] = {
    "country": (
        "France Italy Germany Spain Japan China India Russia Brazil Canada Egypt Greece Poland Sweden Norway "
        "Mexico Turkey Ireland Portugal Austria Kenya Peru Chile Cuba Iran Iraq Israel Belgium Denmark Finland "
        "Hungary Vietnam Thailand Argentina Australia Nigeria Morocco Switzerland Netherlands England Scotland"
    ).split(),
    "city": (
        "Paris Rome London Berlin Madrid Tokyo Moscow Vienna Athens Cairo Dublin Lisbon Warsaw Prague Oslo "
        "Beijing Delhi Sydney Toronto Chicago Boston Seattle Amsterdam Brussels Stockholm Helsinki Budapest "
        "Istanbul Mumbai Shanghai Munich Milan Venice Barcelona Lyon Geneva Ottawa Lima Havana"
    ).split(),
    "first_name": (
        "John Mary James Anna David Sarah Michael Emma Tom Lisa Paul Kate Mark Alice Peter Laura George "
        "Susan Robert Helen Daniel Jane Steven Emily Richard Linda Thomas Julia Chris Rachel Brian Amy "
        "Kevin Claire Eric Sophie Adam Grace Sam Lucy"
    ).split(),
    "animal": "cat dog bird fish horse cow sheep pig mouse lion tiger bear wolf fox rabbit duck goat deer".split(),
    "object": "car house tree book table chair door ball cup box pen phone bike boat key hat shoe bag".split(),
}
_WORD_CATEGORY = {w.lower(): c for c, ws in ENTITIES.items() for w in ws}


# ============================================================================ pydantic schemas


class PatchArgs(BaseModel):
    """Arguments of :func:`patch` as a tool call (validated by the orchestrator)."""

    clean: str = Field(description="the prompt whose answer we explain, e.g. 'The capital of France is'")
    corrupted: str | None = Field(None, description="same prompt with one thing changed; built automatically when omitted")
    answer: str | None = Field(None, description="the clean answer, e.g. ' Paris' (mind the leading space); default: the model's top prediction")
    alternative: str | None = Field(None, description="the competing answer, e.g. ' Rome'; default: the corrupted prompt's top prediction")
    mode: Mode = "both"
    kinds: list[Literal["resid", "attn", "mlp", "heads"]] = Field(default_factory=lambda: list(KINDS))
    top_k: int = Field(8, ge=1, le=50)


class TraceArgs(BaseModel):
    """Arguments of :func:`causal_trace` as a tool call."""

    prompt: str
    answer: str | None = None
    subject: str | None = Field(None, description="the words whose embeddings get noised; found automatically when omitted")
    samples: int = Field(3, ge=1, le=20)
    noise_scale: float = Field(3.0, gt=0)
    window: int = Field(5, ge=1, le=20)
    kinds: list[Literal["resid", "mlp", "attn"]] = Field(default_factory=lambda: ["resid", "mlp", "attn"])
    seed: int = 0


class Component(BaseModel):
    """One patched component and its normalized effect."""

    name: str  # in words: "MLP at layer 14", "head 9.3", "residual at layer 6 on token ' France'"
    kind: Literal["resid", "attn", "mlp", "heads"]
    layer: int
    position: int | None = None
    token: str | None = None
    head: int | None = None
    effect: float  # normalized (clean = 1, corrupted = 0)
    method: Literal["exact", "attribution"]


class KindEffects(BaseModel):
    """Normalized effects of one component kind.

    ``resid``: rows = layers (residual stream *entering* the layer), columns = positions.
    ``attn``/``mlp``: one value per layer (output of that block, all positions patched).
    ``heads``: rows = layers, columns = heads (that head's output, all positions patched).
    """

    kind: str
    exact: list | None = None
    attribution: list | None = None
    correlation: float | None = None  # Pearson r between exact and attribution (when both ran)


class PromptPair(BaseModel):
    clean: str
    corrupted: str
    clean_tokens: list[str]
    corrupted_tokens: list[str]
    changed_positions: list[int]
    auto: bool = False
    note: str = ""


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


# ============================================================================ metric and prompts


@dataclass
class _Metric:
    answer_id: int
    alt_id: int
    suffix: list[int]  # shared leading answer tokens appended to both prompts
    answer: str
    alternative: str
    note: str


def _ids(handle, text: str) -> list[int]:
    return list(handle.tokenizer(text, add_special_tokens=False)["input_ids"])


def _tok_str(handle, i: int) -> str:
    return tok_text.label(handle.tokenizer, i)


def _build_metric(handle, answer: str, alternative: str) -> _Metric:
    if not isinstance(answer, str) or answer == "":
        raise InputError("The answer is empty.", "Give the answer the model should produce, e.g. --answer ' Paris' (mind the leading space).")
    if not isinstance(alternative, str) or alternative == "":
        raise InputError("The alternative answer is empty.", "Give a competing answer, e.g. --alternative ' Rome', or leave it out to use the corrupted prompt's top prediction.")
    a, b = _ids(handle, answer), _ids(handle, alternative)
    if a == b:
        raise InputError(
            f"The answer {answer!r} and the alternative {alternative!r} are the same tokens.",
            "Pick an alternative the model could say instead, e.g. the answer for the corrupted prompt.",
        )
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == len(a) or k == len(b):
        short, long_ = (answer, alternative) if k == len(a) else (alternative, answer)
        raise InputError(
            f"{short!r} is a prefix of {long_!r} at the token level, so no token tells them apart.",
            "Use answers that differ in at least one token position, e.g. ' Paris' vs ' Rome'.",
        )
    note = f"logit({_tok_str(handle, a[k])!r}) - logit({_tok_str(handle, b[k])!r}) at the last position"
    if k > 0:
        note += (
            f", after appending the shared answer tokens {[_tok_str(handle, t) for t in a[:k]]} to both prompts "
            "(the answers share them; this is the first token where they differ)"
        )
    if len(a) > k + 1 or len(b) > k + 1:
        note += f". The answers are {len(a)} and {len(b)} tokens; only this first differing token is measured, later tokens are not"
    return _Metric(a[k], b[k], a[:k], answer, alternative, note)


def _prompt_tokens(handle, text: str, suffix: Sequence[int] = ()) -> torch.Tensor:
    if not isinstance(text, str) or not text.strip():
        raise InputError("The prompt is empty.", "Give a prompt, e.g. --clean 'The capital of France is'.")
    toks = handle.to_tokens(text)
    if suffix:
        toks = torch.cat([toks, torch.tensor([list(suffix)], dtype=toks.dtype, device=toks.device)], dim=1)
    return toks


def _word_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word.lower()


def _same_length_options(handle, word: str, n_tokens: int, limit: int = 6) -> list[str]:
    cat = _WORD_CATEGORY.get(word.strip().lower())
    pool = ENTITIES[cat] if cat else [w for ws in ENTITIES.values() for w in ws if w[:1].isupper()]
    out = []
    for w in pool:
        w = _word_case(word.strip(), w)
        if w.lower() == word.strip().lower():
            continue
        if len(_ids(handle, " " + w)) == n_tokens:
            out.append(w)
        if len(out) >= limit:
            break
    return out


def _length_mismatch(handle, clean: str, corrupted: str, ct: list[int], rt: list[int]) -> PromptAlignmentError:
    cs, rs = [_tok_str(handle, t) for t in ct], [_tok_str(handle, t) for t in rt]
    sm = difflib.SequenceMatcher(a=ct, b=rt, autojunk=False)
    diffs = [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal"]
    parts = [f"{''.join(cs[i1:i2])!r} ({i2 - i1} token{'s' if i2 - i1 != 1 else ''}) became {''.join(rs[j1:j2])!r} ({j2 - j1} token{'s' if j2 - j1 != 1 else ''})" for i1, i2, j1, j2 in diffs]
    fix = "Give a corrupted prompt with the same number of tokens (swap a word for one of the same token length), or leave --corrupted out to build one automatically."
    if len(diffs) == 1:
        i1, i2, _, _ = diffs[0]
        word = "".join(cs[i1:i2])
        opts = _same_length_options(handle, word, i2 - i1)
        if opts:
            fix = f"Swap {word.strip()!r} for a word of the same token length, e.g. {', '.join(opts)}; or leave --corrupted out to build one automatically."
    return PromptAlignmentError(
        f"The clean prompt is {len(ct)} tokens and the corrupted one {len(rt)}: {'; '.join(parts) or 'they differ'}. "
        "Patching copies activations position by position, so both prompts must line up token for token.",
        fix,
    )


def align_prompts(handle, clean: str, corrupted: str, suffix: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor, PromptPair]:
    """Tokenize clean and corrupted prompts that line up token for token, or refuse with the reason.

    Raises :class:`InputError` when the token counts differ (with the differing spans and
    same-length replacements to use instead) or when the two prompts are the same tokens.
    """
    ct = _prompt_tokens(handle, clean, suffix)
    if not isinstance(corrupted, str) or not corrupted.strip():
        raise InputError("The corrupted prompt is empty.", "Give one, or leave --corrupted out to build one automatically.")
    rt = _prompt_tokens(handle, corrupted, suffix)
    if ct.shape[1] != rt.shape[1]:
        raise _length_mismatch(handle, clean, corrupted, ct[0].tolist(), rt[0].tolist())
    changed = (ct[0] != rt[0]).nonzero().flatten().tolist()
    if not changed:
        raise InputError(
            "The clean and corrupted prompts are the same tokens, so there is nothing to patch.",
            "Change the subject or a name in the corrupted prompt (same token length), or leave --corrupted out.",
        )
    pair = PromptPair(
        clean=clean,
        corrupted=corrupted,
        clean_tokens=handle.str_tokens(ct[0]),
        corrupted_tokens=handle.str_tokens(rt[0]),
        changed_positions=changed,
    )
    return ct, rt, pair


@dataclass
class Corruption:
    corrupted: str
    original: str
    replacement: str
    category: str
    tried: int
    metric: float  # the corrupted metric of the chosen swap
    alternative_id: int | None = None


_WORD_RE = re.compile(r"[A-Za-z]+")


def _last_logits(handle, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position for a batch of equal-length prompts: ``[batch, vocab]``."""
    with torch.inference_mode():
        resid = handle.run_with_hooks(tokens, stop_at_layer=handle.n_layers)
        out = handle.unembed(handle.final_norm(resid[:, -1:, :]))[:, 0].float()
    return out.clone()  # a normal tensor, editable outside inference mode


def auto_corrupt(handle, clean: str, answer_id: int, alt_id: int | None = None, suffix: Sequence[int] = (), max_candidates: int = 64) -> Corruption:
    """Build a corrupted prompt by swapping the subject or a name for another of the same token length.

    Candidate sites are words of the prompt found in :data:`ENTITIES` (countries, cities,
    first names, animals, objects; then any capitalized word after the first); candidate
    replacements are words of the same category whose swap keeps every other token in
    place. All candidates run in one batch; the swap that lowers the metric most is kept
    (with no alternative given: the one that pushes the answer furthest below the
    corrupted prompt's own top prediction, which becomes the alternative).
    """
    base = _prompt_tokens(handle, clean, suffix)[0]
    n = base.shape[0]
    words = list(_WORD_RE.finditer(clean))
    sites = [m for m in words if m.group(0).lower() in _WORD_CATEGORY]
    if not sites:
        sites = [m for m in words[1:] if m.group(0)[:1].isupper()]
    if not sites:
        raise PromptAlignmentError(
            f"Could not find a subject or name to swap in {clean!r} (no known country, city, name, animal or object, and no capitalized word).",
            "Give --corrupted yourself: the same prompt with the subject swapped for a word of the same token length.",
        )
    unk = getattr(handle.tokenizer, "unk_token_id", None)
    cands: list[tuple[str, str, str, str, torch.Tensor]] = []
    seen = set()
    for m in sites:
        word = m.group(0)
        cat = _WORD_CATEGORY.get(word.lower(), "name")
        pool = ENTITIES.get(cat) or [w for ws in ENTITIES.values() for w in ws if w[:1].isupper()]
        pat = re.compile(r"\b" + re.escape(word) + r"\b")
        for w in pool:
            w = _word_case(word, w)
            if w.lower() == word.lower() or (word, w) in seen:
                continue
            seen.add((word, w))
            text = pat.sub(w, clean)
            t = _prompt_tokens(handle, text, suffix)[0]
            if t.shape[0] != n or (unk is not None and bool((t == unk).any()) and not bool((base == unk).any())):
                continue
            cands.append((text, word, w, cat, t))
    if not cands:
        raise PromptAlignmentError(
            f"Found {', '.join(repr(m.group(0)) for m in sites)} to swap, but no replacement keeps the prompt's token count ({n}).",
            "Give --corrupted yourself with the same number of tokens.",
        )
    # spread candidates over sites before truncating
    by_site: dict[str, list] = {}
    for c in cands:
        by_site.setdefault(c[1], []).append(c)
    mixed = []
    while any(by_site.values()) and len(mixed) < max_candidates:
        for k in list(by_site):
            if by_site[k]:
                mixed.append(by_site[k].pop(0))
    toks = torch.stack([c[4] for c in mixed])
    scores, alts = [], []
    for i in range(0, len(mixed), 32):
        lg = _last_logits(handle, toks[i : i + 32])
        if alt_id is not None:
            scores.append(lg[:, answer_id] - lg[:, alt_id])
            alts.append(torch.full((lg.shape[0],), alt_id))
        else:
            other = lg.clone()
            other[:, answer_id] = float("-inf")
            best, arg = other.max(dim=-1)
            scores.append(lg[:, answer_id] - best)
            alts.append(arg)
    scores_t, alts_t = torch.cat(scores), torch.cat(alts)
    j = int(scores_t.argmin())
    text, word, w, cat, _ = mixed[j]
    return Corruption(text, word, w, cat, len(mixed), float(scores_t[j]), int(alts_t[j]))


# ============================================================================ the patching engine


@dataclass(frozen=True)
class PatchSpec:
    """One patched run: copy source activations at these hook points into the base run.

    ``patches``: ``(hook_name, layer, position or None for all, head or None)``. ``sample``
    picks the base run when there are several (noise samples in causal tracing).
    """

    patches: tuple[tuple[str, int, int | None, int | None], ...]
    sample: int = 0

    @property
    def start(self) -> int:
        return min(p[1] for p in self.patches) if self.patches else 0


def _make_hook(rows: list[tuple[int, int | None, int | None]], source: torch.Tensor):
    """Hook copying ``source`` (``[1 or S, pos, ...]``, clean run) into the given batch rows."""

    def fn(act, hook):
        for r, pos, head, s in rows:
            src = source[s if source.shape[0] > 1 else 0]
            if head is None:
                if pos is None:
                    act[r] = src
                else:
                    act[r, pos] = src[pos]
            else:
                if pos is None:
                    act[r, :, head] = src[:, head]
                else:
                    act[r, pos, head] = src[pos, head]
        return act

    return fn


def run_specs(
    handle,
    base_resid: dict[int, torch.Tensor],
    source: dict[str, torch.Tensor],
    specs: Sequence[PatchSpec],
    readout: Callable[[torch.Tensor], torch.Tensor],
    token_budget: int = 4096,
    source_sample: bool = False,
    grow: bool = True,
) -> torch.Tensor:
    """Run every patched run in ``specs``, batched; returns ``readout`` per spec.

    A run is the base run up to the first layer it patches, so it starts there, from the
    base residual stream. ``grow=True`` (default) runs the model one block at a time on a
    batch that grows as runs reach their start layer; ``grow=False`` runs each start
    layer's runs as their own batch through the rest of the model (more, smaller calls).

    ``base_resid[L]``: the base (corrupted) run's residual stream entering layer L,
    ``[S, pos, d_model]``. ``source[name]``: activations to copy in (``[1, ...]``, or
    ``[S, ...]`` with ``source_sample``). ``readout`` maps final residuals ``[B, pos, d_model]``
    to one number per run ``[B]``.
    """
    out = torch.empty(len(specs))
    if not specs:
        return out
    pos = next(iter(base_resid.values())).shape[1]
    chunk = max(1, token_budget // pos)
    if not grow:
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(specs):
            groups.setdefault(s.start, []).append(i)
        for start in sorted(groups):
            idxs = groups[start]
            for c in range(0, len(idxs), chunk):
                part = idxs[c : c + chunk]
                samples = torch.tensor([specs[i].sample for i in part])
                resid = base_resid[start][samples].clone()
                by_hook: dict[str, list] = {}
                for r, i in enumerate(part):
                    for name, _layer, p, h in specs[i].patches:
                        by_hook.setdefault(name, []).append((r, p, h, specs[i].sample if source_sample else 0))
                hooks = [(name, _make_hook(rows, source[name])) for name, rows in by_hook.items()]
                final = handle.run_from(resid, start, None, hooks)
                out[torch.tensor(part)] = readout(final).float().cpu()
        return out
    # growing batch: rows join when the layer they start at comes up, so every block runs once
    # per chunk on every run that needs it, in the largest batch possible
    order = sorted(range(len(specs)), key=lambda i: specs[i].start)
    L = handle.n_layers
    for c in range(0, len(order), chunk):
        part = order[c : c + chunk]
        resid = None
        for l in range(specs[part[0]].start, L):
            new = [i for i in part if specs[i].start == l]
            if new:
                add = base_resid[l][torch.tensor([specs[i].sample for i in new])].clone()
                resid = add if resid is None else torch.cat([resid, add])
            by_hook = {}
            for r, i in enumerate(part[: resid.shape[0]]):
                for name, layer, p, h in specs[i].patches:
                    if layer == l:
                        by_hook.setdefault(name, []).append((r, p, h, specs[i].sample if source_sample else 0))
            hooks = [(name, _make_hook(rows, source[name])) for name, rows in by_hook.items()]
            resid = handle.run_from(resid, l, l + 1, hooks)
        out[torch.tensor(part)] = readout(resid).float().cpu()
    return out


def _logit_diff_readout(handle, metric: _Metric) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logit difference at the last position, unembedding only the two compared tokens."""
    with torch.inference_mode():
        ids = torch.tensor([metric.answer_id, metric.alt_id], device=handle.device)
        W = handle.W_U()[:, ids]  # [d_model, 2]
        zero = torch.zeros(1, 1, handle.d_model, dtype=W.dtype, device=W.device)
        bias = handle.unembed(zero)[0, 0, ids]  # b_U (zeros when the model has none)
    cap = handle.logit_soft_cap

    def readout(final: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = handle.final_norm(final[:, -1:, :])[:, 0]
            lg = x @ W + bias
            if cap > 0:
                lg = cap * torch.tanh(lg / cap)
            return lg[:, 0] - lg[:, 1]

    return readout


def _names_for(handle, kinds: Sequence[str]) -> list[str]:
    names = [handle.hook_name("resid_pre", l) for l in range(handle.n_layers)]
    for l in range(handle.n_layers):
        if "attn" in kinds:
            names.append(handle.hook_name("attn_out", l))
        if "mlp" in kinds:
            names.append(handle.hook_name("mlp_out", l))
        if "heads" in kinds:
            names.append(handle.hook_name("head_out", l))
    return names


def build_specs(handle, kinds: Sequence[str], n_pos: int, first_changed: int = 0) -> list[tuple[str, tuple, PatchSpec]]:
    """The standard sweep: residual by layer x position, attn/MLP output by layer, heads by layer x head.

    Residual positions before ``first_changed`` are left out: there the clean and corrupted
    streams are identical (causal attention), so patching them has exactly zero effect.
    """
    out = []
    for l in range(handle.n_layers):
        if "resid" in kinds:
            name = handle.hook_name("resid_pre", l)
            for p in range(first_changed, n_pos):
                out.append(("resid", (l, p), PatchSpec(((name, l, p, None),))))
        if "attn" in kinds:
            out.append(("attn", (l,), PatchSpec(((handle.hook_name("attn_out", l), l, None, None),))))
        if "mlp" in kinds:
            out.append(("mlp", (l,), PatchSpec(((handle.hook_name("mlp_out", l), l, None, None),))))
        if "heads" in kinds:
            name = handle.hook_name("head_out", l)
            for h in range(handle.n_heads):
                out.append(("heads", (l, h), PatchSpec(((name, l, None, h),))))
    return out


def exact_sweep(
    handle,
    clean_cache: dict,
    corrupted_cache: dict,
    metric: _Metric,
    kinds: Sequence[str],
    n_pos: int,
    token_budget: int = 4096,
    first_changed: int = 0,
    corrupted_metric: float | None = None,
    grow: bool = True,
) -> tuple[dict[str, torch.Tensor], int]:
    """Patched metric (raw logit difference) for every component of ``kinds``; returns it and the number of runs."""
    specs = build_specs(handle, kinds, n_pos, first_changed if corrupted_metric is not None else 0)
    base = {l: corrupted_cache[handle.hook_name("resid_pre", l)] for l in range(handle.n_layers)}
    vals = run_specs(handle, base, clean_cache, [s for _, _, s in specs], _logit_diff_readout(handle, metric), token_budget, grow=grow)
    L = handle.n_layers
    shapes = {"resid": (L, n_pos), "attn": (L,), "mlp": (L,), "heads": (L, handle.n_heads)}
    res = {k: torch.full(shapes[k], float("nan")) for k in kinds}
    if "resid" in kinds and corrupted_metric is not None:
        res["resid"][:, :first_changed] = corrupted_metric  # identical streams there: no effect
    for (kind, idx, _), v in zip(specs, vals):
        res[kind][idx] = v
    return res, len(specs)


def attribution_sweep(handle, corrupted_tokens: torch.Tensor, clean_cache: dict, metric: _Metric, kinds: Sequence[str]) -> tuple[dict[str, torch.Tensor], float]:
    """Attribution patching: one forward + backward on the corrupted prompt.

    Returns the estimated patched-minus-corrupted metric change for each component,
    ``(a_clean - a_corrupted) · ∂metric/∂a``, and the corrupted metric of that run.
    """
    names = _names_for(handle, kinds)
    first = names[0]  # resid_pre of layer 0: made a leaf that requires grad
    store: dict[str, torch.Tensor] = {}

    def seed(act, hook):
        act = act.detach().clone().requires_grad_(True)
        store[hook.name] = act
        return act

    def keep(act, hook):
        store[hook.name] = act

    hooks = [(first, seed)] + [(n, keep) for n in names[1:]]
    logits = handle.run_with_hooks(corrupted_tokens, fwd_hooks=hooks, grad=True)
    with torch.enable_grad():
        m = logits[0, -1, metric.answer_id] - logits[0, -1, metric.alt_id]
        grads = torch.autograd.grad(m, [store[n] for n in names])
    g = dict(zip(names, grads))
    L = handle.n_layers
    res: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        diff = {n: (clean_cache[n].float() - store[n].detach().float()) * g[n].float() for n in names}
        if "resid" in kinds:
            res["resid"] = torch.stack([diff[handle.hook_name("resid_pre", l)][0].sum(-1) for l in range(L)])
        if "attn" in kinds:
            res["attn"] = torch.stack([diff[handle.hook_name("attn_out", l)].sum() for l in range(L)])
        if "mlp" in kinds:
            res["mlp"] = torch.stack([diff[handle.hook_name("mlp_out", l)].sum() for l in range(L)])
        if "heads" in kinds:
            res["heads"] = torch.stack([diff[handle.hook_name("head_out", l)][0].sum(dim=(0, 2)) for l in range(L)])
    return res, float(m.detach())


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


def patch(
    handle,
    clean: str,
    corrupted: str | None = None,
    answer: str | None = None,
    alternative: str | None = None,
    mode: Mode = "both",
    kinds: Sequence[str] = KINDS,
    top_k: int = 8,
    token_budget: int = 4096,
    max_positions: int = 64,
) -> PatchReport:
    """Which components cause ``answer`` (vs ``alternative``) on ``clean``? Activation / attribution patching.

    ``corrupted``: same number of tokens as ``clean``; built automatically when ``None``
    (the subject or a name swapped for another of the same token length, see
    :func:`auto_corrupt`). ``answer``: default the model's top prediction on ``clean``.
    ``alternative``: default the corrupted prompt's top prediction. ``mode``: ``exact``
    (batched activation patching), ``attribution`` (gradient estimate, one forward +
    backward), or ``both`` (and their agreement). ``kinds``: any of ``resid`` (layer x
    position), ``attn`` and ``mlp`` (by layer), ``heads`` (layer x head). An exact residual
    sweep is refused above ``max_positions`` tokens (attribution mode has no such limit).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    warnings: list[str] = []
    if mode not in ("exact", "attribution", "both"):
        raise InputError(f"Unknown mode {mode!r}.", "Use exact, attribution or both.")
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"Unknown component kind(s) {unknown}.", f"Pick from: {', '.join(KINDS)}.")
    kinds = [k for k in KINDS if k in set(kinds)]
    if not kinds:
        raise InputError("No component kinds to patch.", f"Pick some of: {', '.join(KINDS)}.")
    if not isinstance(clean, str) or not clean.strip():
        raise InputError("The clean prompt is empty.", "Give a prompt, e.g. --clean 'The capital of France is'.")
    if answer is None:
        answer_id = int(_last_logits(handle, _prompt_tokens(handle, clean))[0].argmax())
        answer = _tok_str(handle, answer_id)
        notes.append(f"No answer given: using the model's top prediction on the clean prompt, {answer!r}.")
    auto = None
    if alternative is None:
        a_ids = _ids(handle, answer)
        if not a_ids:
            raise InputError("The answer is empty after tokenization.", "Give an answer such as ' Paris'.")
        if corrupted is None:
            auto = auto_corrupt(handle, clean, a_ids[0])
            corrupted = auto.corrupted
            alt_id = auto.alternative_id
        else:
            ct = _prompt_tokens(handle, corrupted)
            lg = _last_logits(handle, ct)[0]
            lg[a_ids[0]] = float("-inf")
            alt_id = int(lg.argmax())
        alternative = _tok_str(handle, alt_id)
        notes.append(f"No alternative given: using {alternative!r}, the corrupted prompt's top prediction other than the answer.")
    metric = _build_metric(handle, answer, alternative)
    if corrupted is None:
        auto = auto_corrupt(handle, clean, metric.answer_id, metric.alt_id, suffix=metric.suffix)
        corrupted = auto.corrupted
    ct, rt, pair = align_prompts(handle, clean, corrupted, metric.suffix)
    if auto is not None:
        pair.auto = True
        pair.note = (
            f"Corrupted prompt built automatically: swapped {auto.original!r} for {auto.replacement!r} "
            f"(a {auto.category.replace('_', ' ')} of the same token length; the strongest of {auto.tried} candidate swaps)."
        )
        notes.append(pair.note)
    if metric.suffix:
        pair.note = (pair.note + " " if pair.note else "") + f"The last {len(metric.suffix)} position(s) are the shared answer tokens appended to both prompts."
    n_pos = ct.shape[1]
    n_changed = len(pair.changed_positions)
    if n_changed > 1 and n_changed > (n_pos - 1) // 2:
        warnings.append(
            f"The prompts differ at {n_changed} of {n_pos} positions; a minimal corruption (one word swapped) gives cleaner, easier to read effects."
        )
    if mode != "attribution" and "resid" in kinds and n_pos > max_positions:
        raise InputError(
            f"The prompt is {n_pos} tokens; an exact residual sweep over {n_pos} positions x {handle.n_layers} layers is too slow to wait for here (limit {max_positions}).",
            "Use --mode attribution (one forward + backward for every component), drop resid from --kinds, or shorten the prompt.",
        )
    timings["prepare_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    names = _names_for(handle, kinds)
    clean_logits, clean_cache = handle.run_with_cache(ct, names, stop_early=False)
    corr_logits, corr_cache = handle.run_with_cache(rt, names, stop_early=False)
    clean_m = float(clean_logits[0, -1, metric.answer_id] - clean_logits[0, -1, metric.alt_id])
    corr_m = float(corr_logits[0, -1, metric.answer_id] - corr_logits[0, -1, metric.alt_id])
    timings["clean_and_corrupted_forward_s"] = time.perf_counter() - t1
    denom = clean_m - corr_m
    if abs(denom) < 1e-4:
        raise InputError(
            f"The corruption does not change the metric (clean {clean_m:.4f}, corrupted {corr_m:.4f}), so no effect can be normalized.",
            "Corrupt something the answer depends on (e.g. the subject), or pick an alternative the corrupted prompt prefers.",
        )
    if abs(denom) < 0.5:
        warnings.append(f"Clean and corrupted metrics differ by only {denom:.3f} logits: normalized effects are noisy.")
    if clean_m <= 0:
        warnings.append(f"On the clean prompt the model prefers {metric.alternative!r} over {metric.answer!r} (logit difference {clean_m:.2f}).")

    raw: dict[str, dict[str, torch.Tensor]] = {}
    n_runs = 0
    if mode in ("exact", "both"):
        t2 = time.perf_counter()
        ex, n_runs = exact_sweep(handle, clean_cache, corr_cache, metric, kinds, n_pos, token_budget, min(pair.changed_positions), corr_m)
        raw["exact"] = {k: (v - corr_m) / denom for k, v in ex.items()}
        timings["exact_sweep_s"] = time.perf_counter() - t2
    if mode in ("attribution", "both"):
        t3 = time.perf_counter()
        at, _ = attribution_sweep(handle, rt, clean_cache, metric, kinds)
        raw["attribution"] = {k: v / denom for k, v in at.items()}
        timings["attribution_sweep_s"] = time.perf_counter() - t3
    effects = {}
    for k in kinds:
        e = KindEffects(kind=k)
        if "exact" in raw:
            e.exact = _r(raw["exact"][k])
        if "attribution" in raw:
            e.attribution = _r(raw["attribution"][k])
        if "exact" in raw and "attribution" in raw:
            e.correlation = _pearson(raw["exact"][k], raw["attribution"][k])
        effects[k] = e
    main = "exact" if "exact" in raw else "attribution"
    top = _top_components(raw[main], main, pair.clean_tokens, top_k)
    profile = _layer_profile(raw[main], pair.changed_positions, n_pos)
    profile["method"] = main
    if "mlp" in raw[main] and float(raw[main]["mlp"][0]) > 0.8:
        notes.append(
            "Attention and MLP outputs are patched at every position, the changed token's included; there the layer-0 MLP "
            "acts as part of the token's embedding, so its effect near 1 mostly says that the changed token matters."
        )
    if main == "attribution":
        notes.append("Effects are attribution-patching estimates (linear approximation); run mode exact to confirm the top ones.")
    timings["total_s"] = time.perf_counter() - t0
    return PatchReport(
        model=handle.name,
        prompts=pair,
        answer=metric.answer,
        alternative=metric.alternative,
        answer_token=_tok_str(handle, metric.answer_id),
        alternative_token=_tok_str(handle, metric.alt_id),
        metric=metric.note,
        clean_metric=round(clean_m, 4),
        corrupted_metric=round(corr_m, 4),
        mode=mode,
        n_layers=handle.n_layers,
        n_heads=handle.n_heads,
        effects=effects,
        top_components=top,
        layer_profile=profile,
        notes=notes,
        warnings=warnings,
        timings={k: round(v, 4) for k, v in timings.items()},
        n_patched_runs=n_runs,
    )


# ============================================================================ causal tracing


class TracePeak(BaseModel):
    layer: int
    position: int
    token: str
    p: float  # answer probability with this state restored (mean over noise samples)
    effect: float  # (p - p_corrupted) / (p_clean - p_corrupted)


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
        s = (
            f"Noising {self.subject!r} drops p({self.answer_token!r}) from {self.p_clean:.3f} to {self.p_corrupted:.3f}."
        )
        for k, pk in self.peaks.items():
            word = {"resid": "hidden state", "mlp": "MLP output", "attn": "attention output"}[k]
            s += f" Restoring the {word} at layer {pk.layer} on {pk.token!r} brings it back to {pk.p:.3f} (effect {pk.effect:.2f})."
        return s

    def to_tool_result(self) -> ToolResult:
        headline = {"p_clean": round(self.p_clean, 4), "p_corrupted": round(self.p_corrupted, 4)}
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


_CAP_RUN = re.compile(r"[A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*)*")


def find_subject(prompt: str) -> str:
    """A guess at the subject of ``prompt``: a known entity word, else the first run of capitalized words after the first word."""
    for m in _WORD_RE.finditer(prompt):
        if m.group(0).lower() in _WORD_CATEGORY and _WORD_CATEGORY[m.group(0).lower()] in ("country", "city", "first_name"):
            return m.group(0)
    for m in _CAP_RUN.finditer(prompt):
        if m.start() == 0:
            rest = m.group(0).split(None, 1)
            if len(rest) == 2:
                return rest[1]
            continue
        return m.group(0)
    for m in _WORD_RE.finditer(prompt):
        if m.group(0).lower() in _WORD_CATEGORY:
            return m.group(0)
    raise InputError(
        f"Could not tell what the subject of {prompt!r} is (no known entity and no capitalized name).",
        "Pass the subject to noise, e.g. --subject 'Eiffel Tower'.",
    )


def subject_positions(handle, prompt: str, subject: str) -> list[int]:
    """Token positions (with BOS at 0) covering the first occurrence of ``subject`` in ``prompt``."""
    start = prompt.find(subject)
    if start < 0:
        raise InputError(f"The subject {subject!r} does not occur in the prompt {prompt!r}.", "Give a subject that is written exactly as in the prompt.")
    end = start + len(subject)
    enc = handle.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    offset = 1 if handle.bos_token_id is not None else 0
    pos = [i + offset for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a]
    if not pos:
        raise InputError(f"No token of the prompt covers the subject {subject!r}.", "Give a subject made of whole words of the prompt.")
    return pos


def _embedding_std(handle, n: int = 4096) -> float:
    vocab = handle.shape.d_vocab
    ids = torch.linspace(0, vocab - 1, min(n, vocab)).long().to(handle.device)
    with torch.inference_mode():
        return float(handle.embed_tokens(ids[None]).float().std())


def causal_trace(
    handle,
    prompt: str,
    answer: str | None = None,
    subject: str | None = None,
    samples: int = 3,
    noise_scale: float = 3.0,
    window: int = 5,
    kinds: Sequence[str] = ("resid", "mlp", "attn"),
    seed: int = 0,
    token_budget: int = 4096,
) -> TraceReport:
    """Causal tracing (ROME): noise the subject's embeddings, restore one clean state, measure p(answer).

    ``samples`` noise draws (Gaussian, std = ``noise_scale`` x the embedding std) are
    averaged. ``kinds``: ``resid`` restores the residual stream after layer L at one
    position; ``mlp`` / ``attn`` restore that block's output at one position over a window
    of ``window`` layers centred on L (single layers have small effects, as in the paper).
    Positions before the first subject token are not noised, so restoring them changes
    nothing: they are filled with the noised probability without running.
    """
    t0 = time.perf_counter()
    notes: list[str] = []
    warnings: list[str] = []
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ("resid", "mlp", "attn")]
    if bad or not kinds:
        raise InputError(f"Unknown trace kind(s) {bad or kinds}.", "Pick from: resid, mlp, attn.")
    if not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples must be a positive integer, got {samples!r}.", "Use 1 to 20 noise samples (3 is a good start).")
    if window < 1:
        raise InputError(f"window must be at least 1, got {window!r}.", "Use 1 (single layer) to 10.")
    tokens = _prompt_tokens(handle, prompt)
    n_pos, L = tokens.shape[1], handle.n_layers
    if subject is None:
        subject = find_subject(prompt)
        notes.append(f"No subject given: noising {subject!r}.")
    subj = subject_positions(handle, prompt, subject)
    if answer is None:
        aid = int(_last_logits(handle, tokens)[0].argmax())
        answer = _tok_str(handle, aid)
        notes.append(f"No answer given: tracing the model's top prediction {answer!r}.")
    a_ids = _ids(handle, answer)
    if not a_ids:
        raise InputError("The answer is empty.", "Give the answer to trace, e.g. --answer ' Paris'.")
    aid = a_ids[0]
    metric = f"probability of {_tok_str(handle, aid)!r} at the last position"
    if len(a_ids) > 1:
        metric += f" (the first of the answer's {len(a_ids)} tokens; later tokens are not measured)"
    sigma = noise_scale * _embedding_std(handle)
    gen = torch.Generator().manual_seed(seed)
    noise = (torch.randn(samples, len(subj), handle.d_model, generator=gen) * sigma).to(handle.device, handle.dtype)
    subj_t = torch.tensor(subj, device=handle.device)

    # clean run: states to restore
    names = []
    for l in range(L):
        names.append(handle.hook_name("resid_post", l))
        if "mlp" in kinds:
            names.append(handle.hook_name("mlp_out", l))
        if "attn" in kinds:
            names.append(handle.hook_name("attn_out", l))
    clean_logits, clean = handle.run_with_cache(tokens, names, stop_early=False)
    p_clean = float(torch.softmax(clean_logits[0, -1].float(), -1)[aid])

    # noised runs: record the stream entering every layer (the starting points of restored runs)
    base: dict[int, torch.Tensor] = {}

    def add_noise(act, hook):
        act = act.clone()
        act[:, subj_t] = act[:, subj_t] + noise
        base[0] = act
        return act

    def record(l):
        def fn(act, hook):
            base[l] = act.clone()

        return fn

    hooks = [(handle.hook_name("resid_pre", 0), add_noise)] + [(handle.hook_name("resid_pre", l), record(l)) for l in range(1, L)]
    corr_logits = handle.run_with_hooks(tokens.repeat(samples, 1), fwd_hooks=hooks)
    p_corr_s = torch.softmax(corr_logits[:, -1].float(), -1)[:, aid]
    p_corr = float(p_corr_s.mean())
    if p_clean - p_corr < 0.02:
        warnings.append(
            f"Noising the subject barely changes p({answer!r}) ({p_clean:.3f} -> {p_corr:.3f}): the trace has little to restore. "
            "Try a larger noise_scale or a prompt whose answer depends on the subject."
        )

    def readout(final):
        with torch.inference_mode():
            lg = handle.unembed(handle.final_norm(final[:, -1:, :]))[:, 0].float()
            return torch.softmax(lg, -1)[:, aid]

    first = min(subj)
    specs: list[tuple[str, int, int, PatchSpec]] = []
    for k in kinds:
        for l in range(L):
            if k == "resid":
                layers = [l]
                hook_kind = "resid_post"
            else:
                lo, hi = max(0, l - window // 2), min(L, l - (-window // 2))
                layers = list(range(lo, hi))
                hook_kind = "mlp_out" if k == "mlp" else "attn_out"
            for p in range(first, n_pos):
                for s in range(samples):
                    spec = PatchSpec(tuple((handle.hook_name(hook_kind, x), x, p, None) for x in layers), sample=s)
                    specs.append((k, l, p, spec))
    t1 = time.perf_counter()
    vals = run_specs(handle, base, clean, [s for *_, s in specs], readout, token_budget)
    grids_t = {k: torch.full((L, n_pos, samples), p_corr) for k in kinds}
    for (k, l, p, spec), v in zip(specs, vals):
        grids_t[k][l, p, spec.sample] = v
    if first > 0:
        for k in kinds:
            grids_t[k][:, :first, :] = p_corr_s.cpu()[None, None, :]
    str_toks = handle.str_tokens(tokens[0])
    denom = p_clean - p_corr
    grids, peaks = {}, {}
    for k, g in grids_t.items():
        m = g.mean(-1)
        grids[k] = _r(m)
        i = int(m.flatten().argmax())
        l, p = i // n_pos, i % n_pos
        peaks[k] = TracePeak(
            layer=l,
            position=p,
            token=str_toks[p],
            p=round(float(m[l, p]), 4),
            effect=round((float(m[l, p]) - p_corr) / denom, 4) if abs(denom) > 1e-9 else 0.0,
        )
    return TraceReport(
        model=handle.name,
        prompt=prompt,
        tokens=str_toks,
        subject=subject,
        subject_positions=subj,
        answer=answer,
        answer_token=_tok_str(handle, aid),
        metric=metric,
        p_clean=round(p_clean, 4),
        p_corrupted=round(p_corr, 4),
        p_corrupted_samples=[round(float(x), 4) for x in p_corr_s],
        noise_std=round(sigma, 5),
        samples=samples,
        window=window,
        kinds=list(kinds),
        grids=grids,
        peaks=peaks,
        notes=notes,
        warnings=warnings,
        timings={"restore_sweep_s": round(time.perf_counter() - t1, 4), "total_s": round(time.perf_counter() - t0, 4)},
        n_restored_runs=len(specs),
    )


def differing_span(handle, clean: str, corrupted: str) -> str | None:
    """The words of ``clean`` that ``corrupted`` changes (the subject two prompts disagree on), or None."""
    try:
        ct = handle.tokenizer(clean, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError):  # a slow tokenizer has no offsets: the subject is guessed instead
        return None
    rt = handle.tokenizer(corrupted, add_special_tokens=False)["input_ids"]
    sm = difflib.SequenceMatcher(a=ct["input_ids"], b=rt, autojunk=False)
    spans = [(i1, i2) for tag, i1, i2, _, _ in sm.get_opcodes() if tag != "equal" and i2 > i1]
    if not spans:
        return None
    a, b = ct["offset_mapping"][spans[0][0]][0], ct["offset_mapping"][spans[-1][1] - 1][1]
    span = clean[a:b].strip()
    return span or None


def patch_or_trace(
    handle,
    clean: str,
    corrupted: str | None = None,
    answer: str | None = None,
    alternative: str | None = None,
    kinds: Sequence[str] = KINDS,
) -> PatchReport | TraceReport:
    """:func:`patch`, or causal tracing when the prompts cannot be lined up token for token.

    Activation patching copies activations position by position, so it needs a corrupted
    prompt with the clean one's token count. When the given prompts differ in length, or no
    same-length swap of the subject exists, this runs :func:`causal_trace` on ``clean``
    instead, noising the words the corrupted prompt changes (or the guessed subject), and
    says so in the report's warnings. Other input errors are raised as they are.
    """
    try:
        return patch(handle, clean, corrupted=corrupted, answer=answer, alternative=alternative, kinds=kinds)
    except PromptAlignmentError as e:
        why = e.message
    subject = differing_span(handle, clean, corrupted) if corrupted else None
    if subject is None or subject not in clean:
        subject = find_subject(clean)
    rep = causal_trace(handle, clean, answer=answer, subject=subject)
    rep.warnings.insert(0, f"Activation patching was not possible ({why.rstrip('.')}), so this is causal tracing instead: "
                           f"the subject {subject!r} was noised and each clean state restored in turn.")
    return rep
