"""The public entry point: ``explain(prompt, target) -> Attribution``.

Examples:
    >>> import diffusiongemma as dg
    >>> from diffusiongemma.models.tiny import example_model
    >>> attr = dg.explain("The river bank was muddy after the", target=" rain", model=example_model(), budget=32)
    >>> len(attr.units), attr.evaluations, attr.settings["estimator"]  # 7 words, 32 masks: the default picks owen
    (7, 32, 'owen')

    (``model=None`` is the default Gemma 3 270M: its top three are 'river', 'muddy', 'bank'; the example model has
    random weights and shows only how a call is made.)
"""

from __future__ import annotations

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
from .models.provenance import library_versions
from .prompts import Chat
from .targets import Target
from .options import ExplainOptions, GameSpec
from .units import UnitSpec

__all__ = ["explain", "explain_many", "iter_explain_many", "explain_options", "check_request", "METHODS",
           "method_resolves"]

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


def method_resolves(method: str | None) -> bool:
    """Whether maps made with this method (a ``METHODS`` name, or an estimator's) may call units resolved: its
    estimator's ``resolves`` (a gradient map ranks and resolves nothing); ``True`` for a name neither knows.

    Examples:
        >>> method_resolves("shapley"), method_resolves("banzhaf"), method_resolves("gradient"), method_resolves(None)
        (True, True, False, True)
    """
    from .estimators import resolves

    return resolves(METHODS[method][0] if method in METHODS else method)


def check_request(prompt: str | Chat | None = None, *, target: Any = None, method: str | None = None,
                  budget: Any = None) -> None:
    """The checks of ``explain``'s arguments that need no model, so a bad request fails in milliseconds.

    An empty prompt or target, an unknown method, a budget below one evaluation: :class:`InputError`.

    Examples:
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


def explain(prompt: str | Chat, target: Target | str | Callable | None = None, *,
            options: ExplainOptions | None = None, progress: Callable[[int, int], Any] | None = None,
            **keywords: Any) -> Attribution:
    """Attribute a model's decision on ``prompt`` to its units, with standard errors.

    The options come as a value (``options=``, an :class:`~diffusiongemma.options.ExplainOptions`) and/or as its
    fields by name (``budget=64``, which override the value's); ``explain(p, ...)`` is ``explain_many([p], ...)[0]``.

    Args:
        prompt: plain text, or a chat (list of ``{"role", "content"}``).
        target: text of a continuation (its log-probability), a :class:`~diffusiongemma.targets.Target`, a
            callable on the target logits, or ``None`` for the model's own greedy next token.
        progress: called with (evaluations done, evaluations planned) after each round.

    Options (:class:`~diffusiongemma.options.GameSpec`):
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
        mask: ``"edit"`` (default: the units' text deleted and the prompt tokenised again, what an auditor's
            edit sends; see :mod:`~diffusiongemma.editing`), ``"remove"`` (the units' tokens dropped from
            attention, the other tokens kept as they are: not a text edit) or ``"replace"`` (by ``baseline``,
            default the pad token).
            For component units ``baseline`` is ``"zero"`` (default), ``"mean"`` (over ``reference`` prompts)
            or ``"resample"`` (activation patching from ``counterfactual``, a prompt of the same token length:
            masking noises the clean run; swap prompt and counterfactual to denoise).
        chat, system: render the prompt as a user turn of the model's chat template (a system prompt implies it).
        batch_size: masks per forward (default: sized to the device's memory).

    Options (:class:`~diffusiongemma.options.RunSpec`):
        method: ``"shapley"`` (default: picks ``gp`` up to 14 units at 3 (n + 6) evaluations, ``owen`` for long
            inputs and small budgets, ``regression`` above; see :mod:`~diffusiongemma.estimators.shapley`),
            ``"banzhaf"``, ``"paired"``, ``"regression"`` (plain KernelSHAP-style), ``"kadd"``
            (pair and triple terms), ``"gp"``, ``"owen"``, ``"exact"`` (all 2^n masks, n ≤ 16), ``"ablation"``
            (one unit at a time: occlusion, or exact single-component activation patching) or ``"gradient"``
            (integrated gradients of the relaxed mask along the schedule: the fast saliency map, 3 evaluations
            per point).
        schedule: override the method's noise schedule (``"shapley"``, ``"banzhaf"``, ``"beta:a,b"``, ...).
        budget: model evaluations to spend (v(all kept) and v(all removed) included).
        seed: fixes every sample.
        tolerance: stop early when every standard error is below it.
        interactions: also return the pair interactions (Faith-Shap) among the 6 strongest units (or this
            many), from the same samples at no extra cost; the estimators that fit the Shapley kernel only.

    Options (:class:`~diffusiongemma.options.Checks`):
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

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> attr = explain("Paris is the capital of", target=" France", model=example_model(), method="exact")
        >>> attr.evaluations, abs(attr.efficiency_gap) < 1e-4  # all 2^5 masks: the exact Shapley values
        (32, True)
    """
    result = explain_many([prompt], target, options=options, progress=progress, **keywords)[0]
    if isinstance(result, Exception):
        raise result
    return result


def explain_options(options: ExplainOptions | None = None, **keywords: Any) -> ExplainOptions:
    """The options of a call: the value given (or the defaults) with the keywords set; checked.

    Examples:
        >>> explain_options(budget=64, method="owen").run
        RunSpec(method='owen', schedule=None, budget=64, seed=0, tolerance=None, interactions=False)
        >>> explain_options(method="lasso")
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: unknown method 'lasso'; choose one of shapley, banzhaf, exact, paired, regression, kadd, gp, owen, gradient, ablation
    """
    o = (options or ExplainOptions()).replace(**keywords)
    check_request(method=o.run.method)
    return o


def _run_tree(game: Any, estimator: str, *, interactions: int, **engine: Any) -> tuple[Any, Any]:
    """The coarse-to-fine run over the game's unit tree, and the game over the final cut (for the checks)."""
    if interactions:
        raise InputError("interactions come with flat units; ask for units='words' (or another flat kind)")
    tree: Any
    _, tree = build_tree(game.rendered, game.tree_kinds, game.units)
    result = run_tree(game, tree, estimator, **engine)
    groups = result.groups or []  # node index of each final unit
    cut: Any = GroupedGame(game, [tree.nodes[k].leaves for k in groups], [tree.nodes[k].unit for k in groups])
    cut.unit_spec, cut.tree = game.unit_spec, {"kinds": tree.kinds, "roots": tree.roots,
                                               "cut": result.groups, "nodes": [n.to_dict() for n in tree.nodes]}
    return result, cut


def _game(prompt: str | Chat, target: Any, spec: GameSpec, method: str) -> Any:
    """The game ``explain`` plays: a component game for component units, else a token game (under ``remove``
    for the gradient method when ``edit`` is asked: it relaxes token removal)."""
    units, mask = spec.units, spec.mask
    if is_component_spec(units):
        return ComponentGame(prompt, target, model=spec.model, units=units, baseline=str(spec.baseline or "zero"),
                             reference=spec.reference, contrast=spec.contrast, chat=spec.chat, system=spec.system,
                             batch_size=spec.batch_size, counterfactual=spec.counterfactual)
    if spec.counterfactual is not None:
        raise InputError("counterfactual= applies to component units with baseline='resample'")
    if mask == "edit" and METHODS.get(method, ("",))[0] == "gradient":
        mask = "remove"  # the gradient differentiates the relaxed token removal: its ends must be removal's too
    game: Any = Game(prompt, target, model=spec.model, units=leaf_kind(units), mask=mask, baseline=spec.baseline,
                contrast=spec.contrast, chat=spec.chat, system=spec.system, batch_size=spec.batch_size)
    plan = plan_units(game.rendered) if units == "auto" else units
    game.plan = f"auto: {game.n} words -> {plan}" if units == "auto" else None
    kinds = parse_tree_spec(plan)
    if kinds:
        game.tree_kinds, game.unit_spec = kinds, ">".join(kinds)
    return game


def _attribution(game: Any, result: EngineResult, o: ExplainOptions) -> Attribution:
    """The engine's result as an :class:`Attribution`, with the checks asked for (each a model run)."""
    masks = _mask_setting(o.game.units, o.game.mask, result.estimator)
    checks = o.checks
    settings = {
        "units": game.unit_spec, "mask": masks,
        # whether every masked value is the value of the edited text sent again (see diffusiongemma.editing)
        "exact_edits": masks == "edit",
        "baseline": game.baseline, "method": o.run.method,
        "estimator": result.estimator, "schedule": result.schedule, "budget": o.run.budget, "seed": o.run.seed,
        "tolerance": o.run.tolerance, "stopped": result.stopped, "chat": game.rendered.is_chat,
        **({"plan": game.plan} if getattr(game, "plan", None) else {}),
        # said, never silent: the model saw it, the map has no units for it
        **({"default_system_prompt": game.rendered.default_system} if game.rendered.default_system else {}),
    }
    provenance = {**game.lm.provenance, "versions": library_versions()}
    check = run_faithfulness(game, result.scores) if checks.faithfulness else None
    found = None
    if checks.triggers:
        signed = game.bound.description.get("kind") in ("contrast", "refusal")
        threshold = checks.trigger_threshold if checks.trigger_threshold is not None else (
            0.0 if signed else (result.v_full + result.v_empty) / 2)
        found = {kind: confirm_on_text(game, minimal_trigger_set(game, result.scores, kind=kind, threshold=threshold))
                 for kind in ("necessary", "sufficient")}
    pairs = find_backups(game, result.scores, top=checks.backup_count) if checks.backup_count else None
    return Attribution(
        units=game.units, scores=result.scores, stderr=result.stderr, text=game.text,
        target=game.bound.description, v_full=result.v_full, v_empty=result.v_empty,
        evaluations=result.evaluations, wall_time=result.wall_time, method=o.run.method, settings=settings,
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


def explain_many(prompts: list[str | Chat], target: Target | str | Callable | None = None, *,
                 options: ExplainOptions | None = None, progress: Callable[[int, int], Any] | None = None,
                 **keywords: Any) -> list[Attribution | Exception]:
    """:func:`explain` for several prompts with the same target and options, their masks evaluated together:
    each round of the estimator stacks every prompt's masks in shared forwards (see
    :mod:`diffusiongemma.stacking`), so an accelerator sees large batches. Each prompt gets the attribution
    :func:`explain` gives it alone (the same masks; values equal up to floating-point rounding). A prompt that
    fails (empty, too long, NaN from the model) gets its exception in its place; the others go on.
    ``progress`` sees the evaluations of all prompts together, and each attribution's ``wall_time`` is the
    shared run's.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> out = explain_many(["Paris is the capital of", "", "Rome is"], " France", model=example_model(), budget=24)
        >>> [type(a).__name__ for a in out]  # the empty prompt gets its error in its place
        ['Attribution', 'InputError', 'Attribution']
    """
    out: list[Any] = [None] * len(prompts)
    for k, result in iter_explain_many(prompts, target, options=options, progress=progress, **keywords):
        out[k] = result
    return out


def iter_explain_many(prompts: list[str | Chat], target: Target | str | Callable | None = None, *,
                      options: ExplainOptions | None = None, progress: Callable[[int, int], Any] | None = None,
                      **keywords: Any) -> Iterator[tuple[int, Attribution | Exception]]:
    """:func:`explain_many`, each prompt's ``(index, attribution or exception)`` yielded as soon as it is
    complete: after the shared maps, each prompt's own checks (triggers, faithfulness) run in turn.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> for k, attr in iter_explain_many(["Paris is the capital of", "Rome is"], " France", model=example_model(),
        ...                                  budget=24):
        ...     print(k, type(attr).__name__)
        0 Attribution
        1 Attribution
    """
    o = explain_options(options, **keywords)
    games: list[tuple[int, Any]] = []
    for k, prompt in enumerate(prompts):
        try:
            check_request(prompt, target=target)
            games.append((k, _game(prompt, target, o.game, o.run.method)))
        except Exception as e:  # noqa: BLE001 - this prompt's failure, reported in its place
            yield k, e
    estimator, default_schedule = METHODS[o.run.method]
    engine: dict[str, Any] = {"schedule": o.run.schedule or default_schedule, "budget": o.run.budget, "tolerance": o.run.tolerance,
              "seed": o.run.seed, "interactions": o.run.top_interactions}
    trees = {k for k, g in games if getattr(g, "tree_kinds", None)}  # long prompts: coarse to fine, one by one
    flat = [(k, g) for k, g in games if k not in trees]
    try:
        done: list[Any] = run_many([g for _, g in flat], estimator, progress=progress, **engine)
    except Exception as e:  # noqa: BLE001 - one prompt's failure (NaN, say) must not sink the others: one by one
        done = [e] if len(flat) == 1 else [_run_or_error(g, estimator, engine) for _, g in flat]
    by_index = dict(zip([k for k, _ in flat], done))
    results: list[Any] = []
    for j, (k, g) in enumerate(games):
        if k in trees:
            try:
                by_index[k], cut = _run_tree(g, estimator, progress=progress, **engine)
                games[j] = (k, cut)
            except Exception as e:  # noqa: BLE001
                by_index[k] = e
        results.append(by_index[k])
    for (k, g), r in zip(games, results):
        try:
            yield k, r if isinstance(r, Exception) else _attribution(g, r, o)
        except Exception as e:  # noqa: BLE001
            yield k, e


def _run_or_error(game: Any, estimator: str, engine: dict[str, Any]) -> EngineResult | Exception:
    """One game's run alone, or its failure as a value (a batch goes on without it)."""
    try:
        return run(game, estimator, **engine)
    except Exception as e:  # noqa: BLE001
        return e
