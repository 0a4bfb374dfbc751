"""The public entry point: ``explain(prompt, target) -> Attribution``.

Example:
    >>> import diffusiongemma as dg
    >>> attr = dg.explain("The river bank was muddy after the", target=" rain", budget=128)  # doctest: +SKIP
    >>> [u.text for u, score, se in attr.top(3)]  # doctest: +SKIP
    ['river', 'muddy', 'bank']
"""

from __future__ import annotations

import platform
from typing import Any, Callable

from .attribution import Attribution
from .engine import run
from .errors import InputError
from .faithfulness import faithfulness as run_faithfulness
from .faithfulness import minimal_trigger_set
from .redundancy import find_backups
from .components import ComponentGame, is_component_spec
from .game import Game
from .models import LoadedModel
from .prompts import Chat
from .targets import Target
from .units import UnitSpec

__all__ = ["explain", "check_request", "METHODS"]

# method name -> (estimator, default schedule)
METHODS: dict[str, tuple[str, str]] = {
    "shapley": ("regression", "shapley"),
    "banzhaf": ("regression", "banzhaf"),
    "exact": ("exact", "shapley"),
    "paired": ("paired", "shapley"),
    "regression": ("regression", "shapley"),
    "gradient": ("gradient", "shapley"),
    "ablation": ("ablation", "shapley"),
}


def check_request(prompt: str | Chat | None = None, *, target: Any = None, method: str | None = None,
                  budget: Any = None) -> None:
    """The checks of ``explain``'s arguments that need no model, so a bad request fails in milliseconds.

    An empty prompt or target, an unknown method, a budget below one evaluation: :class:`InputError`.

    Example:
        >>> check_request("Hello", target=" world", method="shapley", budget=64)
        >>> check_request("  ")
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: the prompt is empty
    """
    if isinstance(prompt, str) and not prompt.strip():
        raise InputError("the prompt is empty")
    if isinstance(target, str) and target == "":
        raise InputError("the target is empty")
    if method is not None and method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise InputError(f"the budget must be a whole number of evaluations ≥ 1, got {budget!r}")


def _versions() -> dict[str, str]:
    import numpy
    import torch
    import transformers

    from . import __version__

    return {"diffusiongemma": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def explain(
    prompt: str | Chat,
    target: Target | str | Callable | None = None,
    *,
    contrast: str | None = None,
    model: LoadedModel | str | None = None,
    units: UnitSpec = "words",
    method: str = "shapley",
    schedule: str | None = None,
    mask: str = "remove",
    baseline: str | int | None = None,
    budget: int = 256,
    seed: int = 0,
    tolerance: float | None = None,
    chat: bool = False,
    system: str | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    faithfulness: bool = False,
    interactions: bool | int = False,
    triggers: bool = False,
    backups: bool | int = False,
    trigger_threshold: float | None = None,
    reference: list[str] | None = None,
    counterfactual: str | Chat | None = None,
) -> Attribution:
    """Attribute a model's decision on ``prompt`` to its units, with standard errors.

    Args:
        prompt: plain text, or a chat (list of ``{"role", "content"}``).
        target: text of a continuation (its log-probability), a :class:`~diffusiongemma.targets.Target`, a
            callable on the target logits, or ``None`` for the model's own greedy next token.
        contrast: a second continuation: the target becomes log p(target) − log p(contrast).
        model: a :class:`LoadedModel`, a path or cached id, or ``None`` for the default Gemma 3 270M.
        units: ``"tokens"``, ``"words"``, ``"sentences"``, ``"roles"``, ``"spans:A-B,..."`` (add
            ``+special`` to make template markers units too) or a list of character spans; or model
            components: ``"heads"``, ``"mlps"``, ``"layers"``, ``"neurons:L"`` (``/G`` for groups of G),
            ``"direction:FILE"``, joined with ``+``, optionally ``@A-B`` layers and ``@last`` / ``@lastK`` /
            ``@tokA-B`` positions.
        method: ``"shapley"`` (regression with efficiency, default), ``"banzhaf"``, ``"paired"``,
            ``"regression"``, ``"exact"`` (all 2^n masks, n ≤ 16), ``"ablation"`` (one unit at a time: occlusion,
            or exact single-component activation patching) or ``"gradient"`` (integrated gradients
            of the relaxed mask along the schedule: the fast saliency map, 3 evaluations per point).
        schedule: override the method's noise schedule (``"shapley"``, ``"banzhaf"``, ``"beta:a,b"``, ...).
        mask: ``"remove"`` (drop from attention) or ``"replace"`` (by ``baseline``, default the pad token).
            For component units ``baseline`` is ``"zero"`` (default), ``"mean"`` (over ``reference`` prompts)
            or ``"resample"`` (activation patching from ``counterfactual``, a prompt of the same token length:
            masking noises the clean run; swap prompt and counterfactual to denoise).
        budget: model evaluations to spend (v(all kept) and v(all removed) included).
        seed: fixes every sample.
        tolerance: stop early when every standard error is below it.
        interactions: also return the pair interactions (Faith-Shap) among the 6 strongest units (or this
            many), from the same samples at no extra cost; ``method="shapley"`` only.
        triggers: also search the minimal trigger sets along the map — the fewest units whose removal flips
            the decision, and the fewest that alone keep it — each checked by running the model (up to 400
            evaluations each, counted apart from the budget).
        backups: also search for units that cover for each other: the 8 units (or this many) whose Shapley
            value most exceeds their single-removal effect are each removed together with every other unit,
            and the pairs whose joint removal does more than the two apart are reported — every figure a
            model run (``n + top·(n − 1)`` evaluations, counted apart from the budget; see
            :mod:`~diffusiongemma.redundancy`).
        trigger_threshold: the decision is ``v > threshold``; default 0 for contrast and refusal targets
            (a sign), else halfway between v(all kept) and v(all removed).
        faithfulness: also run the deletion/insertion check (about 2·min(n, 20) more evaluations, counted
            apart from the budget in ``attr.faithfulness.evaluations``).

    Example:
        >>> attr = explain("Paris is the capital of", target=" France", method="exact")  # doctest: +SKIP
        >>> abs(attr.efficiency_gap) < 1e-6  # doctest: +SKIP
        True
    """
    check_request(prompt, target=target, method=method)
    estimator, default_schedule = METHODS[method]
    if is_component_spec(units):
        game: Any = ComponentGame(prompt, target, model=model, units=units, baseline=baseline or "zero",
                                  reference=reference, contrast=contrast, chat=chat, system=system,
                                  batch_size=batch_size, counterfactual=counterfactual)
    else:
        if counterfactual is not None:
            raise InputError("counterfactual= applies to component units with baseline='resample'")
        game = Game(prompt, target, model=model, units=units, mask=mask, baseline=baseline, contrast=contrast,
                    chat=chat, system=system, batch_size=batch_size)
    top = 6 if interactions is True else int(interactions or 0)
    result = run(game, estimator, schedule=schedule or default_schedule, budget=budget, tolerance=tolerance,
                 seed=seed, progress=progress, interactions=top)
    settings = {
        "units": game.unit_spec, "mask": "component" if is_component_spec(units) else mask,
        "baseline": game.operator.baseline_id, "method": method,
        "estimator": result.estimator, "schedule": result.schedule, "budget": budget, "seed": seed,
        "tolerance": tolerance, "stopped": result.stopped, "chat": game.rendered.is_chat,
    }
    provenance = {**game.lm.provenance, "versions": _versions()}
    check = run_faithfulness(game, result.scores) if faithfulness else None
    found = None
    if triggers:
        signed = game.bound.description.get("kind") in ("contrast", "refusal")
        threshold = trigger_threshold if trigger_threshold is not None else (
            0.0 if signed else (result.v_full + result.v_empty) / 2)
        found = {kind: minimal_trigger_set(game, result.scores, kind=kind, threshold=threshold)
                 for kind in ("necessary", "sufficient")}
    pairs = find_backups(game, result.scores, top=8 if backups is True else int(backups)) if backups else None
    return Attribution(
        units=game.units, scores=result.scores, stderr=result.stderr, text=game.text,
        target=game.bound.description, v_full=result.v_full, v_empty=result.v_empty,
        evaluations=result.evaluations, wall_time=result.wall_time, method=method, settings=settings,
        provenance=provenance, faithfulness=check, interactions=result.interactions, triggers=found,
        backups=pairs,
    )
