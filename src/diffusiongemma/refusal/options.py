"""The options of :func:`~diffusiongemma.refusal.explain_refusal` as one value: the map's
:class:`~diffusiongemma.options.ExplainOptions` (refusal defaults), the component map, the steering, the reply.

Examples:
    >>> o = RefusalOptions.from_keywords(budget=64, components=None, max_new_tokens=24)
    >>> o.map.run.budget, o.map.checks.triggers, o.components.components, o.max_new_tokens
    (64, True, None, 24)
    >>> RefusalOptions.from_keywords(contrast=" No")
    Traceback (most recent call last):
    ...
    diffusiongemma.errors.InputError: explain_refusal measures the refusal score of the prompt as a chat turn: contrast= and chat=False do not apply
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..options import Checks, ExplainOptions, GameSpec, Options, RunSpec

__all__ = ["DEFAULT_REFUSAL_MODEL", "ComponentSpec", "Steering", "RefusalOptions"]

DEFAULT_REFUSAL_MODEL = "gemma-270m-safety"


@dataclass(frozen=True)
class ComponentSpec(Options):
    """The component map of the refusal score (``components=None``: none): the kinds, the method, its budget.

    Examples:
        >>> ComponentSpec().components, ComponentSpec().component_method
        ('heads+mlps', 'gradient')
    """

    components: str | None = "heads+mlps"
    component_method: str = "gradient"
    component_budget: int = 48


@dataclass(frozen=True)
class Steering(Options):
    """A refusal direction to intervene with while everything is computed (``None``: none), and how.

    Examples:
        >>> Steering().intervention
        'ablate'
    """

    direction: Any = None  # a RefusalDirection
    intervention: str = "ablate"
    alpha: float = 1.0


def _refusal_map() -> ExplainOptions:
    return ExplainOptions(game=GameSpec(model=DEFAULT_REFUSAL_MODEL, chat=True), run=RunSpec(budget=128),
                          checks=Checks(triggers=True, faithfulness=True))


@dataclass(frozen=True)
class RefusalOptions(Options):
    """Everything :func:`~diffusiongemma.refusal.explain_refusal` is asked besides the prompt and the reply."""

    map: ExplainOptions = field(default_factory=_refusal_map)
    components: ComponentSpec = field(default_factory=ComponentSpec)
    steering: Steering = field(default_factory=Steering)
    max_new_tokens: int = 48  # the length of the generated reply the detector judges

    def __post_init__(self) -> None:
        if self.map.game.contrast is not None or not self.map.game.chat:
            raise InputError("explain_refusal measures the refusal score of the prompt as a chat turn: contrast= "
                             "and chat=False do not apply")
