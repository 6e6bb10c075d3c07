"""Two evaluation runs side by side: offline vs LLM explainer, two models, two dates.

``compare_runs(a, b)`` aligns the suites and their flattened metrics and gives, for
every metric, both values, both baselines and the change from A to B; provenance
differences (model, weights, LLM, seed, tier, commit, package versions, artifacts) are
listed first, so a reader sees *what* changed before *how much* the numbers moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .runner import RunReport, _is_num, baseline_for, flatten, load_report, md_table, strictest


class MetricDiff(BaseModel):
    suite: str
    metric: str
    a: Any = None
    b: Any = None
    baseline_a: Any = None
    baseline_b: Any = None
    delta: float | None = None  # b - a when both are numbers
    margin_a: float | None = None  # a - baseline_a
    margin_b: float | None = None


class CompareReport(BaseModel):
    run_a: str
    run_b: str
    provenance_changes: list[list[Any]] = Field(default_factory=list)  # [what, a, b]
    suite_status: list[list[Any]] = Field(default_factory=list)  # [suite, status a, status b]
    metrics: list[MetricDiff] = Field(default_factory=list)
    only_in_a: list[str] = Field(default_factory=list)
    only_in_b: list[str] = Field(default_factory=list)

    def to_markdown(self) -> str:
        out = [f"# Comparison: `{self.run_a}` (A) vs `{self.run_b}` (B)", ""]
        out += ["## What differs between the runs", ""]
        if self.provenance_changes:
            out.append(md_table(["what", "A", "B"], self.provenance_changes))
        else:
            out.append("Same model, data, settings and versions.")
        out += ["", "## Suites", "", md_table(["suite", "A", "B"], self.suite_status), ""]
        out += ["## Metrics (B − A; margin = value − its baseline)", ""]
        rows = [
            [m.suite, m.metric, m.a, m.b, m.delta, m.baseline_a, m.baseline_b, m.margin_a, m.margin_b]
            for m in self.metrics
        ]
        out.append(md_table(["suite", "metric", "A", "B", "B − A", "baseline A", "baseline B", "margin A", "margin B"], rows))
        if self.only_in_a:
            out += ["", f"Only in A: {', '.join(self.only_in_a)}"]
        if self.only_in_b:
            out += ["", f"Only in B: {', '.join(self.only_in_b)}"]
        out.append("")
        return "\n".join(out)


def _prov_flat(r: RunReport) -> dict[str, Any]:
    p = r.provenance
    m = p.get("model") or {}
    flat: dict[str, Any] = {
        "tier": r.tier,
        "created": r.created,
        "model": m.get("name") or p.get("model_requested"),
        "model weights hash": m.get("weights_hash"),
        "device": m.get("device"),
        "dtype": m.get("dtype"),
        "LLM": str(p.get("llm")) if p.get("llm") else "none (offline)",
        "seed": p.get("seed"),
        "corpus": (p.get("corpus") or {}).get("fingerprint"),
        "git commit": ((p.get("git") or {}).get("commit") or "")[:12] or None,
    }
    for k, v in (p.get("packages") or {}).items():
        flat[f"package {k}"] = v
    for k, v in (m.get("artifacts") or {}).items():
        if isinstance(v, dict):
            flat[f"artifact {k}"] = v.get("hash")
    return flat


def _suite_metrics(r: RunReport) -> dict[str, dict[str, tuple[Any, Any]]]:
    out: dict[str, dict[str, tuple[Any, Any]]] = {}
    for name, s in r.suites.items():
        if s.result is None:
            continue
        m = flatten(s.result.metrics)
        b = flatten(s.result.baselines)
        out[name] = {k: (v, baseline_for(k, b)) for k, v in m.items()}
    return out


def compare_reports(a: RunReport, b: RunReport) -> CompareReport:
    cr = CompareReport(run_a=a.run_id, run_b=b.run_id)
    pa, pb = _prov_flat(a), _prov_flat(b)
    for k in list(dict.fromkeys(list(pa) + list(pb))):
        if pa.get(k) != pb.get(k):
            cr.provenance_changes.append([k, pa.get(k), pb.get(k)])
    for s in dict.fromkeys(list(a.suites) + list(b.suites)):
        sa, sb = a.suites.get(s), b.suites.get(s)
        cr.suite_status.append([s, sa.status if sa else "not run", sb.status if sb else "not run"])
    ma, mb = _suite_metrics(a), _suite_metrics(b)
    for s in dict.fromkeys(list(ma) + list(mb)):
        da, db = ma.get(s, {}), mb.get(s, {})
        for k in dict.fromkeys(list(da) + list(db)):
            if k not in db:
                cr.only_in_a.append(f"{s}.{k}")
            if k not in da:
                cr.only_in_b.append(f"{s}.{k}")
            (va, ba), (vb, bb) = da.get(k, (None, None)), db.get(k, (None, None))
            cr.metrics.append(
                MetricDiff(
                    suite=s,
                    metric=k,
                    a=va,
                    b=vb,
                    baseline_a=ba,
                    baseline_b=bb,
                    delta=(vb - va) if _is_num(va) and _is_num(vb) else None,
                    margin_a=(va - strictest(ba)) if _is_num(va) and _is_num(strictest(ba)) else None,
                    margin_b=(vb - strictest(bb)) if _is_num(vb) and _is_num(strictest(bb)) else None,
                )
            )
    return cr


def compare_runs(path_a: Path | str, path_b: Path | str, out: Path | str | None = None) -> CompareReport:
    """Load two run folders (or report.json files) and compare them; optionally write markdown+JSON."""
    cr = compare_reports(load_report(path_a), load_report(path_b))
    if out is not None:
        import json

        from .runner import _atomic_write

        o = Path(out)
        if o.suffix == ".md":
            _atomic_write(o, cr.to_markdown())
            _atomic_write(o.with_suffix(".json"), json.dumps(cr.model_dump(mode="json"), indent=2, default=str))
        else:
            _atomic_write(o / "compare.md", cr.to_markdown())
            _atomic_write(o / "compare.json", json.dumps(cr.model_dump(mode="json"), indent=2, default=str))
    return cr
