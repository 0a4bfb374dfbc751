"""Components as units: attention heads, MLPs, neurons, layers, directions and SAE features, one kind per module
of :mod:`.kinds`, masked in batches through the architecture map.

Examples:
    >>> from diffusiongemma.components import is_component_spec
    >>> is_component_spec("heads+mlps")
    True
"""

from .game import ComponentGame
from .sites import COMPONENT_KINDS, Component, enumerate_components, is_component_spec

__all__ = ["COMPONENT_KINDS", "Component", "ComponentGame", "enumerate_components", "is_component_spec"]
