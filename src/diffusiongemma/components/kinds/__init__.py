"""Component kinds, one module each, registered in the one unit-kind registry
(:data:`diffusiongemma.units.UNIT_KINDS`, ``domain="component"``): heads, mlps, layers, neurons, direction,
features and transcoder. A new kind is a new module here (a :class:`ComponentKind` subclass) and its import below.

Examples:
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> [k for k, v in UNIT_KINDS.items() if v.domain == "component"]
    ['heads', 'mlps', 'layers', 'neurons', 'direction', 'features', 'transcoder']
"""

from . import heads, mlps, layers, neurons  # noqa: F401  (each registers its kind, in this order)
from . import direction, features  # noqa: F401
from .base import ComponentKind

__all__ = ["ComponentKind"]
