"""Model components as units: attention heads, MLPs, MLP neurons, whole layers and residual directions, found
through the architecture map.

A component spec joins parts with ``+``: ``"heads"``, ``"mlps"``, ``"layers"``, ``"heads+mlps"``. A part may be
restricted with ``@``: to layers (``"heads@6-11"``) and to prompt positions (``"heads@last"``,
``"mlps@6-11@last3"``, ``"heads@tok2-5"``; see :mod:`.positions`). ``neurons:L`` makes every MLP hidden neuron
of layer ``L`` a unit, ``neurons:L/G`` groups of ``G`` consecutive neurons. ``direction:FILE`` adds a
residual-stream direction (a file written by ``refusal-direction`` or ``harden``) as one unit: masked, it is
projected out of every decoder layer's output (directional ablation, Arditi et al. 2024). ``features:L=SAE#K``
and ``transcoder:L=FILE#K`` make the K most active latents of a sparse autoencoder or transcoder units
(:mod:`.features`). The components
become ordinary units of the engine (their ``text`` is a label such as ``L3.H1``, ``L3.MLP``, ``L3``,
``L5.N7``, ``L5.N64-127``, ``dir:NAME``, ``L12.F301``, ``L12.T301``, with ``@last`` when restricted).

Example:
    >>> parse_component_spec("heads+mlps@0-1@last")
    [('heads', None, ''), ('mlps', (0, 1), 'last')]
    >>> is_component_spec("heads+mlps"), is_component_spec("words"), is_component_spec("neurons:3/64+direction:r.safetensors")
    (True, False, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..units import Unit
from .positions import is_position

__all__ = ["COMPONENT_KINDS", "Component", "is_component_spec", "parse_component_spec", "enumerate_components",
           "component_units", "direction_vector"]

COMPONENT_KINDS = ("heads", "mlps", "layers", "neurons:L", "direction:FILE", "features:L=SAE", "transcoder:L=FILE")
_PLAIN = ("heads", "mlps", "layers")


@dataclass(frozen=True)
class Component:
    """One maskable component: ``kind`` (``head``, ``mlp``, ``layer``, ``neuron``, ``direction``), its layer,
    its index (head; neuron group; the direction's place in the spec), the neurons per group, and an optional
    position restriction."""

    kind: str
    layer: int
    index: int = 0
    source: str = ""  # a direction's file
    size: int = 1  # neurons per unit (neuron kind)
    positions: str = ""  # "" every position, else "last", "lastK", "tokA-B"
    site: str = "resid"  # an SAE feature's site: "resid" (after the layer) or "transcoder" (MLP in → out)
    group: tuple[int, ...] = ()  # a feature unit of several latents (``#anyK/G``), strongest first; () = (index,)

    @property
    def label(self) -> str:
        if self.kind == "direction":
            base = f"dir:{Path(self.source).stem}"
        elif self.kind == "feature":
            base = f"L{self.layer}.{'T' if self.site == 'transcoder' else 'F'}" + "/".join(map(str, self.latents))
        elif self.kind == "neuron":
            lo = self.index * self.size
            base = f"L{self.layer}.N{lo}" + (f"-{lo + self.size - 1}" if self.size > 1 else "")
        else:
            base = {"head": f"L{self.layer}.H{self.index}", "mlp": f"L{self.layer}.MLP", "layer": f"L{self.layer}"}[self.kind]
        return base + (f"@{self.positions}" if self.positions else "")

    @property
    def latents(self) -> tuple[int, ...]:
        """The SAE latents of a feature unit: one, or a group."""
        return self.group or (self.index,)

    @property
    def neurons(self) -> range:
        """The MLP hidden neurons of a neuron unit."""
        return range(self.index * self.size, (self.index + 1) * self.size)


def _kind_ok(kind: str) -> bool:
    return kind in _PLAIN or kind.startswith(("neurons:", "direction:", "features:", "transcoder:"))


def is_component_spec(spec: Any) -> bool:
    """Whether a unit spec names components rather than prompt text."""
    return isinstance(spec, str) and bool(spec) and all(_kind_ok(p.split("@")[0]) for p in spec.split("+") if p)


def parse_component_spec(spec: str) -> list[tuple[str, tuple[int, int] | None, str]]:
    """``"heads+mlps@2-5@last"`` → ``[("heads", None, ""), ("mlps", (2, 5), "last")]``."""
    out = []
    for part in spec.split("+"):
        kind, *quals = part.split("@")
        if not _kind_ok(kind):
            raise InputError(f"unknown component kind {kind!r}; choose from {', '.join(COMPONENT_KINDS)}")
        layers, positions = None, ""
        for q in quals:
            if is_position(q):
                positions = q
                continue
            if kind not in _PLAIN:
                raise InputError(f"{kind!r} takes no layer range ({q!r}); its layer is in its name or file")
            try:
                a, _, b = q.partition("-")
                layers = (int(a), int(b or a))
            except ValueError:
                raise InputError(f"{q!r} in {part!r} is neither a layer range A-B nor a position (last, lastK, "
                                 "tokA-B)") from None
        out.append((kind, layers, positions))
    return out


def _neurons(kind: str, n_layers: int, inner: int, positions: str) -> list[Component]:
    """``neurons:L`` / ``neurons:L/G`` → the neuron units of layer L."""
    arg = kind.partition(":")[2]
    layer_s, _, group_s = arg.partition("/")
    try:
        layer, group = int(layer_s), int(group_s or 1)
    except ValueError:
        raise InputError(f"{kind!r} is not neurons:LAYER or neurons:LAYER/GROUP") from None
    if not 0 <= layer < n_layers:
        raise InputError(f"layer {layer} is outside this model's 0-{n_layers - 1}")
    if group < 1 or inner % group:
        raise InputError(f"the neuron group size {group} does not divide this model's {inner} MLP neurons")
    return [Component("neuron", layer, g, size=group, positions=positions) for g in range(inner // group)]


def enumerate_components(lm: Any, spec: str, input_ids: list[int] | None = None) -> list[Component]:
    """The components a spec selects on this model, in layer order within each kind (SAE features: the most
    active at the last position of ``input_ids``, the prompt they are units of)."""
    n_layers, n_heads, inner = lm.dims
    comps: list[Component] = []
    for kind, layers, positions in parse_component_spec(spec):
        if kind.startswith("neurons:"):
            comps += _neurons(kind, n_layers, inner, positions)
            continue
        if kind.startswith(("features:", "transcoder:")):
            comps += _features(lm, kind, n_layers, positions, input_ids)
            continue
        if kind.startswith("direction:"):
            path = kind.partition(":")[2]
            vec, layer = direction_vector(path)
            if vec.shape[0] != lm.model.config.hidden_size or not 0 <= layer < n_layers:
                raise InputError(f"the direction {path} (d={vec.shape[0]}, layer {layer}) does not fit this model")
            comps.append(Component("direction", layer, len(comps), path, positions=positions))
            continue
        lo, hi = layers if layers else (0, n_layers - 1)
        if not 0 <= lo <= hi < n_layers:
            raise InputError(f"layers {lo}-{hi} are outside this model's 0-{n_layers - 1}")
        for layer in range(lo, hi + 1):
            if kind == "heads":
                comps += [Component("head", layer, h, positions=positions) for h in range(n_heads)]
            else:
                comps.append(Component(kind[:-1], layer, positions=positions))
    labels = [c.label for c in comps]
    if len(set(labels)) != len(labels):
        raise InputError(f"the component spec {spec!r} selects some components twice")
    return comps


def _features(lm: Any, kind: str, n_layers: int, positions: str, input_ids: list[int] | None) -> list[Component]:
    """``features:L=PATH#K`` → the K latents of the SAE most active at the prompt's last position
    (``#anyK``: at any position, ``#any``: every latent active at any position; ``#F301,F767``: those latents;
    ``/G`` after any of them: groups of G latents as one unit)."""
    from .features import active_features, anywhere, feature_group, load_sae, named_latents, parse_feature_kind

    layer, path, top = parse_feature_kind(kind)
    sae = load_sae(path, "transcoder" if kind.startswith("transcoder:") else None)
    if layer is None:
        layer = sae.layer
    if layer is None:
        raise InputError(f"the SAE {path} does not say which layer it reads: write features:LAYER={path}")
    if sae.layer is not None and sae.layer != layer:
        raise InputError(f"the SAE {path} was trained on layer {sae.layer}'s residual stream, not layer {layer}")
    if not 0 <= layer < n_layers:
        raise InputError(f"layer {layer} is outside this model's 0-{n_layers - 1}")
    if sae.d_in != lm.model.config.hidden_size:
        raise InputError(f"the SAE {path} reads vectors of width {sae.d_in}; this model's residual stream has "
                         f"width {lm.model.config.hidden_size}")
    named = named_latents(kind)
    if named is not None and max(named) >= sae.d_sae:
        raise InputError(f"the SAE {path} has {sae.d_sae} latents; F{max(named)} is not one of them")
    if named is None and input_ids is None:
        raise InputError("feature units are chosen on a prompt (its most active latents); give one")
    latents = named if named is not None else active_features(lm, input_ids, sae, layer, top,  # type: ignore[arg-type]
                                                              any_position=anywhere(kind))
    if not latents:
        raise InputError(f"no latent of the SAE {path} is active at the prompt's "
                         f"{'positions' if anywhere(kind) else 'last position'}")
    g = feature_group(kind)
    if g > 1:  # consecutive latents by strength, one unit per group
        return [Component("feature", layer, latents[k], path, positions=positions, site=sae.site,
                          group=tuple(latents[k:k + g])) for k in range(0, len(latents), g)]
    return [Component("feature", layer, j, path, positions=positions, site=sae.site) for j in latents]


@lru_cache(maxsize=32)
def direction_vector(path: str) -> tuple[Any, int]:
    """The unit vector ``[d]`` and layer of a direction file (cached); a missing or foreign file is an
    :class:`InputError`."""
    from ..refusal.direction import load_direction

    d = load_direction(path)
    return d.unit.float(), d.layer


def component_units(components: list[Component]) -> list[Unit]:
    """Engine units for components (no text span, no token positions; the role is the kind)."""
    return [Unit(c.label, 0, 0, (), c.kind) for c in components]
