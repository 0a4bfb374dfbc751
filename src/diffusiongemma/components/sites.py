"""Component specs: which model components a spec selects, through the unit-kind registry.

A component spec joins parts with ``+``: ``"heads"``, ``"mlps"``, ``"layers"``, ``"heads+mlps"``. A part may be
restricted with ``@``: to layers (``"heads@6-11"``) and to prompt positions (``"heads@last"``,
``"mlps@6-11@last3"``, ``"heads@tok2-5"``; see :mod:`.positions`). ``neurons:L`` makes every MLP hidden neuron
of layer ``L`` a unit, ``neurons:L/G`` groups of ``G`` consecutive neurons. ``direction:FILE`` adds a
residual-stream direction (a file written by ``refusal-direction`` or ``harden``) as one unit. ``features:L=SAE#K``
and ``transcoder:L=FILE#K`` make the K most active latents of a sparse autoencoder or transcoder units. Each kind
is one module of :mod:`.kinds`; its units carry their :class:`~diffusiongemma.units.Component` site, and a label
for people (``L3.H1``, ``L3.MLP``, ``L3``, ``L5.N7``, ``L5.N64-127``, ``dir:NAME``, ``L12.F301``, ``L12.T301``,
with ``@last`` when restricted).

Examples:
    >>> parse_component_spec("heads+mlps@0-1@last")
    [('heads', None, ''), ('mlps', (0, 1), 'last')]
    >>> is_component_spec("heads+mlps"), is_component_spec("words"), is_component_spec("neurons:3/64+direction:r.safetensors")
    (True, False, True)
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..units import UNIT_KINDS, Component, Unit
from .kinds import ComponentKind
from .kinds.direction import direction_vector
from .positions import is_position

__all__ = ["COMPONENT_KINDS", "Component", "is_component_spec", "parse_component_spec", "enumerate_components",
           "component_units", "direction_vector", "kind_of_part"]

COMPONENT_KINDS = tuple(k.spec for k in UNIT_KINDS.values() if k.domain == "component")  # how each is written


def kind_of_part(kind: str) -> ComponentKind | None:
    """The registered component kind a spec part's kind (``heads``, ``neurons:3/64``) names, or None.

    Examples:
        >>> kind_of_part('heads').name, kind_of_part('words')
        ('heads', None)
    """
    name, colon, _ = kind.partition(":")
    entry = UNIT_KINDS.get(name)
    if entry is None or entry.domain != "component" or bool(colon) != (":" in entry.spec):
        return None
    return entry


def is_component_spec(spec: Any) -> bool:
    """Whether a unit spec names components rather than prompt text.

    Examples:
        >>> is_component_spec('heads+mlps@2-5'), is_component_spec('words')
        (True, False)
    """
    return (isinstance(spec, str) and bool(spec)
            and all(kind_of_part(p.split("@")[0]) is not None for p in spec.split("+") if p))


def parse_component_spec(spec: str) -> list[tuple[str, tuple[int, int] | None, str]]:
    """``"heads+mlps@2-5@last"`` → ``[("heads", None, ""), ("mlps", (2, 5), "last")]``.

    Examples:
        >>> parse_component_spec('heads+mlps@2-5@last')
        [('heads', None, ''), ('mlps', (2, 5), 'last')]
    """
    out = []
    for part in spec.split("+"):
        kind, *quals = part.split("@")
        entry = kind_of_part(kind)
        if entry is None:
            raise InputError(f"unknown component kind {kind!r}; choose from {', '.join(COMPONENT_KINDS)}")
        layers, positions = None, ""
        for q in quals:
            if is_position(q):
                positions = q
                continue
            if not entry.layered:
                raise InputError(f"{kind!r} takes no layer range ({q!r}); its layer is in its name or file")
            try:
                a, _, b = q.partition("-")
                layers = (int(a), int(b or a))
            except ValueError:
                raise InputError(f"{q!r} in {part!r} is neither a layer range A-B nor a position (last, lastK, "
                                 "tokA-B)") from None
        out.append((kind, layers, positions))
    return out


def enumerate_components(lm: Any, spec: str, input_ids: list[int] | None = None) -> list[Component]:
    """The components a spec selects on this model, in layer order within each kind (SAE features: the most
    active at the last position of ``input_ids``, the prompt they are units of)."""
    comps: list[Component] = []
    for kind, layers, positions in parse_component_spec(spec):
        comps += kind_of_part(kind).enumerate(lm, kind, layers, positions, input_ids)  # type: ignore[union-attr]
    labels = [c.label for c in comps]
    if len(set(labels)) != len(labels):
        raise InputError(f"the component spec {spec!r} selects some components twice")
    return comps


def component_units(components: list[Component]) -> list[Unit]:
    """Engine units for components: no text span, no token positions, the role ``"component"``, the component
    as the unit's site and its label as the unit's text."""
    return [Unit(c.label, 0, 0, (), "component", c) for c in components]
