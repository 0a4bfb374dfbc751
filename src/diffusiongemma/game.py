"""The game: the value function ``v(m)`` that every estimator explains, public so any tool can use it.

``Game(prompt, target=..., model=..., units=..., mask="edit")`` renders the prompt, builds the units,
binds the target and evaluates ``game(masks)`` for a ``[batch, n]`` 0/1 array, batched. Every call counts
its evaluations (one per mask), so estimators from other libraries are compared at equal cost.

Examples:
    >>> import numpy as np
    >>> from diffusiongemma.models.tiny import example_model
    >>> game = Game("The river bank was muddy", target=" and", model=example_model(), units="words")
    >>> game.n
    5
    >>> game(np.ones((1, game.n))).shape
    (1,)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .errors import InputError
from .editing import TextEdits
from .evaluation import PromptEvaluator
from .masking import mask_operator
from .models import LoadedModel, load_model
from .prompts import Chat, render_prompt
from .stacking import evaluate_together
from .targets import Target, resolve_target
from .units import UnitSpec, build_units

__all__ = ["Game", "UnitGame", "as_masks", "resolve_model"]

_MODEL_CACHE: dict[Any, LoadedModel] = {}


def resolve_model(model: LoadedModel | str | None) -> LoadedModel:
    """A loaded model as is, or load (once per process) a spec given as text or None (the default)."""
    if isinstance(model, LoadedModel):
        return model
    if model is not None and not isinstance(model, str):
        raise InputError("model= takes a LoadedModel, a path, a cached model id, or None for the default")
    if model not in _MODEL_CACHE:
        _MODEL_CACHE[model] = load_model(model)
    return _MODEL_CACHE[model]


def as_masks(masks: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    """Masks ``[batch, n]`` as float64, from bool (shapiq), int or float arrays or tensors, shape checked.

    Examples:
        >>> as_masks([True, False], 2).tolist()
        [[1.0, 0.0]]
    """
    m = masks.to(torch.float64) if isinstance(masks, torch.Tensor) else torch.as_tensor(
        np.asarray(masks, dtype=np.float64))
    if m.ndim == 1:
        m = m.unsqueeze(0)
    if m.ndim != 2 or m.shape[1] != n:
        raise InputError(f"masks must have shape [batch, {n}], got {tuple(m.shape)}")
    return m


class UnitGame:
    """What every game shares: ``n`` units, the rendered ``text``, mask coercion, the batch size."""

    units: list
    rendered: Any
    evaluator: Any  # a PromptEvaluator
    baseline: Any  # what a masked unit becomes: a token id (mask="replace"), a component baseline's name, or None

    @property
    def rows_per_forward(self) -> int:
        """Masked runs that go through one forward on this model's device (see
        :mod:`diffusiongemma.models.batching`); the engine sizes its rounds by it."""
        return self.evaluator.rows_per_forward()

    @property
    def n(self) -> int:
        return len(self.units)

    @property
    def text(self) -> str:
        return self.rendered.text

    def _as_masks(self, masks: np.ndarray | torch.Tensor) -> torch.Tensor:
        return as_masks(masks, self.n)


class Game(UnitGame):
    """The masked value function of one prompt and target.

    Attributes:
        n: number of units.
        units: the :class:`~diffusiongemma.units.Unit` list.
        text: the rendered prompt text (the prompt itself for plain text).
        evaluations: masks evaluated so far.
    """

    def __init__(
        self,
        prompt: str | Chat,
        target: Target | str | Callable | None = None,
        *,
        model: LoadedModel | str | None = None,
        units: UnitSpec = "words",
        mask: str = "edit",
        baseline: str | int | None = None,
        contrast: str | None = None,
        chat: bool = False,
        system: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.lm = resolve_model(model)
        self.rendered = render_prompt(prompt, self.lm.tokenizer, self.lm.chat_template, chat=chat, system=system)
        self._check_length(0)
        self.units = build_units(self.rendered, units)
        self.unit_spec = units if isinstance(units, str) else "spans"
        self.operator = mask_operator(mask, self.lm.tokenizer, baseline)
        self.baseline = self.operator.baseline_id
        self.target = resolve_target(target, contrast)
        self.bound = self.target.bind(self.lm, self.rendered)
        self._check_length(max(len(c) for c in self.bound.continuations))
        token_unit = torch.full((len(self.rendered),), -1, dtype=torch.long)  # [L]
        for u, unit in enumerate(self.units):
            token_unit[list(unit.positions)] = u
        self.token_unit = token_unit
        self.edits = TextEdits(self.rendered, self.units, self.lm.tokenizer)  # masks as real text edits
        self.evaluator = PromptEvaluator(self.lm, self.rendered, self.bound, self.operator, token_unit, batch_size,
                                         edits=self.edits if self.operator.name == "edit" else None)
        self.evaluations = 0

    def _check_length(self, target_tokens: int) -> None:
        total = len(self.rendered) + target_tokens
        if total > self.lm.max_length:
            raise InputError(f"the prompt and target are {total} tokens, longer than the model's context of "
                             f"{self.lm.max_length} tokens")


    def __call__(self, masks: np.ndarray | torch.Tensor) -> np.ndarray:
        """Target values ``[batch]`` (float64) for masks ``[batch, n]`` of 0/1 (1 keeps a unit)."""
        m = self._as_masks(masks)
        if m.shape[0] == 0:
            return np.zeros(0)
        self.evaluations += int(m.shape[0])
        return self.evaluator(m.round().long()).numpy()

    @staticmethod
    def evaluate_together(games: list["Game"], masks: list[np.ndarray | torch.Tensor]) -> list[np.ndarray]:
        """Each game's values for its masks, several prompts' masks stacked in shared forwards where the
        games share a model (see :mod:`diffusiongemma.stacking`); what :meth:`__call__` gives each alone, up
        to floating-point rounding. The engine's :func:`~diffusiongemma.engine.run_many` uses it.

        Examples:
            >>> from diffusiongemma.models.tiny import example_model
            >>> lm = example_model()
            >>> a, b = Game("Paris is the capital of", " France", model=lm), Game("Rome is in", " Italy", model=lm)
            >>> [v.shape for v in Game.evaluate_together([a, b], [np.ones((2, a.n)), np.ones((1, b.n))])]
            [(2,), (1,)]
        """
        ms = [as_masks(m, g.n).round().long() for g, m in zip(games, masks)]
        for g, m in zip(games, ms):
            g.evaluations += int(m.shape[0])
        return [v.numpy() for v in evaluate_together([g.evaluator for g in games], ms)]

    def gradient(self, masks: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[batch]`` and gradients ``[batch, n]`` of the relaxed target at soft masks in [0, 1]
        (see :mod:`diffusiongemma.relaxation`); at 0/1 masks the values equal :meth:`__call__`'s under ``remove``
        and ``replace`` (``edit`` is relaxed as ``remove``: its text edits have no gradient). A forward
        and a backward count as 3 evaluations per mask."""
        m = self._as_masks(masks)
        if not bool(((m >= 0) & (m <= 1)).all()):
            raise InputError("soft masks must lie in [0, 1]")
        self.evaluations += 3 * int(m.shape[0])
        values, grads = self.evaluator.value_and_grad(m)
        return values.numpy(), grads.numpy()
