"""Options as values: what ``explain`` and the workflows above it are asked, as frozen dataclasses.

An option lives in one field of one of these values. The API functions take the value (``options=``) or its
fields as flat keywords (``budget=64``), the command line builds the value from its flags, the workflows pass the
value down; a new option is a field here, the code that reads it, and its flag.

* :class:`GameSpec`: what is measured and how a mask acts (model, units, mask, baseline, chat, ...).
* :class:`RunSpec`: how the map is estimated (method, schedule, budget, seed, tolerance, interactions).
* :class:`Checks`: the model runs after the map (faithfulness, trigger sets, backups).
* :class:`ExplainOptions`: the three together, what :func:`~diffusiongemma.api.explain` takes.

Flat keywords reach the part that has a field of that name (every leaf name is unique within a value):

Examples:
    >>> o = ExplainOptions.from_keywords(budget=64, units="sentences", triggers=True)
    >>> o.run.budget, o.game.units, o.checks.triggers, o.run.method
    (64, 'sentences', True, 'shapley')
    >>> o.replace(budget=32).run.budget, o.run.budget  # values: a change is a new value
    (32, 64)
    >>> ExplainOptions.from_keywords(bugdet=64)
    Traceback (most recent call last):
    ...
    diffusiongemma.errors.InputError: unknown option bugdet; the options are backups, baseline, batch_size, budget, chat, contrast, counterfactual, faithfulness, interactions, mask, method, model, reference, schedule, seed, system, tolerance, trigger_threshold, triggers, units
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import InputError

__all__ = ["Options", "GameSpec", "RunSpec", "Checks", "ExplainOptions"]

T = TypeVar("T", bound="Options")


class Options:
    """A frozen dataclass of options whose fields are values or other :class:`Options` (its parts)."""

    @classmethod
    def leaves(cls) -> list[str]:
        """The flat keyword names: every field that is not a part, in the parts' order.

        Examples:
            >>> Checks.leaves()
            ['faithfulness', 'triggers', 'backups', 'trigger_threshold']
        """
        out: list[str] = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            part = _part_type(cls, f)
            out.extend(part.leaves() if part is not None else [f.name])
        return out

    @classmethod
    def from_keywords(cls: type[T], **keywords: Any) -> T:
        """The default value with these flat keywords set (an unknown name: :class:`InputError`).

        Examples:
            >>> RunSpec.from_keywords(seed=3)
            RunSpec(method='shapley', schedule=None, budget=256, seed=3, tolerance=None, interactions=False)
        """
        return cls().replace(**keywords)

    def replace(self: T, **keywords: Any) -> T:
        """This value with the flat keywords changed, each in the part that has it.

        Examples:
            >>> ExplainOptions().replace(chat=True, seed=2).game.chat
            True
        """
        unknown = sorted(set(keywords) - set(self.leaves()))
        if unknown:
            raise InputError(f"unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; the options are "
                             f"{', '.join(sorted(self.leaves()))}")
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            part = _part_type(type(self), f)
            if part is not None:
                mine = {k: v for k, v in keywords.items() if k in part.leaves()}
                if mine:
                    changes[f.name] = getattr(self, f.name).replace(**mine)
            elif f.name in keywords:
                changes[f.name] = keywords[f.name]
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def keywords(self) -> dict[str, Any]:
        """The flat keywords of this value (the inverse of :meth:`from_keywords`).

        Examples:
            >>> Checks(triggers=True).keywords()
            {'faithfulness': False, 'triggers': True, 'backups': False, 'trigger_threshold': None}
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out.update(value.keywords() if isinstance(value, Options) else {f.name: value})
        return out


def _part_type(cls: type, f: dataclasses.Field) -> type[Options] | None:
    """The :class:`Options` class of a part field (its default's class), or ``None`` for a plain value."""
    if f.default_factory is not dataclasses.MISSING:
        made = f.default_factory()
        if isinstance(made, Options):
            return type(made)
    return None


@dataclass(frozen=True)
class GameSpec(Options):
    """What is measured and how a mask acts on it (see :func:`~diffusiongemma.api.explain` for each field).

    Examples:
        >>> GameSpec(units="words").mask
        'edit'
    """

    model: Any = None  # a LoadedModel, a spec string, or None for the default Gemma 3 270M
    units: Any = "auto"  # a unit spec: text kinds, a tree "sentences>words", spans, or component kinds
    mask: str = "edit"
    baseline: str | int | None = None
    contrast: str | None = None
    chat: bool = False
    system: str | None = None
    batch_size: int | None = None
    reference: list[str] | None = None  # component units, baseline "mean": reference prompts
    counterfactual: Any = None  # component units, baseline "resample": the corrupted prompt (text or chat)


@dataclass(frozen=True)
class RunSpec(Options):
    """How the map is estimated: the engine's method, schedule, budget (model evaluations), seed, tolerance,
    and the pair interactions to return (``True``: among the 6 strongest units, or this many).

    Examples:
        >>> RunSpec(interactions=True).top_interactions
        6
    """

    method: str = "shapley"
    schedule: str | None = None
    budget: int = 256
    seed: int = 0
    tolerance: float | None = None
    interactions: bool | int = False

    @property
    def top_interactions(self) -> int:
        """How many strongest units the pair interactions are among (0: none asked)."""
        return 6 if self.interactions is True else int(self.interactions or 0)


@dataclass(frozen=True)
class Checks(Options):
    """The checks by model runs after the map: deletion/insertion, the minimal trigger sets (confirmed on the
    edited text), backups among the strongest units; ``trigger_threshold`` is the decision's threshold.

    Examples:
        >>> Checks(backups=True).backup_count
        8
    """

    faithfulness: bool = False
    triggers: bool = False
    backups: bool | int = False
    trigger_threshold: float | None = None

    @property
    def backup_count(self) -> int:
        """How many strongest units are searched for a backup (0: none)."""
        return 8 if self.backups is True else int(self.backups or 0)


@dataclass(frozen=True)
class ExplainOptions(Options):
    """Everything :func:`~diffusiongemma.api.explain` is asked besides the prompt and the target.

    Examples:
        >>> ExplainOptions(run=RunSpec(budget=64)).keywords()["budget"]
        64
    """

    game: GameSpec = field(default_factory=GameSpec)
    run: RunSpec = field(default_factory=RunSpec)
    checks: Checks = field(default_factory=Checks)
