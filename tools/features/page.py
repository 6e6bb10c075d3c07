"""Feature pages: one feature's top contexts, explanation and score from the feature store, and the tokens it promotes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel

from ..errors import SAENotFoundError, check_range
from ..results import ToolResult
from ..sae import SAE, SAEUnits, human_seconds, resolve_sae
from .index import estimate_index_seconds, index_command

if TYPE_CHECKING:
    from ..model import ModelHandle


class FeaturePage(BaseModel):
    """A feature's page: the store's explain-simulate-score report plus its output effects."""

    sae: str
    feature: int
    report: Any  # gnothi.tools.explain.UnitReport
    promotes: list[tuple[str, float]]  # tokens its decoder direction raises most (direction @ W_U)
    suppresses: list[tuple[str, float]]

    def to_tool_result(self, handle: ModelHandle | None = None) -> ToolResult:
        extra = [{"kind": "output_tokens", "promotes": self.promotes, "suppresses": self.suppresses,
                  "note": "decoder direction through the unembedding (direct effect on logits)"}]
        tr = self.report.to_tool_result(tool="sae_feature", handle=handle, extra_evidence=extra)
        tr.summary = f"SAE {self.sae}, " + tr.summary
        if self.promotes:
            tr.summary += " It promotes " + ", ".join(repr(t) for t, _ in self.promotes[:5]) + "."
        tr.headline["promotes"] = [t for t, _ in self.promotes[:5]]
        tr.headline["suppresses"] = [t for t, _ in self.suppresses[:5]]
        tr.data = {"sae": self.sae, "feature": self.feature, "promotes": self.promotes, "suppresses": self.suppresses,
                   "report": self.report.model_dump(mode="json")}
        return tr


def output_tokens(handle: ModelHandle, sae: SAE, feature: int, n: int = 10) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Tokens whose logits the feature's decoder direction raises / lowers most (direct path)."""
    from ..sae import check_feature

    check_feature(sae, feature)
    if not (sae.hook_name or "").endswith(("hook_resid_post", "hook_resid_pre", "hook_resid_mid", "hook_mlp_out", "hook_attn_out")):
        return [], []
    with torch.no_grad():
        d = sae.W_dec[feature].detach().float().to(handle.W_U().device)
        logits = d @ handle.W_U().float()
        top = torch.topk(logits, n)
        bot = torch.topk(-logits, n)
    dec = handle.tokenizer.decode
    return ([(dec([int(i)]), round(float(v), 4)) for v, i in zip(top.values, top.indices)],
            [(dec([int(i)]), round(-float(v), 4)) for v, i in zip(bot.values, bot.indices)])


def feature_page(handle: ModelHandle, feature: int, sae: SAE | str | None = None, explainer="offline", simulator="offline",
                 modes: bool = True, n_contexts: int = 10, layer: int | None = None) -> FeaturePage:
    """Explain, simulate and score one feature from the feature store (like a neuron page).

    Needs the feature store (built by :func:`index_features`); raises a store error with
    the command and a time estimate otherwise. The model is not re-run.
    """
    from ..errors import StoreError
    from ..explain import explain_unit
    from ..store import open_store

    sae = resolve_sae(handle, sae, layer=layer)
    check_range("feature", feature, sae.d_sae)
    units = SAEUnits(sae, handle)
    try:
        store = open_store(handle, units.id)
    except StoreError as e:
        est = human_seconds(estimate_index_seconds(handle, sae))
        raise SAENotFoundError(
            f"SAE {sae.name} has no feature store yet ({e.message})",
            f"Build it once: `{index_command(sae)}` (about {est} here).",
        ) from None
    report = explain_unit(store, units.layers[0], feature, explainer=explainer, simulator=simulator, modes=modes, n_contexts=n_contexts)
    pro, sup = output_tokens(handle, sae, feature)
    return FeaturePage(sae=sae.name, feature=feature, report=report, promotes=pro, suppresses=sup)


def explain_feature(handle: ModelHandle, feature: int, sae: SAE | str | None = None, layer: int | None = None, llm=None, k: int = 10,
                    modes: bool = True) -> FeaturePage:
    """:func:`feature_page` with the assistant's arguments: ``llm`` (a callable) explains and
    simulates when given, else the offline explainer and simulator; ``k`` top contexts."""
    return feature_page(handle, feature, sae, explainer=llm or "offline", simulator=llm or "offline", modes=modes,
                        n_contexts=k, layer=layer)
