"""One question: :func:`detect` answers it (or takes the given answer) and reports a
calibrated risk (:class:`HallucinationReport`), or an uncertainty-only fallback."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .. import hallu_data as D
from ..errors import InputError, NoAnswerError
from ..results import Figure, TokenSpan, ToolResult, provenance
from .detector import HallucinationDetector
from .signals import FALLBACK_SIGNAL, SIGNAL_TEXT, UNC_NAMES, compute_signals, scored_text
from .training import get_detector

if TYPE_CHECKING:
    from ..model import ModelHandle


class SignalValue(BaseModel):
    value: float  # the raw signal (probe: logit; uncertainty: nats)
    contribution: float | None = None  # log-odds it adds to the risk (trained detector)
    heldout_auroc: float | None = None  # how well this signal alone separated held-out answers
    meaning: str = ""


class HallucinationReport(BaseModel):
    question: str
    context_tokens: int = 0
    answer: str
    answer_source: str  # "model" (generated, greedy) or "given"
    scored_text: str  # the first sentence of the answer, which is what is scored
    risk: float  # 0..1: chance the answer is wrong or made up
    level: str  # low / medium / high
    detector: str  # "trained" (a saved or freshly trained detector) or "fallback"
    detector_how: str  # loaded / trained / fallback
    signals: dict[str, SignalValue]
    drivers: list[str]  # signals that pushed the risk most, in words
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    detector_info: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    model: str = ""

    def to_tool_result(self) -> ToolResult:
        how = "trained detector" if self.detector == "trained" else "uncertainty-only fallback (uncalibrated)"
        summary = (
            f"Hallucination risk {self.risk:.2f} ({self.level}) for the answer {self.scored_text!r}, from the {how}"
            + (f"; driven most by {self.drivers[0]}" if self.drivers else "")
            + "."
        )
        figs = []
        contrib = {k: v.contribution for k, v in self.signals.items() if v.contribution is not None}
        if contrib:
            figs.append(Figure(kind="bar", title="What drove the risk (log-odds added by each signal)", data={"labels": list(contrib), "values": list(contrib.values()), "ylabel": "log-odds"}))
        if self.tokens:
            figs.append(Figure(kind="tokens", title="Log-prob of each answer token (more negative: less sure)", data={"rows": [{"tokens": self.tokens, "values": self.token_logprobs}]}))
        return ToolResult(
            tool="hallucination",
            summary=summary,
            headline={"risk": self.risk, "level": self.level, "detector": self.detector, "answer": self.answer, "heldout_auroc": self.detector_info.get("heldout_auroc_combined")},
            evidence=[{"signal": k, **v.model_dump()} for k, v in self.signals.items()],
            spans=[TokenSpan(tokens=self.tokens, values=self.token_logprobs, note="log-prob of each answer token")] if self.tokens else [],
            figures=figs,
            provenance=provenance(None, model=self.model, detector=self.detector_info, decoding="greedy, chat template" if self.answer_source == "model" else "given answer"),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


def _level(r: float) -> str:
    return "low" if r < 0.33 else ("medium" if r < 0.66 else "high")


def detect(
    handle: ModelHandle,
    question: str,
    answer: str | None = None,
    context: str | None = None,
    train: bool = True,
    progress: bool = False,
    detector: HallucinationDetector | None = None,
) -> HallucinationReport:
    """Answer ``question`` with the model (or take ``answer``) and say how likely it is made up.

    ``context`` (optional) is put before the question in the user turn. ``train``: when
    this model has no saved detector, train one on the shipped fact table (minutes on a
    CPU; progress bar with ``progress``) instead of falling back to uncertainty alone.
    """
    t0 = time.perf_counter()
    if not isinstance(question, str) or not question.strip():
        raise InputError("The question is empty.", 'Ask a question, e.g. gnothi hallucination "What is the capital of Australia?"')
    if answer is not None and (not isinstance(answer, str) or not answer.strip()):
        raise InputError("The given answer is empty.", "Pass a non-empty --answer, or leave it out to let the model answer.")
    if context is not None and not isinstance(context, str):
        raise InputError("The context must be text.", "Pass the context as a string.")
    prompt = D.prompt_text(handle, question, context)
    n_prompt = len(D.prompt_ids(handle, prompt))
    budget = handle.shape.n_ctx - D.MAX_NEW_TOKENS
    if n_prompt > budget:
        ctx_tokens = len(handle.tokenizer(context, add_special_tokens=False)["input_ids"]) if context else 0
        raise InputError(
            f"The question{' and context' if context else ''} are {n_prompt} tokens; this model reads at most {handle.shape.n_ctx} "
            f"(with {D.MAX_NEW_TOKENS} kept for the answer)" + (f"; the context alone is {ctx_tokens} tokens." if context else "."),
            f"Shorten the {'context' if context else 'question'} to under about {max(1, budget - (n_prompt - ctx_tokens if context else 0))} tokens, "
            "keeping the passage the question is about.",
        )
    warns: list[str] = []
    if answer is None:
        t_gen = time.perf_counter()
        answer = D.generate_answers(handle, [prompt])[0]
        if not answer.strip():
            raise NoAnswerError(
                "The model produced no answer to this question (it ended its turn at once).",
                "Rephrase the question, or pass an answer to score with --answer.",
            )
        source = "model"
        gen_s = time.perf_counter() - t_gen
    else:
        source = "given"
        gen_s = 0.0
    det: HallucinationDetector | None
    if detector is not None:
        det, how = detector, "loaded"
    else:
        det, how, w = get_detector(handle, train=train, progress=progress)
        warns += w
    t_sig = time.perf_counter()
    layers = det.layers if det is not None else []
    sig = compute_signals(handle, [prompt], [answer], layers)
    sig_s = time.perf_counter() - t_sig
    unc = sig.unc[0]
    signals: dict[str, SignalValue] = {}
    if det is not None:
        feats = det.features(sig)[0]
        contrib = det.combiner.contributions(feats)
        risk = float(det.combiner.prob(feats[None])[0])
        au = det.meta.get("heldout_auroc", {})
        for name, v, c in zip(det.feature_names, feats, contrib):
            signals[name] = SignalValue(value=round(float(v), 4), contribution=round(float(c), 4), heldout_auroc=au.get(name), meaning=SIGNAL_TEXT[name])
        order = sorted(signals, key=lambda k: -abs(signals[k].contribution or 0.0))
        drivers = [
            f"{SIGNAL_TEXT[k]} ({'+' if signals[k].contribution >= 0 else ''}{signals[k].contribution:.2f} log-odds)" for k in order[:3]  # type: ignore[operator]  # contribution is set for every signal of a trained detector (just above)
        ]
        info = {
            "kind": "trained",
            "how": how,
            "layers": {"probe_question": det.layer_q, "probe_answer": det.layer_a},
            "heldout_auroc_combined": au.get("combined"),
            "heldout_auroc_perplexity": au.get("neg_mean_logprob"),
            "n_train": det.meta.get("n_train"),
            "trained_at": det.meta.get("trained_at"),
        }
        kind = "trained"
    else:
        for name, v in zip(UNC_NAMES, unc):
            signals[name] = SignalValue(value=round(float(v), 4), meaning=SIGNAL_TEXT[name])
        risk = float(1.0 - math.exp(-float(unc[UNC_NAMES.index(FALLBACK_SIGNAL)])))
        drivers = [f"{SIGNAL_TEXT[FALLBACK_SIGNAL]} = {unc[0]:.2f} nats (risk = 1 - geometric-mean token probability)"]
        info = {"kind": "fallback", "how": how, "formula": "1 - exp(mean log-prob of the answer tokens)"}
        kind = "fallback"
    if context and det is not None:
        warns.append("The detector was trained on questions without a context; with one, read the risk as indicative.")
    if source == "given":
        warns.append("The answer was given, not generated: the detector was trained on the model's own answers, so treat the risk as indicative.")
    ctx_tokens = len(handle.tokenizer(context, add_special_tokens=False)["input_ids"]) if context else 0
    return HallucinationReport(
        question=question.strip(),
        context_tokens=ctx_tokens,
        answer=answer,
        answer_source=source,
        scored_text=scored_text(answer),
        risk=round(min(1.0, max(0.0, risk)), 4),
        level=_level(risk),
        detector=kind,
        detector_how=how,
        signals=signals,
        drivers=drivers,
        tokens=sig.tokens[0],
        token_logprobs=sig.token_logprobs[0],
        detector_info=info,
        warnings=warns,
        timings={"generate_s": round(gen_s, 3), "signals_s": round(sig_s, 3), "total_s": round(time.perf_counter() - t0, 3)},
        model=handle.name,
    )
