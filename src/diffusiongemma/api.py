"""The public entry point: ``explain(prompt, target) -> Attribution``.

Example:
    >>> import diffusiongemma as dg
    >>> attr = dg.explain("The river bank was muddy after the", target=" rain", budget=128)  # doctest: +SKIP
    >>> [u.text for u, score, se in attr.top(3)]  # doctest: +SKIP
    ['river', 'muddy', 'bank']
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator

from .attribution import Attribution
from .engine import EngineResult, run, run_many
from .errors import InputError
from .validation import check_budget
from .faithfulness import faithfulness as run_faithfulness
from .confirm import confirm_on_text
from .faithfulness import minimal_trigger_set
from .redundancy import find_backups
from .components import ComponentGame, is_component_spec
from .game import Game
from .hierarchy import GroupedGame, build_tree, leaf_kind, parse_tree_spec, plan_units, run_tree
from .models import LoadedModel
from .models.provenance import library_versions
from .prompts import Chat
from .targets import Target
from .units import UnitSpec

__all__ = ["explain", "explain_many", "iter_explain_many", "check_request", "METHODS"]

# method name -> (estimator, default schedule)
METHODS: dict[str, tuple[str, str]] = {
    "shapley": ("shapley", "shapley"),  # gp up to 14 units, owen for long inputs, regression (estimators/shapley.py)
    "banzhaf": ("regression", "banzhaf"),
    "exact": ("exact", "shapley"),
    "paired": ("paired", "shapley"),
    "regression": ("regression", "shapley"),
    "kadd": ("kadd", "shapley"),
    "gp": ("gp", "shapley"),
    "owen": ("owen", "shapley"),
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
    if budget is not None:
        check_budget(budget)


def explain(
    prompt: str | Chat,
    target: Target | str | Callable | None = None,
    *,
    contrast: str | None = None,
    model: LoadedModel | str | None = None,
    units: UnitSpec = "auto",
    method: str = "shapley",
    schedule: str | None = None,
    mask: str = "edit",
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
        units: ``"auto"`` (default: the words up to 300 of them, else the tree ``"sentences>words"``, under the chat
            turns when there are several; the choice lands in ``settings["plan"]``), ``"tokens"``, ``"words"``,
            ``"sentences"``, ``"roles"``, ``"spans:A-B,..."`` (add ``+special`` to make template markers units too),
            a list of character spans, or a tree of kinds from coarse to fine such as ``"sentences>words"`` (the
            budget goes to the coarse units first, then into those that carry the mass; see
            :mod:`~diffusiongemma.hierarchy`); or model
            components: ``"heads"``, ``"mlps"``, ``"layers"``, ``"neurons:L"`` (``/G`` for groups of G),
            ``"direction:FILE"``, joined with ``+``, optionally ``@A-B`` layers and ``@last`` / ``@lastK`` /
            ``@tokA-B`` positions.
        method: ``"shapley"`` (default: KernelSHAP's masks; up to 14 units the posterior mean of a Gaussian-process
            prior fitted to them, see :mod:`~diffusiongemma.estimators.gp`, above that regression with
            efficiency), ``"banzhaf"``, ``"paired"``, ``"regression"`` (plain KernelSHAP-style), ``"kadd"``
            (pair and triple terms), ``"gp"``, ``"exact"`` (all 2^n masks, n ≤ 16), ``"ablation"`` (one unit at a time: occlusion,
            or exact single-component activation patching) or ``"gradient"`` (integrated gradients
            of the relaxed mask along the schedule: the fast saliency map, 3 evaluations per point).
        schedule: override the method's noise schedule (``"shapley"``, ``"banzhaf"``, ``"beta:a,b"``, ...).
        mask: ``"edit"`` (default: the units' text deleted and the prompt tokenised again, what an auditor's
            edit sends; see :mod:`~diffusiongemma.editing`), ``"remove"`` (the units' tokens dropped from
            attention, the other tokens kept as they are: not a text edit) or ``"replace"`` (by ``baseline``,
            default the pad token).
            For component units ``baseline`` is ``"zero"`` (default), ``"mean"`` (over ``reference`` prompts)
            or ``"resample"`` (activation patching from ``counterfactual``, a prompt of the same token length:
            masking noises the clean run; swap prompt and counterfactual to denoise).
        budget: model evaluations to spend (v(all kept) and v(all removed) included).
        seed: fixes every sample.
        tolerance: stop early when every standard error is below it.
        interactions: also return the pair interactions (Faith-Shap) among the 6 strongest units (or this
            many), from the same samples at no extra cost; ``method="shapley"`` only.
        triggers: also search the minimal trigger sets along the map — the fewest units whose removal flips
            the decision, and the fewest that alone keep it — each found under the mask (up to 400 evaluations
            each, counted apart from the budget), then checked on the real thing: the edited text sent again
            as a new request (``state`` ``"confirmed"`` or ``"masked only"``; see :mod:`~diffusiongemma.confirm`).
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
    game = _game(prompt, target, method=method, model=model, units=units, mask=mask, baseline=baseline, contrast=contrast,
                 chat=chat, system=system, batch_size=batch_size, reference=reference,
                 counterfactual=counterfactual)
    estimator, default_schedule = METHODS[method]
    top = 6 if interactions is True else int(interactions or 0)
    if getattr(game, "tree_kinds", None):
        result, game = _run_tree(game, estimator, schedule=schedule or default_schedule, budget=budget,
                                 tolerance=tolerance, seed=seed, progress=progress, interactions=top)
    else:
        result = run(game, estimator, schedule=schedule or default_schedule, budget=budget, tolerance=tolerance,
                     seed=seed, progress=progress, interactions=top)
    return _attribution(game, result, units=units, mask=mask, method=method, budget=budget, seed=seed,
                        tolerance=tolerance, faithfulness=faithfulness, triggers=triggers, backups=backups,
                        trigger_threshold=trigger_threshold)


def _run_tree(game: Any, estimator: str, *, interactions: int, **engine: Any) -> tuple[Any, Any]:
    """The coarse-to-fine run over the game's unit tree, and the game over the final cut (for the checks)."""
    if interactions:
        raise InputError("interactions come with flat units; ask for units='words' (or another flat kind)")
    _, tree = build_tree(game.rendered, game.tree_kinds, game.units)
    result = run_tree(game, tree, estimator, **engine)
    cut = GroupedGame(game, [tree.nodes[k].leaves for k in result.groups], [tree.nodes[k].unit for k in result.groups])
    cut.unit_spec, cut.tree = game.unit_spec, {"kinds": tree.kinds, "roots": tree.roots,
                                               "cut": result.groups, "nodes": [n.to_dict() for n in tree.nodes]}
    return result, cut


def _game(prompt: str | Chat, target: Any, *, method: str, model: Any, units: UnitSpec, mask: str, baseline: Any,
          contrast: str | None, chat: bool, system: str | None, batch_size: int | None,
          reference: list[str] | None, counterfactual: str | Chat | None) -> Any:
    """The game ``explain`` plays: a component game for component units, else a token game (under ``remove``
    for the gradient method when ``edit`` is asked: it relaxes token removal)."""
    if is_component_spec(units):
        return ComponentGame(prompt, target, model=model, units=units, baseline=baseline or "zero",
                             reference=reference, contrast=contrast, chat=chat, system=system,
                             batch_size=batch_size, counterfactual=counterfactual)
    if counterfactual is not None:
        raise InputError("counterfactual= applies to component units with baseline='resample'")
    if mask == "edit" and METHODS.get(method, ("",))[0] == "gradient":
        mask = "remove"  # the gradient differentiates the relaxed token removal: its ends must be removal's too
    game = Game(prompt, target, model=model, units=leaf_kind(units), mask=mask, baseline=baseline,
                contrast=contrast, chat=chat, system=system, batch_size=batch_size)
    plan = plan_units(game.rendered) if units == "auto" else units
    game.plan = f"auto: {game.n} words -> {plan}" if units == "auto" else None
    kinds = parse_tree_spec(plan)
    if kinds:
        game.tree_kinds, game.unit_spec = kinds, ">".join(kinds)
    return game


def _attribution(game: Any, result: EngineResult, *, units: UnitSpec, mask: str, method: str, budget: int,
                 seed: int, tolerance: float | None, faithfulness: bool, triggers: bool, backups: bool | int,
                 trigger_threshold: float | None) -> Attribution:
    """The engine's result as an :class:`Attribution`, with the checks asked for (each a model run)."""
    masks = _mask_setting(units, mask, result.estimator)
    settings = {
        "units": game.unit_spec, "mask": masks,
        # whether every masked value is the value of the edited text sent again (see diffusiongemma.editing)
        "exact_edits": masks == "edit",
        "baseline": game.operator.baseline_id, "method": method,
        "estimator": result.estimator, "schedule": result.schedule, "budget": budget, "seed": seed,
        "tolerance": tolerance, "stopped": result.stopped, "chat": game.rendered.is_chat,
        **({"plan": game.plan} if getattr(game, "plan", None) else {}),
        # said, never silent: the model saw it, the map has no units for it
        **({"default_system_prompt": game.rendered.default_system} if game.rendered.default_system else {}),
    }
    provenance = {**game.lm.provenance, "versions": library_versions()}
    check = run_faithfulness(game, result.scores) if faithfulness else None
    found = None
    if triggers:
        signed = game.bound.description.get("kind") in ("contrast", "refusal")
        threshold = trigger_threshold if trigger_threshold is not None else (
            0.0 if signed else (result.v_full + result.v_empty) / 2)
        found = {kind: confirm_on_text(game, minimal_trigger_set(game, result.scores, kind=kind, threshold=threshold))
                 for kind in ("necessary", "sufficient")}
    pairs = find_backups(game, result.scores, top=8 if backups is True else int(backups)) if backups else None
    return Attribution(
        units=game.units, scores=result.scores, stderr=result.stderr, text=game.text,
        target=game.bound.description, v_full=result.v_full, v_empty=result.v_empty,
        evaluations=result.evaluations, wall_time=result.wall_time, method=method, settings=settings,
        provenance=provenance, faithfulness=check, interactions=result.interactions, triggers=found,
        backups=pairs, tree=getattr(game, "tree", None),
    )


def _mask_setting(units: UnitSpec, mask: str, estimator: str) -> str:
    """What the masks were, as the report says it: ``edit`` (real text edits), ``remove (relaxed)`` for the
    gradient method under ``edit`` (it differentiates the relaxed token removal), ``component``, or the
    operator asked for."""
    if is_component_spec(units):
        return "component"
    return "remove (relaxed)" if mask == "edit" and estimator == "gradient" else mask


_GAME_OPTIONS = ("model", "units", "mask", "baseline", "contrast", "chat", "system", "batch_size", "reference",
                 "counterfactual")

def _explain_defaults() -> dict[str, Any]:
    """``explain``'s keyword arguments and their defaults (what ``explain_many`` accepts)."""
    return {name: p.default for name, p in inspect.signature(explain).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def explain_many(prompts: list[str | Chat], target: Target | str | Callable | None = None,
                 **options: Any) -> list[Attribution | Exception]:
    """:func:`explain` for several prompts with the same target and options (any of ``explain``'s keyword
    arguments), their masks evaluated together: each round of the estimator stacks every prompt's masks in
    shared forwards (see :mod:`diffusiongemma.stacking`), so an accelerator sees large batches. Each prompt
    gets the attribution :func:`explain` gives it alone (the same masks; values equal up to floating-point
    rounding). A prompt that fails (empty, too long, NaN from the model) gets its exception in its place;
    the others go on. ``progress`` sees the evaluations of all prompts together, and each attribution's
    ``wall_time`` is the shared run's.

    Example:
        >>> out = explain_many(["Paris is the capital of", "Rome is the capital of"], " France", budget=64)  # doctest: +SKIP
        >>> [a.top(1)[0][0].text for a in out]  # doctest: +SKIP
        ['Paris', 'Rome']
    """
    out: list[Any] = [None] * len(prompts)
    for k, result in iter_explain_many(prompts, target, **options):
        out[k] = result
    return out


def iter_explain_many(prompts: list[str | Chat], target: Target | str | Callable | None = None,
                      **options: Any) -> Iterator[tuple[int, Attribution | Exception]]:
    """:func:`explain_many`, each prompt's ``(index, attribution or exception)`` yielded as soon as it is
    complete: after the shared maps, each prompt's own checks (triggers, faithfulness) run in turn.

    Example:
        >>> for k, attr in iter_explain_many(["Paris is the capital of", "Rome is"], " France"):  # doctest: +SKIP
        ...     print(k, type(attr).__name__)
        0 Attribution
        1 Attribution
    """
    defaults = _explain_defaults()
    unknown = set(options) - set(defaults)
    if unknown:
        raise InputError(f"explain_many() got unknown options: {', '.join(sorted(unknown))}")
    o = {**defaults, **options}
    games: list[tuple[int, Any]] = []
    for k, prompt in enumerate(prompts):
        try:
            check_request(prompt, target=target, method=o["method"])
            games.append((k, _game(prompt, target, method=o["method"], **{name: o[name] for name in _GAME_OPTIONS})))
        except Exception as e:  # noqa: BLE001 - this prompt's failure, reported in its place
            yield k, e
    estimator, default_schedule = METHODS[o["method"]]
    top = 6 if o["interactions"] is True else int(o["interactions"] or 0)
    engine = {"schedule": o["schedule"] or default_schedule, "budget": o["budget"], "tolerance": o["tolerance"],
              "seed": o["seed"], "interactions": top}
    trees = {k for k, g in games if getattr(g, "tree_kinds", None)}  # long prompts: coarse to fine, one by one
    flat = [(k, g) for k, g in games if k not in trees]
    try:
        done: list[Any] = run_many([g for _, g in flat], estimator, progress=o["progress"], **engine)
    except Exception:  # noqa: BLE001 - one prompt's failure (NaN, say) must not sink the others: one by one
        done = []
        for _, g in flat:
            try:
                done.append(run(g, estimator, **engine))
            except Exception as e:  # noqa: BLE001
                done.append(e)
    by_index = dict(zip([k for k, _ in flat], done))
    results: list[Any] = []
    for j, (k, g) in enumerate(games):
        if k in trees:
            try:
                by_index[k], cut = _run_tree(g, estimator, progress=o["progress"], **engine)
                games[j] = (k, cut)
            except Exception as e:  # noqa: BLE001
                by_index[k] = e
        results.append(by_index[k])
    finish = {name: o[name] for name in ("units", "mask", "method", "budget", "seed", "tolerance", "faithfulness",
                                        "triggers", "backups", "trigger_threshold")}
    for (k, g), r in zip(games, results):
        try:
            yield k, r if isinstance(r, Exception) else _attribution(g, r, **finish)
        except Exception as e:  # noqa: BLE001
            yield k, e
