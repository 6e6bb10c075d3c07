"""Result types every tool returns: small, JSON-serializable, no tensors.

A tool computes a tool-specific pydantic result (e.g. a neuron report) holding every
number it measured; ``to_tool_result()`` on it gives the common :class:`ToolResult` the
agents, the UI and the evals read: a one-line summary, headline numbers, evidence,
figures, provenance and timings. Figures are data (:class:`Figure`), rendered to PNG by
:func:`render_png` for the CLI and the UI alike.
"""

from __future__ import annotations

import base64
import io
import platform
from typing import Any, Literal

from pydantic import BaseModel, Field

from .tokens import merge_partial

FigureKind = Literal["heatmap", "line", "bar", "histogram", "tokens"]


class Figure(BaseModel):
    """A plot as data.

    ``data`` by kind:
      * heatmap: ``z`` (rows of numbers), ``x`` (column labels), ``y`` (row labels),
        optional ``xlabel``, ``ylabel``, ``center`` (a value drawn white, e.g. 0);
      * line: ``x`` (numbers or labels), ``series`` ({name: [numbers]}), optional
        ``band`` ({name: [[lo, hi], ...]}), ``xlabel``, ``ylabel``;
      * bar: ``labels``, ``values``, optional ``xlabel``, ``ylabel``;
      * histogram: ``edges`` (n+1 numbers), ``counts`` (n numbers), optional ``xlabel``, ``log``;
      * tokens: ``rows``: [{``tokens``: [str], ``values``: [float]}], optional ``vmax``.
    """

    kind: FigureKind
    title: str
    data: dict[str, Any]
    caption: str = ""


class TokenSpan(BaseModel):
    """Tokens with one value per token (an activation record; highlighted in the UI)."""

    tokens: list[str]
    values: list[float]
    note: str = ""


class ToolResult(BaseModel):
    tool: str
    ok: bool = True
    summary: str  # the headline, in words, with its key number
    headline: dict[str, Any] = Field(default_factory=dict)  # key numbers by name
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    spans: list[TokenSpan] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)  # the full tool-specific result (JSON)
    error: dict[str, Any] | None = None  # GnothiError.to_dict() when ok is False


def provenance(handle=None, **extra) -> dict[str, Any]:
    """Model, versions and anything else a result needs to be reproduced."""
    import torch

    p: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version()}
    try:
        from gnothi import __version__

        p["gnothi"] = __version__
    except Exception:  # pragma: no cover
        pass
    if handle is not None:
        p.update({"model": handle.name, "model_source": handle.source, "device": handle.device, "dtype": str(handle.dtype).replace("torch.", "")})
    p.update(extra)
    return p


# ----------------------------------------------------------------------------- rendering


_GLYPHS: set[int] | None = None


def _drawable(v):
    """``v`` (a string, or lists and dicts of them) with each character the figure fonts
    cannot draw (東 without a CJK font) written as its code point, ``<U+6771>``, instead
    of an empty box."""
    global _GLYPHS
    if isinstance(v, str):
        if v.isascii():
            return v
        if _GLYPHS is None:
            from matplotlib import font_manager
            from matplotlib.ft2font import FT2Font

            glyphs: set[int] = set()
            for family in ("DejaVu Sans", "DejaVu Sans Mono"):
                glyphs |= set(FT2Font(font_manager.findfont(family)).get_charmap())
            _GLYPHS = glyphs  # published whole: a concurrent render never sees it half filled
        return "".join(c if ord(c) in _GLYPHS or c.isspace() else f"<U+{ord(c):04X}>" for c in v)
    if isinstance(v, dict):
        return {k: _drawable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_drawable(x) for x in v]
    return v


def render_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a :class:`Figure` to PNG bytes with matplotlib (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    d = _drawable(fig.data)
    fig = fig.model_copy(update={"title": _drawable(fig.title)})
    if fig.kind == "heatmap":
        z = np.asarray(d["z"], dtype=float)
        w = min(14, 2 + 0.45 * max(1, z.shape[1]))
        h = min(12, 1.5 + 0.22 * max(1, z.shape[0]))
        f, ax = plt.subplots(figsize=(w, h))
        if "center" in d and d["center"] is not None:
            c = float(d["center"])
            m = float(np.nanmax(np.abs(z - c))) or 1.0
            im = ax.imshow(z, aspect="auto", cmap="RdBu_r", vmin=c - m, vmax=c + m, interpolation="nearest")
        else:
            im = ax.imshow(z, aspect="auto", cmap="viridis", interpolation="nearest")
        f.colorbar(im, ax=ax, fraction=0.03)
        if d.get("x") is not None:
            ax.set_xticks(range(len(d["x"])))
            ax.set_xticklabels([str(v) for v in d["x"]], rotation=60, ha="right", fontsize=7)
        if d.get("y") is not None:
            step = max(1, len(d["y"]) // 32)
            ax.set_yticks(range(0, len(d["y"]), step))
            ax.set_yticklabels([str(v) for v in d["y"]][::step], fontsize=7)
    elif fig.kind == "line":
        f, ax = plt.subplots(figsize=(7, 3.6))
        x = d.get("x")
        for name, ys in d.get("series", {}).items():
            xs = x if x is not None else list(range(len(ys)))
            ax.plot(xs, ys, marker="o", ms=3, label=name)
            band = (d.get("band") or {}).get(name)
            if band:
                lo, hi = zip(*band)
                ax.fill_between(xs, lo, hi, alpha=0.2)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    elif fig.kind == "bar":
        labels = [str(v) for v in d.get("labels", [])]
        f, ax = plt.subplots(figsize=(min(12, 2 + 0.4 * max(1, len(labels))), 3.6))
        ax.bar(range(len(labels)), d.get("values", []), color="#4c78a8")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    elif fig.kind == "histogram":
        f, ax = plt.subplots(figsize=(7, 3.4))
        edges = np.asarray(d["edges"], dtype=float)
        counts = np.asarray(d["counts"], dtype=float)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c78a8", edgecolor="white")
        if d.get("log"):
            ax.set_yscale("log")
    elif fig.kind == "tokens":
        rows = d.get("rows", [])
        f, ax = plt.subplots(figsize=(10, 0.4 + 0.35 * max(1, len(rows))))
        ax.axis("off")
        vmax = d.get("vmax") or max([abs(v) for r in rows for v in r["values"]] or [1.0]) or 1.0
        for i, r in enumerate(rows):
            x = 0.0
            for t, v in zip(*merge_partial(r["tokens"], r["values"])):
                a = max(0.0, min(1.0, abs(v) / vmax))
                color = (1.0, 1 - 0.7 * a, 1 - 0.7 * a) if v >= 0 else (1 - 0.7 * a, 1 - 0.7 * a, 1.0)
                txt = t.replace("\n", "⏎")
                ax.text(x, -i, txt, fontsize=8, family="monospace", bbox=dict(facecolor=color, edgecolor="none", pad=1))
                x += 0.0085 * max(1, len(txt)) + 0.004
        ax.set_xlim(0, 1.2)
        ax.set_ylim(-len(rows), 1)
    else:  # pragma: no cover
        raise ValueError(fig.kind)
    if fig.kind != "tokens":
        if d.get("xlabel"):
            ax.set_xlabel(d["xlabel"])
        if d.get("ylabel"):
            ax.set_ylabel(d["ylabel"])
    ax.set_title(fig.title, fontsize=10)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long token labels: tight_layout may not fit them all
        f.tight_layout()
    buf = io.BytesIO()
    f.savefig(buf, format="png", dpi=dpi)
    plt.close(f)
    return buf.getvalue()


def render_plotly(fig: Figure, height: int | None = None):
    """An interactive plotly figure for the chat (hover shows each cell's token, layer and value), or None for
    token rows (the chat highlights those as text). Titles say what is plotted; axes keep the prompt's tokens."""
    if fig.kind == "tokens":
        return None
    import plotly.graph_objects as go

    d = fig.data
    if fig.kind == "heatmap":
        z = d["z"]
        x = [str(v) for v in d["x"]] if d.get("x") is not None else None
        if x is not None and len(set(x)) < len(x):
            x = [f"{i}:{v}" for i, v in enumerate(x)]  # repeated tokens: position:token keeps each column its own
        y = [str(v) for v in d["y"]] if d.get("y") is not None else None
        kw = {}
        if d.get("center") is not None:
            import numpy as np

            c = float(d["center"])
            m = float(np.nanmax(np.abs(np.asarray(z, dtype=float) - c))) or 1.0
            kw = {"colorscale": "RdBu", "reversescale": True, "zmid": c, "zmin": c - m, "zmax": c + m}
        trace = go.Heatmap(z=z, x=x, y=y, hovertemplate="%{y}<br>%{x}<br>%{z:.3f}<extra></extra>", colorbar={"thickness": 12}, **kw)
        rows = len(z)
        h = height or max(360, min(900, 120 + 22 * rows))
    elif fig.kind == "line":
        traces = []
        xs = d.get("x")
        for name, ys in d.get("series", {}).items():
            xx = xs if xs is not None else list(range(len(ys)))
            band = (d.get("band") or {}).get(name)
            if band:
                lo, hi = [b[0] for b in band], [b[1] for b in band]
                traces.append(go.Scatter(x=list(xx) + list(xx)[::-1], y=hi + lo[::-1], fill="toself", opacity=0.2, line={"width": 0},
                                         name=f"{name} 95% CI", hoverinfo="skip", showlegend=True))
            traces.append(go.Scatter(x=xx, y=ys, mode="lines+markers", name=name))
        trace, h = traces, height or 420
    elif fig.kind == "bar":
        trace = go.Bar(x=[str(v) for v in d.get("labels", [])], y=d.get("values", []), marker_color="#4c78a8")
        h = height or 400
    elif fig.kind == "histogram":
        e = d["edges"]
        trace = go.Bar(x=[(e[i] + e[i + 1]) / 2 for i in range(len(e) - 1)], y=d["counts"], width=[e[i + 1] - e[i] for i in range(len(e) - 1)],
                       marker_color="#4c78a8")
        h = height or 380
    else:  # pragma: no cover
        raise ValueError(fig.kind)
    f = go.Figure(data=trace if isinstance(trace, list) else [trace])
    f.update_layout(title={"text": fig.title, "font": {"size": 15}}, height=h, autosize=True, margin={"l": 60, "r": 30, "t": 60, "b": 90},
                    xaxis_title=d.get("xlabel"), yaxis_title=d.get("ylabel"), template="plotly_white")
    if fig.kind == "histogram" and d.get("log"):
        f.update_yaxes(type="log")
    if fig.kind == "heatmap":
        f.update_yaxes(autorange="reversed")
    return f


def render_png_b64(fig: Figure) -> str:
    return base64.b64encode(render_png(fig)).decode()
