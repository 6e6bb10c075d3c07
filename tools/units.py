"""Units the activation store indexes: MLP neurons, SAE features, anything with the same shape.

A *unit source* says, per layer, which hook point to record, how many units it has, and
how to turn the recorded activations ``[batch, pos, d]`` into unit activations
``[batch, pos, n_units]``. MLP neurons record ``blocks.{L}.mlp.hook_post`` and encode by
identity; an SAE records its input hook (e.g. ``hook_resid_post``) and encodes with its
encoder (``SAEUnits`` in :mod:`gnothi.tools.sae`).

The store, the explainer and the scorer only ever see this protocol, so a neuron page and
an SAE feature page are the same code.

Unit specs on the command line (``--units``): ``mlp`` or ``sae:PATH``. Kinds other than
``mlp`` are registered with :func:`register_unit_kind` by the module that implements them
(``gnothi.tools.sae`` registers ``sae``); :func:`units_from_spec` imports that module on
demand.
"""

from __future__ import annotations

import importlib
import re
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch

from .errors import InputError, OutOfRangeError, check_range


@runtime_checkable
class UnitSource(Protocol):
    """What the activation store indexes.

    Attributes:
        kind: ``"mlp"`` or ``"sae"`` (free text for other kinds).
        id: stable id used in store paths, e.g. ``"mlp"`` or ``"sae-<name>"``; only
            letters, digits, ``-``, ``_`` and ``.``.
        layers: the layers covered, ascending.
    """

    kind: str
    id: str
    layers: list[int]

    def hook_name(self, layer: int) -> str:
        """The hook point whose activations :meth:`encode` takes at ``layer``."""
        ...

    def n_units(self, layer: int) -> int:
        """How many units there are at ``layer``."""
        ...

    def encode(self, layer: int, acts: torch.Tensor) -> torch.Tensor:
        """``[batch, pos, d]`` hook activations -> ``[batch, pos, n_units]`` unit activations."""
        ...


def unit_label(kind: str, layer: int, unit: int) -> str:
    """Human label: ``neuron 12.345`` or ``feature 7`` (layer-qualified for SAEs too)."""
    return f"neuron {layer}.{unit}" if kind == "mlp" else f"{kind} feature {layer}.{unit}"


def parse_indices(spec: str | Sequence[int] | None, n: int, what: str = "layer") -> list[int]:
    """The indices a spec names, sorted and checked against ``0..n-1``: ``None``/``"all"`` ->
    every one; ``"3"``, ``"0,5,10"``, ``"0 5 10"``, ``"10-20"``, a list; negative numbers count
    from the end (``"-1"`` is the last, ``"-4--1"`` the last four). ``what`` names them in
    messages ("layer", "neuron", "feature")."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return list(range(n))
    fix = f"Write {what}s like 'all', '5', '0,5,10', '10-12' or '-1' for the last (there are {what}s 0 to {n - 1})."
    out: list[int] = []
    if isinstance(spec, str):
        for part in re.split(r"[\s,]+", spec.strip()):
            if not part:
                continue
            m = re.fullmatch(r"(-?\d+)\s*-\s*(-?\d+)", part)
            try:
                if m:
                    lo, hi = (int(x) + n if int(x) < 0 else int(x) for x in m.groups())
                    if hi < lo:
                        raise InputError(f"The {what} range {part!r} runs backwards.", "Write ranges low-high, e.g. 10-20.")
                    check_range(what, hi, n)
                    out.extend(range(lo, hi + 1))
                else:
                    v = int(part)
                    out.append(v + n if v < 0 else v)
            except ValueError:
                raise InputError(f"Cannot read the {what} list {spec!r}.", fix) from None
    else:
        out = [int(x) for x in spec]
    if not out:
        raise InputError(f"No {what}s in {spec!r}.", fix)
    for i in out:
        check_range(what, i, n)
    return sorted(set(out))


def parse_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """The layers a spec names (the grammar of :func:`parse_indices`): the one grammar of
    every command's ``--layers``."""
    return parse_indices(spec, n_layers, "layer")


class MLPUnits:
    """MLP neurons: hook ``mlp_post`` (``[batch, pos, d_mlp]``), identity encode."""

    kind = "mlp"
    id = "mlp"

    def __init__(self, handle, layers: Sequence[int] | str | None = None):
        if not handle.d_mlp:
            raise InputError(f"{handle.name} has no MLP neurons to index.", "Use --units sae:PATH instead.")
        self.layers = parse_layers(layers, handle.n_layers)
        self._hooks = {l: handle.hook_name("mlp_post", l) for l in self.layers}
        self._n = handle.d_mlp

    def _check(self, layer: int) -> None:
        if layer not in self._hooks:
            raise OutOfRangeError(
                f"Layer {layer} is not covered here (layers {self.layers}).",
                "Pick one of those layers, or index the layer you want.",
            )

    def hook_name(self, layer: int) -> str:
        self._check(layer)
        return self._hooks[layer]

    def n_units(self, layer: int) -> int:
        self._check(layer)
        return self._n

    def encode(self, layer: int, acts: torch.Tensor) -> torch.Tensor:
        return acts

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.id, "layers": self.layers, "n_units": self._n}

    def __repr__(self) -> str:  # pragma: no cover
        return f"MLPUnits(layers={self.layers}, n_units={self._n})"


# --------------------------------------------------------------------------- registry

UnitFactory = Callable[..., UnitSource]  # factory(handle, arg: str, layers) -> UnitSource
_FACTORIES: dict[str, UnitFactory] = {}
# modules that register a kind when imported
_KIND_MODULES = {"sae": "gnothi.tools.sae"}


def register_unit_kind(prefix: str, factory: UnitFactory) -> None:
    """Register ``factory(handle, arg, layers) -> UnitSource`` for specs ``"<prefix>:<arg>"``.

    Refuses a second, different factory for the same prefix.
    """
    old = _FACTORIES.get(prefix)
    if old is not None and old is not factory and getattr(old, "__qualname__", None) != getattr(factory, "__qualname__", 1):
        raise ValueError(f"unit kind {prefix!r} is already registered")
    _FACTORIES[prefix] = factory


def units_from_spec(handle, spec: str | UnitSource | None = "mlp", layers=None) -> UnitSource:
    """``"mlp"`` or ``"sae:PATH"`` (or an existing UnitSource) -> a UnitSource."""
    if spec is None or spec == "mlp":
        return MLPUnits(handle, layers)
    if not isinstance(spec, str):
        return spec
    prefix, _, arg = spec.partition(":")
    if prefix not in _FACTORIES and prefix in _KIND_MODULES:
        try:
            importlib.import_module(_KIND_MODULES[prefix])
        except ImportError:
            pass
    if prefix not in _FACTORIES:
        raise InputError(
            f"Unknown unit kind {spec!r}.",
            "Use --units mlp, or --units sae:PATH (a folder with cfg.json and sae_weights.safetensors).",
        )
    if not arg:
        raise InputError(f"{prefix!r} units need a path: {prefix}:PATH.", f"Write --units {prefix}:/path/to/folder.")
    return _FACTORIES[prefix](handle, arg, layers)


def check_units(units) -> None:
    """Raise InputError unless ``units`` looks like a UnitSource."""
    missing = [a for a in ("kind", "id", "layers", "hook_name", "n_units", "encode") if not hasattr(units, a)]
    if missing:
        raise InputError(f"{type(units).__name__} is not a unit source (missing {', '.join(missing)}).", "Pass MLPUnits or SAEUnits.")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", units.id or ""):
        raise InputError(f"Unit source id {units.id!r} is not usable in a file name.", "Use letters, digits, '-', '_' and '.' only.")
