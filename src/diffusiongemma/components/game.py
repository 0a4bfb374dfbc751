"""The component game: ``v(m)`` for masks over model components, on one prompt and target.

Same interface as :class:`~diffusiongemma.game.Game` (``n``, ``units``, ``game(masks)``, ``game.gradient``),
so every estimator of the engine runs on it unchanged; the gradient of the soft mask at ``m = 1`` is
attribution patching (AtP). Masks act through :mod:`.hooks`; every token of the prompt is kept.

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> game = ComponentGame("The Eiffel Tower is in", " Paris", model=example_model(), units="heads+mlps")
    >>> game.n  # 2 layers × 4 heads + 2 MLPs (on Gemma 3 270M: 18 × 4 + 18 = 90)
    10
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..errors import InputError
from ..evaluation import PromptEvaluator
from ..validation import check_finite
from ..game import UnitGame, resolve_model
from ..masking import MaskOperator
from ..models.hooks import scoped_hooks
from ..prompts import Chat, render_prompt
from ..targets import Target, resolve_target
from .baselines import BASELINES, mean_baselines, resample_baselines
from .positions import check_position
from .hooks import component_hooks
from .sites import component_units, enumerate_components

__all__ = ["ComponentGame"]


class ComponentGame(UnitGame):
    """Masked value function over components (heads, MLPs, neurons, layers, directions) of the model on one
    prompt. ``baseline``: ``"zero"``, ``"mean"`` (over ``reference`` prompts) or ``"resample"`` (the
    activations of a ``counterfactual`` prompt of the same token length: activation patching)."""

    def __init__(self, prompt: str | Chat, target: Target | str | Callable | None = None, *, model: Any = None,
                 units: str = "heads+mlps", baseline: str = "zero", reference: list[str] | None = None,
                 contrast: str | None = None, chat: bool = False, system: str | None = None,
                 batch_size: int | None = None, counterfactual: str | Chat | None = None) -> None:
        if baseline not in BASELINES:
            raise InputError(f"component baseline {baseline!r} is not one of {', '.join(BASELINES)}")
        self.lm = resolve_model(model)
        self.rendered = render_prompt(prompt, self.lm.tokenizer, self.lm.chat_template, chat=chat, system=system)
        self.components = enumerate_components(self.lm, units, self.rendered.input_ids)
        self.units = component_units(self.components)
        self.unit_spec = units
        self.target = resolve_target(target, contrast)
        self.bound = self.target.bind(self.lm, self.rendered)
        for spec in {c.positions for c in self.components if c.positions}:
            check_position(spec, len(self.rendered))
        self.baseline = baseline
        self.evaluator = self._evaluator(self.rendered, batch_size)
        self.baselines = self._baselines(baseline, reference, counterfactual, chat, system)
        self.evaluations = 0

    def _evaluator(self, rendered: Any, batch_size: int | None) -> PromptEvaluator:
        token_unit = torch.full((len(rendered),), -1, dtype=torch.long)  # no token is a unit: every one is kept
        # the component hooks change every position's activations: no prefix is the same under every mask
        return PromptEvaluator(self.lm, rendered, self.bound, MaskOperator("remove"), token_unit, batch_size,
                               cache_prefix=False)

    def _baselines(self, baseline: str, reference: list[str] | None, counterfactual: Any, chat: bool,
                   system: str | None) -> dict:
        if baseline != "resample" and counterfactual is not None:
            raise InputError("a counterfactual prompt is only used with baseline='resample'")
        if baseline == "mean":
            return mean_baselines(self.lm, self.components, list(reference or []), chat=chat, system=system)
        if baseline != "resample":
            return {}
        if counterfactual is None:
            raise InputError("baseline='resample' needs a counterfactual prompt (counterfactual=..., or --counterfactual)")
        corrupt = render_prompt(counterfactual, self.lm.tokenizer, self.lm.chat_template, chat=chat, system=system)
        if len(corrupt) != len(self.rendered):
            raise InputError(
                f"the counterfactual prompt has {len(corrupt)} tokens and the prompt {len(self.rendered)}; activation "
                "patching swaps activations position by position, so both must have the same number of tokens")
        ev = self._evaluator(corrupt, 1)
        keep = torch.ones(1, len(corrupt), dtype=torch.long, device=self.lm.device)
        return resample_baselines(self.lm, self.components, lambda: ev.values(keep))

    def _values(self, masks: torch.Tensor) -> torch.Tensor:
        """Values ``[b]`` for component masks ``[b, n]`` (differentiable in the masks)."""
        keep = torch.ones(masks.shape[0], len(self.rendered), dtype=torch.long, device=self.lm.device)  # [b, L]
        with scoped_hooks(component_hooks(self.lm, self.components, masks, self.baselines, len(self.rendered))):
            return self.evaluator.values(keep)

    def __call__(self, masks: Any) -> np.ndarray:
        """Target values ``[batch]`` for masks ``[batch, n]`` (1 keeps a component, 0 masks it)."""
        m = self._as_masks(masks).round().to(self.lm.device, self.lm.model.dtype)
        self.evaluations += int(m.shape[0])
        chunk = self.evaluator.rows_per_forward()
        with torch.no_grad():
            out = [self._values(m[lo: lo + chunk]).double() for lo in range(0, m.shape[0], chunk)]  # on the device
        return check_finite(torch.cat(out).cpu() if out else torch.zeros(0)).numpy()

    def gradient(self, masks: Any) -> tuple[np.ndarray, np.ndarray]:
        """Values and gradients ``[batch, n]`` at soft masks in [0, 1] (3 evaluations per mask)."""
        m = self._as_masks(masks)
        if not bool(((m >= 0) & (m <= 1)).all()):
            raise InputError("soft masks must lie in [0, 1]")
        self.evaluations += 3 * int(m.shape[0])
        values, grads = [], []
        chunk = self.evaluator.rows_per_forward(backward=True, checkpointed=False)
        for lo in range(0, m.shape[0], chunk):
            part = m[lo: lo + chunk].to(self.lm.device, self.lm.model.dtype).clone().requires_grad_(True)
            with torch.enable_grad():  # not checkpointed: the component hooks wrap the layers themselves
                v = self._values(part)
                (g,) = torch.autograd.grad(v.sum(), part)
            values.append(v.detach().double().cpu())
            grads.append(g.double().cpu())
        return check_finite(torch.cat(values)).numpy(), check_finite(torch.cat(grads)).numpy()

