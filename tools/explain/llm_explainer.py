"""The LLM explainer: prompt ``explain_unit`` over a unit's records, offline fallback on garbage."""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..errors import describe_failure
from ..store import ActivationRecord
from .schemas import LLM, Explanation

LLM_EXPLAIN_RECORDS = 6  # records shown to an LLM explainer ...
LLM_EXPLAIN_SPAN = 24  # ... each cut to this many tokens around its peak (a prompt that fits a 2,048-token context)


def _fmt_record_for_llm(rec: ActivationRecord, unit_max: float) -> str:
    lines = []
    start = max(1, min(rec.argmax - LLM_EXPLAIN_SPAN * 2 // 3, len(rec.tokens) - LLM_EXPLAIN_SPAN))
    for t, a in list(zip(rec.tokens, rec.activations))[start: start + LLM_EXPLAIN_SPAN]:
        v = 0 if unit_max <= 0 else max(0, min(10, round(10 * a / unit_max)))
        lines.append(f"{t!r}\t{v}")
    return "<start>\n" + "\n".join(lines) + "\n<end>"


def llm_explain(llm: LLM, records: Sequence[ActivationRecord], unit_max: float, fallback: Explanation, label: str) -> Explanation:
    """Ask ``llm`` for an explanation (prompt ``explain_unit``); garbage -> ``fallback`` + warning."""
    from gnothi import prompts

    shown = [r for r in records if r.max_activation > 0][:LLM_EXPLAIN_RECORDS]
    measured = fallback.text if fallback.explainer == "refined" else "(none)"
    prompt = prompts.load("explain_unit", unit=label, records="\n\n".join(_fmt_record_for_llm(r, unit_max) for r in shown), measured=measured)
    try:
        raw = llm(prompt)
    except Exception as e:  # a dead endpoint must not sink the report
        fb = fallback.model_copy()
        fb.explainer = f"{fallback.explainer} (llm fallback)"
        fb.warnings = fb.warnings + [f"The LLM explainer failed ({describe_failure(e)}); used the offline explanation."]
        return fb
    text = _parse_llm_explanation(raw)
    if text is None:
        fb = fallback.model_copy()
        fb.explainer = f"{fallback.explainer} (llm fallback)"
        fb.warnings = fb.warnings + [f"The LLM's explanation was unusable ({str(raw)[:80]!r}); used the offline explanation."]
        return fb
    return Explanation(text=text, explainer="llm")


def _parse_llm_explanation(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    m = re.search(r"explanation\s*:\s*(.+)", s, flags=re.I)
    if m:
        s = m.group(1)
    s = s.strip().splitlines()[0].strip() if s.strip() else ""
    s = s.strip(" \"'`*")
    if len(s) < 3 or len(s) > 400 or len(re.findall(r"[A-Za-z]", s)) < 3:
        return None
    if not s.endswith("."):
        s += "."
    return s
