"""Model components as units: attention heads, MLPs and whole layers, found through the architecture map.

A component spec joins kinds with ``+``: ``"heads"``, ``"mlps"``, ``"layers"``, ``"heads+mlps"``; a kind may
be restricted to layers with ``@A-B`` (``"heads@6-11"``). ``direction:FILE`` adds a residual-stream direction
(a file written by ``refusal-direction`` or ``harden``) as one unit: masked, it is projected out of every
decoder layer's output at every position (directional ablation, Arditi et al. 2024). The components become
ordinary units of the engine (their ``text`` is a label such as ``L3.H1``, ``L3.MLP``, ``L3``, ``dir:NAME``).

Example:
    >>> parse_component_spec("heads+mlps@0-1")
    [('heads', None), ('mlps', (0, 1))]
    >>> is_component_spec("heads+mlps"), is_component_spec("words"), is_component_spec("mlps+direction:r.safetensors")
    (True, False, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..units import Unit

__all__ = ["COMPONENT_KINDS", "Component", "is_component_spec", "parse_component_spec", "enumerate_components",
           "component_units", "direction_vector"]

COMPONENT_KINDS = ("heads", "mlps", "layers")


@dataclass(frozen=True)
class Component:
    """One maskable component: ``kind`` (``head``, ``mlp``, ``layer``), its layer, and the head index."""

    kind: str
    layer: int
    index: int = 0
    source: str = ""  # a direction's file

    @property
    def label(self) -> str:
        if self.kind == "direction":
            return f"dir:{Path(self.source).stem}"
        return {"head": f"L{self.layer}.H{self.index}", "mlp": f"L{self.layer}.MLP", "layer": f"L{self.layer}"}[self.kind]


def is_component_spec(spec: Any) -> bool:
    """Whether a unit spec names components rather than prompt text."""
    return isinstance(spec, str) and all(p.split("@")[0] in COMPONENT_KINDS or p.startswith("direction:")
                                         for p in spec.split("+") if p)


def parse_component_spec(spec: str) -> list[tuple[str, tuple[int, int] | None]]:
    """``"heads+mlps@2-5"`` → ``[("heads", None), ("mlps", (2, 5))]``."""
    out = []
    for part in spec.split("+"):
        if part.startswith("direction:"):
            out.append((part, None))
            continue
        kind, _, rng = part.partition("@")
        if kind not in COMPONENT_KINDS:
            raise InputError(f"unknown component kind {kind!r}; choose from {', '.join(COMPONENT_KINDS)}")
        layers = None
        if rng:
            try:
                a, _, b = rng.partition("-")
                layers = (int(a), int(b or a))
            except ValueError:
                raise InputError(f"layer range {rng!r} is not A-B") from None
        out.append((kind, layers))
    return out


def enumerate_components(lm: Any, spec: str) -> list[Component]:
    """The components a spec selects on this model, in layer order within each kind."""
    cfg = lm.model.config
    n_layers = int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer"))
    n_heads = int(getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head"))
    comps: list[Component] = []
    for kind, layers in parse_component_spec(spec):
        if kind.startswith("direction:"):
            path = kind.partition(":")[2]
            vec, layer = direction_vector(path)
            if vec.shape[0] != lm.model.config.hidden_size or not 0 <= layer < n_layers:
                raise InputError(f"the direction {path} (d={vec.shape[0]}, layer {layer}) does not fit this model")
            comps.append(Component("direction", layer, len(comps), path))
            continue
        lo, hi = layers if layers else (0, n_layers - 1)
        if not 0 <= lo <= hi < n_layers:
            raise InputError(f"layers {lo}-{hi} are outside this model's 0-{n_layers - 1}")
        for layer in range(lo, hi + 1):
            if kind == "heads":
                comps += [Component("head", layer, h) for h in range(n_heads)]
            else:
                comps.append(Component(kind[:-1], layer))
    if len(set(comps)) != len(comps):
        raise InputError(f"the component spec {spec!r} selects some components twice")
    return comps


@lru_cache(maxsize=32)
def direction_vector(path: str) -> tuple[Any, int]:
    """The unit vector ``[d]`` and layer of a direction file (cached); a missing or foreign file is an
    :class:`InputError`."""
    from ..refusal.direction import RefusalDirection

    try:
        d = RefusalDirection.load(path)
    except Exception as exc:  # safetensors raises several kinds for a missing or foreign file
        raise InputError(f"cannot read the direction file {path}: {exc}") from None
    return d.unit.float(), d.layer


def component_units(components: list[Component]) -> list[Unit]:
    """Engine units for components (no text span, no token positions; the role is the kind)."""
    return [Unit(c.label, 0, 0, (), c.kind) for c in components]
