"""Run evaluation suites and write a report (JSON + markdown with tables and plots).

``run_suites(["neurons", "patching"], ctx)`` runs each suite in turn. A suite that raises
:class:`~gnothi.evals.registry.SuiteSkipped` is recorded as skipped with its reason; one
that fails (a :class:`~gnothi.tools.errors.GnothiError` or any other exception) is
recorded as an error with the message, and the other suites still run. Nothing is
invented for a suite that did not run.

Every run records its provenance: model, corpus and store fingerprints, seed, tier,
package versions and the git commit. Every metric is shown beside its baseline (the
control under the same key in ``SuiteResult.baselines``); the report lists any metric
that has none, so a missing control is visible rather than silent.

Layout of a run folder::

    <out>/<run_id>/report.json   one object: provenance, suites, controls check
    <out>/<run_id>/report.md     the same as tables, with the figures
    <out>/<run_id>/figures/*.png
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, Field

from .registry import SuiteContext, SuiteResult, SuiteSkipped, discover

REPORT_VERSION = 1
PACKAGES = [
    "torch", "transformer-lens", "sae-lens", "transformers", "langgraph", "openai", "pydantic",
    "numpy", "scikit-learn", "sentence-transformers", "gguf", "gnothi",
]
# suites that need no model or tool beyond their own data, in the order they run
DEFAULT_ORDER = ["routing", "patching", "probing", "neurons", "sae", "hallucination", "end_to_end"]


class SuiteRun(BaseModel):
    """One suite's outcome in a run."""

    suite: str
    status: str  # ok | passed | failed | skipped | error
    reason: str = ""  # why it was skipped or failed
    result: SuiteResult | None = None
    missing_baselines: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    figure_files: list[str] = Field(default_factory=list)
    # with several seeds: the result above is the first seed's; per metric (flattened key), its
    # value per seed, mean and t interval, and the same for its (strictest) baseline
    seeds: list[int] = Field(default_factory=list)
    across_seeds: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RunReport(BaseModel):
    report_version: int = REPORT_VERSION
    run_id: str
    created: str
    tier: str
    suites_requested: list[str]
    provenance: dict[str, Any] = Field(default_factory=dict)
    suites: dict[str, SuiteRun] = Field(default_factory=dict)
    seconds: float = 0.0
    out_dir: str = ""
    complete: bool = True  # False while a run is in progress (the report is rewritten after each suite)

    def summary_rows(self) -> list[list[Any]]:
        rows = []
        for name, r in self.suites.items():
            rows.append([name, r.status, headline(r), round(r.seconds, 1)])
        return rows


# ----------------------------------------------------------------------------- helpers


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to ``a.b.c`` keys; lists of numbers stay lists."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = v
    elif prefix:
        out[prefix] = d
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        if len(v) > 6:
            return "[" + ", ".join(fmt(x) for x in v[:6]) + f", … ({len(v)})]"
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    s = str(v)
    return s if len(s) <= 80 else s[:77] + "…"


def fmt_interval(row: dict[str, Any]) -> str:
    """``mean [lo, hi]`` of a :func:`~gnothi.evals.metrics.seed_interval` row."""
    if row.get("mean") is None:
        return "—"
    if row.get("lo") is None:
        return fmt(row["mean"])
    return f"{fmt(row['mean'])} [{fmt(row['lo'])}, {fmt(row['hi'])}]"


def baseline_for(key: str, flat_baselines: dict[str, Any]) -> Any:
    """The baseline of flattened metric ``key``: the same key; else its children when the
    baseline is a dict of several controls (``{"pearson": {"shuffled": .., "random_unit": ..}}``);
    else the nearest parent key. ``None`` when there is none."""
    b = flat_baselines
    if key in b:
        return b[key]
    pre = key + "."
    kids = {k[len(pre):]: v for k, v in b.items() if k.startswith(pre)}
    if kids:
        return kids
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:i]) in b:
            return b[".".join(parts[:i])]
    return None


def strictest(base: Any) -> Any:
    """A single number to measure a metric against: the baseline, or the largest of several."""
    if isinstance(base, dict):
        nums = [v for v in base.values() if _is_num(v)]
        return max(nums) if nums else None
    return base


def missing_baselines(res: SuiteResult) -> list[str]:
    """Metric keys (flattened) with no baseline beside them."""
    b = flatten(res.baselines)
    return [k for k in flatten(res.metrics) if baseline_for(k, b) is None]


def headline(r: SuiteRun) -> str:
    if r.status in ("skipped", "error"):
        return r.reason.splitlines()[0][:120] if r.reason else r.status
    if r.result is None:
        return ""
    if r.across_seeds:
        parts = []
        for k, row in r.across_seeds.items():
            if row.get("mean") is None:
                continue
            base = (row.get("baseline") or {}).get("mean")
            parts.append(f"{k} {fmt_interval(row)}" + (f" (baseline {fmt(base)})" if _is_num(base) else ""))
            if len(parts) >= 2:
                break
        return "; ".join(parts) + f" — {len(r.seeds)} seeds"
    m = flatten(r.result.metrics)
    b = flatten(r.result.baselines)
    parts = []
    for k, v in m.items():
        if _is_num(v):
            base = strictest(baseline_for(k, b))
            parts.append(f"{k} {fmt(v)}" + (f" (baseline {fmt(base)})" if _is_num(base) else ""))
        if len(parts) >= 2:
            break
    return "; ".join(parts)


# ----------------------------------------------------------------------------- provenance


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_info(repo: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the source tree, if it is a git checkout."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=20
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def file_digest(path: Path, full_limit: int = 8 << 20) -> str:
    """sha256 of a file (of its size, first and last MiB when larger than ``full_limit``:
    stores list their files' full hashes in their own meta.json, which is hashed whole)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= full_limit:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(str(size).encode())
            h.update(f.read(1 << 20))
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return h.hexdigest()


def dir_fingerprint(folder: Path) -> dict[str, Any]:
    """A short hash over every file's relative path and content digest."""
    h = hashlib.sha256()
    n = 0
    size = 0
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.endswith((".tmp", ".lock")):
            continue
        h.update(str(p.relative_to(folder)).encode())
        h.update(file_digest(p).encode())
        n += 1
        size += p.stat().st_size
    return {"hash": h.hexdigest()[:16], "files": n, "bytes": size}


def artifact_fingerprints(model_name: str) -> dict[str, Any]:
    """Fingerprints of the per-model artifacts (stores, SAEs, probes, detectors) on disk."""
    from gnothi.tools.config import cache_dir

    safe = model_name.replace("/", "--").replace("\\", "--").replace(":", "_")
    root = cache_dir() / "per-model" / safe
    if not root.is_dir():
        return {}
    out = {}
    for sub in sorted(root.iterdir()):
        if sub.is_dir():
            # one level deeper when a kind holds several named artifacts (saes/<name>, probes/<ds>)
            children = [c for c in sorted(sub.iterdir()) if c.is_dir()]
            if children and not any(c.is_file() for c in sub.iterdir()):
                for c in children:
                    out[f"{sub.name}/{c.name}"] = dir_fingerprint(c)
            else:
                out[sub.name] = dir_fingerprint(sub)
    return out


@functools.lru_cache(maxsize=1)
def corpus_fingerprint() -> dict[str, Any]:
    try:
        from gnothi.tools.corpus import default_corpus

        c = default_corpus()
        return {"name": c.name, "fingerprint": c.fingerprint(), "documents": len(c.documents)}
    except Exception as e:  # the corpus is provenance, not a reason to fail the run
        return {"error": str(e)[:200]}


def base_provenance(ctx: SuiteContext, argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "model_requested": ctx.model,
        "seed": ctx.seed,
        "tier": "quick" if ctx.quick else "full",
        "llm": describe_llm(ctx.llm),
        "options": {k: v for k, v in ctx.options.items() if isinstance(v, (str, int, float, bool, type(None)))},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "git": git_info(),
        "argv": argv if argv is not None else sys.argv[1:],
        "corpus": dict(corpus_fingerprint()),
    }


def describe_llm(llm: Any) -> Any:
    if llm is None:
        return None
    desc = getattr(llm, "describe", None)
    if callable(desc):
        try:
            return desc()
        except Exception:
            pass
    return {"type": type(llm).__name__, "model": getattr(llm, "model", None), "base_url": str(getattr(llm, "base_url", "") or "") or None}


def model_provenance(ctx: SuiteContext) -> dict[str, Any]:
    """Model details if a suite loaded one (never loads a model just for this)."""
    h = ctx.model_handle
    if h is None:
        try:
            from gnothi.tools import model as _m

            h = _m._HANDLE
        except Exception:
            h = None
    if h is None:
        return {}
    out = {"name": h.name, "source": h.source, "device": h.device, "dtype": str(h.dtype).replace("torch.", "")}
    try:
        out["shape"] = h.shape.model_dump()
    except Exception:
        pass
    try:
        out["artifacts"] = artifact_fingerprints(h.name)
    except Exception as e:
        out["artifacts"] = {"error": str(e)[:200]}
    # a weight digest from the converted folder's safetensors files (cheap: header + size)
    try:
        src = Path(h.source)
        if src.is_dir():
            hh = hashlib.sha256()
            for p in sorted(src.glob("*.safetensors")):
                hh.update(p.name.encode())
                hh.update(file_digest(p, full_limit=0).encode())
            out["weights_hash"] = hh.hexdigest()[:16]
    except Exception:
        pass
    return out


# ----------------------------------------------------------------------------- running


def _run_id(tier: str) -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{tier}"


def order_suites(names: Iterable[str], available: Iterable[str]) -> list[str]:
    avail = list(available)
    names = list(dict.fromkeys(names))
    if not names:
        names = [n for n in DEFAULT_ORDER if n in avail] + sorted(n for n in avail if n not in DEFAULT_ORDER)
    return names


def run_one(name: str, fn, ctx: SuiteContext, log=None) -> SuiteRun:
    """Run one suite, turning every way it can end into a :class:`SuiteRun`."""
    from gnothi.tools.errors import GnothiError

    t0 = time.perf_counter()
    try:
        res = fn(ctx)
        if not isinstance(res, SuiteResult):
            raise TypeError(f"suite {name!r} returned {type(res).__name__}, not SuiteResult")
    except SuiteSkipped as e:
        return SuiteRun(suite=name, status="skipped", reason=str(e), seconds=time.perf_counter() - t0)
    except GnothiError as e:
        return SuiteRun(suite=name, status="error", reason=f"{e.message}" + (f" (fix: {e.fix})" if e.fix else ""), seconds=time.perf_counter() - t0)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # a broken suite must not lose the others
        tb = traceback.format_exc(limit=8)
        if log:
            log(tb)
        return SuiteRun(suite=name, status="error", reason=f"{type(e).__name__}: {e}\n{tb}", seconds=time.perf_counter() - t0)
    secs = time.perf_counter() - t0
    res.seconds = res.seconds or secs
    status = "ok" if res.passed is None else ("passed" if res.passed else "failed")
    return SuiteRun(suite=name, status=status, result=res, missing_baselines=missing_baselines(res), seconds=secs)


_STATUS_RANK = {"ok": 0, "passed": 0, "skipped": 1, "failed": 2, "error": 3}


def across_seeds(runs: list[SuiteRun]) -> dict[str, dict[str, Any]]:
    """Per numeric metric of the suite's runs with different seeds: ``values`` (one per seed,
    ``None`` where a seed did not report it), ``seed_interval`` of them, and ``baseline`` (the
    strictest baseline's values and interval, when there is one)."""
    from .metrics import seed_interval

    flat = [(flatten(r.result.metrics), flatten(r.result.baselines)) if r.result is not None else ({}, {}) for r in runs]
    keys = list(dict.fromkeys(k for m, _ in flat for k, v in m.items() if _is_num(v)))
    out: dict[str, dict[str, Any]] = {}
    for k in keys:
        vals = [m.get(k) if _is_num(m.get(k)) else None for m, _ in flat]
        row: dict[str, Any] = {"values": vals, **seed_interval([v for v in vals if v is not None])}
        bases = [strictest(baseline_for(k, b)) for _, b in flat]
        bases = [v if _is_num(v) else None for v in bases]
        if any(v is not None for v in bases):
            row["baseline"] = {"values": bases, **seed_interval([v for v in bases if v is not None])}
        out[k] = row
    return out


def run_seeded(name: str, fn, ctx: SuiteContext, seeds: list[int], log=None) -> SuiteRun:
    """Run one suite once per seed; the first seed's run carries the tables and figures, the
    others add their metrics to ``across_seeds``. The status is the worst of the runs."""
    import dataclasses

    runs = []
    for s in seeds:
        if log and len(seeds) > 1:
            log(f"[eval] {name} seed {s} ...")
        runs.append(run_one(name, fn, dataclasses.replace(ctx, seed=s), log=log))
    first = runs[0]
    if len(seeds) == 1:
        return first
    per_seed = across_seeds(runs)  # before the first run borrows another seed's result
    worst = max(runs, key=lambda r: _STATUS_RANK.get(r.status, 3))
    first.status = worst.status
    first.reason = "; ".join(f"seed {s}: {r.reason.splitlines()[0][:200]}" for s, r in zip(seeds, runs) if r.reason)
    if first.result is None:  # the first seed ended without a result: show another seed's
        first.result = next((r.result for r in runs if r.result is not None), None)
    first.seeds = list(seeds)
    first.across_seeds = per_seed
    first.seconds = sum(r.seconds for r in runs)
    return first


def run_suites(
    names: Iterable[str] | None,
    ctx: SuiteContext,
    out_dir: Path | str | None = None,
    registry: dict | None = None,
    argv: list[str] | None = None,
    write: bool = True,
    log=None,
    seeds: Iterable[int] | None = None,
) -> RunReport:
    """Run the named suites (all registered ones when empty) and write the report.

    Unknown names are recorded as errors naming the suites that exist. With ``seeds`` each
    suite runs once per seed (its splits and samples drawn anew) and every metric is
    reported as a mean with a t interval over the seeds. Returns the :class:`RunReport`;
    with ``write`` its folder holds ``report.json``, ``report.md`` and the figures as PNG.
    """
    seeds = list(dict.fromkeys(seeds)) if seeds is not None else [ctx.seed]
    if not seeds:
        seeds = [ctx.seed]
    ctx.seed = seeds[0]
    reg = registry if registry is not None else discover()
    names = order_suites(names or [], reg)
    tier = "quick" if ctx.quick else "full"
    run_id = _run_id(tier)
    root = Path(out_dir if out_dir is not None else ctx.out_dir)
    run_dir = root / run_id
    i = 1
    while run_dir.exists():
        i += 1
        run_dir = root / f"{run_id}-{i}"
    ctx.out_dir = run_dir
    t0 = time.perf_counter()
    report = RunReport(
        run_id=run_dir.name,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        tier=tier,
        suites_requested=names,
        provenance={**base_provenance(ctx, argv), "seeds": seeds},
        out_dir=str(run_dir),
        complete=False,
    )
    for name in names:
        if log:
            log(f"[eval] {name} ...")
        fn = reg.get(name)
        if fn is None:
            report.suites[name] = SuiteRun(
                suite=name, status="error", reason=f"no suite named {name!r}; available: {', '.join(sorted(reg)) or 'none'}"
            )
            continue
        r = run_seeded(name, fn, ctx, seeds, log=log)
        report.suites[name] = r
        if log:
            log(f"[eval] {name}: {r.status} in {r.seconds:.1f}s" + (f" ({r.reason.splitlines()[0][:160]})" if r.reason else ""))
        if write:  # a run stopped later still keeps the suites it finished
            report.seconds = time.perf_counter() - t0
            write_report(report, run_dir, figures_of=[name])
    report.provenance["model"] = model_provenance(ctx)
    report.seconds = time.perf_counter() - t0
    report.complete = True
    if write:
        write_report(report, run_dir)
    return report


# ----------------------------------------------------------------------------- writing


def _atomic_write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def write_report(report: RunReport, run_dir: Path, figures_of: list[str] | None = None) -> Path:
    """Render figures to PNG (of the suites in ``figures_of``, default all not yet rendered),
    then write ``report.json`` and ``report.md``; returns the folder."""
    from gnothi.tools.results import render_png

    run_dir = Path(run_dir)
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    for name, r in report.suites.items():
        if r.result is None:
            continue
        if figures_of is not None and name not in figures_of:
            continue
        if figures_of is None and len(r.figure_files) == len(r.result.figures):
            continue
        r.figure_files = []
        for i, fig in enumerate(r.result.figures):
            rel = f"figures/{name}_{i}.png"
            try:
                _atomic_write(run_dir / rel, render_png(fig))
                r.figure_files.append(rel)
            except Exception as e:  # a bad figure is a note, not a lost run
                r.result.notes.append(f"figure {fig.title!r} could not be rendered: {e}")
                r.figure_files.append("")
    _atomic_write(run_dir / "report.json", json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False, default=str))
    _atomic_write(run_dir / "report.md", render_markdown(report))
    return run_dir


def md_table(columns: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        return fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(str(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_rows(res: SuiteResult) -> list[list[Any]]:
    """metric | value | baseline(s) | difference from the (strictest) baseline."""
    m = flatten(res.metrics)
    b = flatten(res.baselines)
    rows = []
    for k, v in m.items():
        base = baseline_for(k, b)
        shown = "; ".join(f"{n} {fmt(x)}" for n, x in base.items()) if isinstance(base, dict) else base
        ref = strictest(base)
        diff = v - ref if _is_num(v) and _is_num(ref) else None
        rows.append([k, v, shown, diff])
    return rows


def render_markdown(report: RunReport) -> str:
    p = report.provenance
    out = [f"# gnothi evaluation report `{report.run_id}`", ""]
    out.append(f"Tier **{report.tier}**, created {report.created}, {report.seconds:.0f} s in all."
               + ("" if report.complete else " **Incomplete: the run stopped or is still going.**"))
    out.append("")
    model = p.get("model") or {}
    git = p.get("git") or {}
    prov_rows: list[list[Any]] = [
        ["model", model.get("name") or p.get("model_requested") or "(none loaded)"],
        ["model weights hash", model.get("weights_hash")],
        ["device / dtype", f"{model.get('device', '—')} / {model.get('dtype', '—')}"],
        ["corpus", f"{(p.get('corpus') or {}).get('name', '—')} {(p.get('corpus') or {}).get('fingerprint', '')}"],
        ["seed" + ("s" if len(p.get("seeds") or []) > 1 else ""), ", ".join(map(str, p.get("seeds") or [p.get("seed")]))],
        ["LLM", json.dumps(p.get("llm")) if p.get("llm") else "none (offline)"],
        ["git commit", (git.get("commit") or "—")[:12] + (" (dirty)" if git.get("dirty") else "")],
        ["python", p.get("python")],
    ]
    for k, v in (p.get("packages") or {}).items():
        if v:
            prov_rows.append([k, v])
    for k, v in (model.get("artifacts") or {}).items():
        if isinstance(v, dict) and "hash" in v:
            prov_rows.append([f"artifact {k}", f"{v['hash']} ({v['files']} files)"])
    out += ["## Summary", "", md_table(["suite", "status", "headline", "seconds"], report.summary_rows()), ""]
    for name, r in report.suites.items():
        out += [f"## {name}", "", f"Status: **{r.status}** ({r.seconds:.1f} s)."]
        if r.reason:
            out += ["", "```", r.reason.strip()[:2000], "```"]
        res = r.result
        if res is not None:
            if res.metrics:
                out += ["", "Metrics beside their baselines (controls):", "", md_table(["metric", "value", "baseline", "difference"], metric_rows(res))]
            if r.across_seeds:
                out += ["", f"Across seeds {', '.join(map(str, r.seeds))} (mean [95% t interval]; the tables and figures below are seed {r.seeds[0]}'s):", "",
                        md_table(["metric", "mean [95% CI]", "baseline mean [95% CI]", "per seed"],
                                 [[k, fmt_interval(row), fmt_interval(row["baseline"]) if row.get("baseline") else None, row["values"]]
                                  for k, row in r.across_seeds.items()])]
            if r.missing_baselines:
                out += ["", f"**No baseline for:** {', '.join(r.missing_baselines)}"]
            for t in res.tables:
                out += ["", f"**{t.get('title', '')}**", "", md_table(t.get("columns", []), t.get("rows", []))]
            for fig, path in zip(res.figures, r.figure_files):
                if path:
                    out += ["", f"![{fig.title}]({path})"]
                    if fig.caption:
                        out += ["", f"*{fig.caption}*"]
            if res.notes:
                out += [""] + [f"- {n}" for n in res.notes]
            if res.provenance:
                out += ["", "<details><summary>provenance</summary>", "", "```json", json.dumps(res.provenance, indent=1, default=str)[:4000], "```", "</details>"]
        out.append("")
    out += ["## Provenance", "", md_table(["what", "value"], prov_rows), ""]
    return "\n".join(out)


def load_report(path: Path | str) -> RunReport:
    """Read a run folder (or its ``report.json``) back; damaged files raise InputError."""
    from gnothi.tools.errors import InputError

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "report.json"
    if not p.exists():
        raise InputError(f"No evaluation report at {path}.", "Pass a run folder written by `gnothi eval` (it holds report.json), or the report.json itself.")
    try:
        return RunReport.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValueError) as e:
        raise InputError(f"{p} is not a readable gnothi evaluation report ({str(e).splitlines()[0][:160]}).", "Re-run `gnothi eval` to write a fresh report.") from None
