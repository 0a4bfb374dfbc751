"""Why did the model refuse (or comply)? The decision, its refusal score, the map, the checked trigger sets.

``explain_refusal(prompt)`` generates the model's reply to the prompt as a chat turn and judges it with
the refusal detector (the decision), then attributes the refusal score (log p(refusal openings) −
log p(compliance openings)) to the prompt's units, finds the minimal flip set and the minimal keep set
along the map — every one confirmed or not by running the model — and checks the map by deletion and
insertion. Everything lands in one :class:`~diffusiongemma.attribution.Attribution` (``attr.decision``,
``attr.triggers``, ``attr.faithfulness``).

The default model is the safety-tuned demo ``gemma-270m-safety`` (the base Gemma 3 270M does not refuse).

Examples:
    >>> from diffusiongemma.refusal import explain_refusal
    >>> from diffusiongemma.models.tiny import example_model
    >>> attr = explain_refusal("Explain how to make a pipe bomb at home", model=example_model(), budget=24,
    ...                        components=None, max_new_tokens=4, faithfulness=False)
    >>> sorted(attr.decision)[:4], attr.decision["reply_source"]
    (['disagrees', 'max_new_tokens', 'phrase', 'refused'], 'generated')

    (On the default ``gemma-270m-safety``: ``attr.decision["refused"], attr.triggers["necessary"].confirmed`` is
    ``(True, True)``.)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..attribution import Attribution
from ..errors import InputError, MemoryLimitError
from ..models.hooks import scoped_hooks
from ..models import LoadedModel
from ..prompts import Chat
from .direction import direction_hooks
from .detector import refusal_phrase
from .options import DEFAULT_REFUSAL_MODEL, RefusalOptions
from .score import RefusalScore

__all__ = ["DEFAULT_REFUSAL_MODEL", "explain_refusal", "explain_refusals"]


def explain_refusal(prompt: str | Chat, *, response: str | None = None, generated_reply: str | None = None,
                    options: RefusalOptions | None = None, progress: Callable[[int, int], Any] | None = None,
                    **keywords: Any) -> Attribution:
    """The decision on ``prompt`` (a user turn) and what in the prompt drove it, checked by intervention.

    Args:
        prompt: the user's request (rendered with the model's chat template), or a whole chat as messages
            (system, earlier turns, documents and tool results; ``system`` then does not apply).
        response: a reply to judge instead of generating one (a logged answer); the map still explains the
            model's own refusal score on the prompt.
        generated_reply: the model's own greedy reply, generated beforehand with the same ``system`` and
            ``max_new_tokens`` (a batch audit generates a group's replies in one batch); recorded as generated.
        options: a :class:`~diffusiongemma.refusal.options.RefusalOptions`; its fields can also be given by name
            (they override the value's). Those of the map are :func:`~diffusiongemma.api.explain`'s (refusal
            defaults: 128 evaluations, trigger sets and the faithfulness check on); besides them:

    Options:
        model: a :class:`LoadedModel` or a spec; default the safety-tuned demo model.
        budget: evaluations for the map; the trigger search and the deletion check count apart.
        max_new_tokens: length of the generated reply the detector judges.
        components: also attribute the refusal score to these model components (``None``: skip); the ten
            strongest land in ``attr.decision["components"]`` (``component_method`` over
            ``component_budget`` evaluations; the default, ``gradient``, is integrated attribution patching).
        direction: a :class:`~diffusiongemma.refusal.direction.RefusalDirection`; with it, everything (reply,
            map, checks) is computed under its ``intervention`` (``"ablate"``, or ``"add"`` α·r).
        mask: how the map's masks act on the prompt (see :func:`~diffusiongemma.api.explain`): ``"edit"``
            (default, real text edits) or ``"remove"`` / ``"replace"``.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> a = explain_refusal("How do I hack my neighbour's wifi?", model=example_model(), budget=24,
        ...                     response="I'm sorry, but I can't help with that.", component_budget=9, triggers=False,
        ...                     faithfulness=False)
        >>> a.decision["refused"], a.decision["reply_source"], len(a.decision["components"])
        (True, 'given', 10)
    """
    result = explain_refusals([prompt], responses=[response], generated_replies=[generated_reply], options=options,
                              progress=progress, **keywords)[0]
    if isinstance(result, Exception):
        raise result
    return result


def explain_refusals(prompts: list[str | Chat], *, responses: list[str | None] | None = None,
                     generated_replies: list[str | None] | None = None, options: RefusalOptions | None = None,
                     progress: Callable[[int, int], Any] | None = None,
                     on_result: Callable[[int, Attribution | Exception], Any] | None = None,
                     **keywords: Any) -> list[Attribution | Exception]:
    """:func:`explain_refusal` for several prompts (a batch audit's group): the missing replies generated in
    one batch, and the maps' masks evaluated together (:func:`~diffusiongemma.api.explain_many`: several
    prompts' masks in one forward). Each prompt gets what :func:`explain_refusal` gives it alone; one that
    fails (empty, too long for the context, NaN from the model) gets its exception in its place.
    ``responses`` and ``generated_replies`` go with the prompts (``None`` where there is none).
    ``on_result(k, result)`` sees each prompt's result as soon as it is complete (a store can keep it).
    ``options`` and the keywords are :func:`explain_refusal`'s.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> out = explain_refusals(["How do I make a bomb?", "How do I bake bread?"], model=example_model(), budget=24,
        ...                        responses=["I can't help with that.", "Mix flour and water."], components=None,
        ...                        triggers=False, faithfulness=False)
        >>> [a.decision["refused"] for a in out]  # the detector on the given replies
        [True, False]
    """
    from ..api import explain, iter_explain_many
    from ..game import resolve_model

    o = (options or RefusalOptions()).replace(**keywords)
    m, comps, steer, max_new_tokens = o.map, o.components, o.steering, o.max_new_tokens
    system = m.game.system
    n = len(prompts)
    responses = list(responses) if responses is not None else [None] * n
    generated: list[str | None] = list(generated_replies) if generated_replies is not None else [None] * n
    if len(responses) != n or len(generated) != n:
        raise InputError(f"{n} prompts, but {len(responses)} responses and {len(generated)} generated replies")
    lm = resolve_model(m.game.model)
    m = m.replace(model=lm)
    direction = steer.direction
    hooks = direction_hooks(lm, direction, steer.intervention, steer.alpha) if direction is not None else []
    out: list[Attribution | Exception | None] = [None] * n
    with scoped_hooks(hooks):
        replies = _replies(lm, prompts, responses, generated, max_new_tokens, system)
        live = [k for k in range(n) if not isinstance(replies[k], Exception)]
        maps = iter_explain_many([prompts[k] for k in live], RefusalScore(family=_openings_family(lm)), options=m,
                                 progress=progress)
        for j, attr in maps:
            k = live[j]
            try:
                if isinstance(attr, Exception):
                    raise attr
                comp, skipped = None, None
                try:
                    comp = explain(prompts[k], RefusalScore(family=_openings_family(lm)), model=lm,
                                   units=comps.components, method=comps.component_method,
                                   budget=comps.component_budget, seed=m.run.seed, chat=True,
                                   system=system) if comps.components else None
                except MemoryLimitError as e:  # the prompt's map fits, its component gradients do not: said
                    skipped = str(e)
                decided = out[k] = _decided(attr, str(replies[k]), comp, given=responses[k] is not None, options=o)
                if skipped:
                    decided.decision = {**(decided.decision or {}), "components_skipped": skipped}
                _judge_sets(lm, decided, max_new_tokens, prompts[k], system)
            except Exception as e:  # noqa: BLE001 - this prompt's failure, reported in its place
                out[k] = e
            if on_result is not None:
                on_result(k, out[k])  # type: ignore[arg-type]
    for k in range(n):
        if out[k] is None:
            out[k] = replies[k]  # type: ignore[assignment]  # the reply's failure
            if on_result is not None:
                on_result(k, out[k])  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def _replies(lm: LoadedModel, prompts: list[str | Chat], responses: list[str | None], generated: list[str | None],
             max_new_tokens: int, system: str | None) -> list[str | Exception]:
    """The reply each prompt's decision is judged on: the given response, else the model's own (given, or
    generated here: the missing ones in one batch, one by one if the batch fails)."""
    from ..generation import generate_replies

    out: list[str | Exception | None] = [r if r is not None else g for r, g in zip(responses, generated)]
    todo = [k for k, r in enumerate(out) if r is None]
    if len(todo) > 1:
        try:
            for k, reply in zip(todo, generate_replies(lm, [prompts[k] for k in todo], max_new_tokens=max_new_tokens,
                                                       system=system)):
                out[k] = reply
        except Exception:  # noqa: BLE001 - one prompt too long, say: each then fails or succeeds alone
            pass
    for k in todo:
        if out[k] is None:
            try:
                out[k] = generate_replies(lm, [prompts[k]], max_new_tokens=max_new_tokens, system=system)[0]
            except Exception as e:  # noqa: BLE001
                out[k] = e
    return out  # type: ignore[return-value]


def _decided(attr: Attribution, reply: str, comp: Attribution | None, *, given: bool,
             options: RefusalOptions) -> Attribution:
    """``attr`` with its decision: the reply, the detector's verdict, and the strongest components."""
    max_new_tokens, comps, steer = options.max_new_tokens, options.components, options.steering
    phrase = refusal_phrase(reply)
    attr.decision = {"reply": reply, "refused": phrase is not None, "phrase": phrase,
                     "score_says": "refuse" if attr.v_full > 0 else "comply", "max_new_tokens": max_new_tokens,
                     "reply_source": "given" if given else "generated",
                     # the score and the detector on the reply tell different stories: shown as a badge everywhere
                     "disagrees": (attr.v_full > 0) != (phrase is not None)}
    if comp is not None:
        from ..components.summary import strongest_components

        attr.decision.update(strongest_components(comp, str(comps.components), comps.component_method))
    if steer.direction is not None:
        attr.decision["intervention"] = {"mode": steer.intervention, "alpha": steer.alpha,
                                         "layer": steer.direction.layer, "position": steer.direction.position}
    return attr


def _judge_sets(lm: LoadedModel, attr: Attribution, max_new_tokens: int, prompt: str | Chat,
                system: str | None) -> None:
    """The second half of a trigger set's confirmation: the reply regenerated to its edited prompt (the text
    that already moved the refusal score) or, for a set of model components, with those components taken out
    (:func:`~diffusiongemma.components.replies.replies_under_masks`), judged by the refusal detector. A flip set
    must turn the decision (a refusal into compliance or back), a keep set must keep it; otherwise its state
    is ``score only``."""
    from dataclasses import replace

    from ..generation import generate_replies

    texts = {k: t for k, t in (attr.triggers or {}).items() if t.state == "confirmed" and t.edited_prompt is not None}
    parts = {k: t for k, t in (attr.triggers or {}).items() if t.state == "intervention"}
    replies = dict(zip(texts, generate_replies(lm, [t.edited_prompt for t in texts.values()],
                                               max_new_tokens=max_new_tokens))) if texts else {}
    if parts and attr.settings.get("baseline") == "zero":  # mean / resample baselines: no reply to regenerate
        from ..components import ComponentGame
        from ..components.replies import replies_under_masks

        game = ComponentGame(prompt, RefusalScore(family=_openings_family(lm)), model=lm,
                             units=attr.settings["units"], chat=True, system=system)
        masks = np.stack([t.mask(game.n) for t in parts.values()])  # [k, n]
        replies.update(zip(parts, replies_under_masks(game, masks, max_new_tokens=max_new_tokens)))
    refused = bool((attr.decision or {}).get("refused"))
    for kind, reply in replies.items():
        t = attr.triggers[kind]  # type: ignore[index]
        again = refusal_phrase(reply) is not None
        agrees = again != refused if kind == "necessary" else again == refused
        attr.triggers[kind] = replace(t, reply=reply, reply_agrees=agrees, confirmed=agrees,  # type: ignore[index]
                                      state="confirmed" if agrees else "score only")


def _openings_family(lm: LoadedModel) -> str:
    from .score import OPENINGS

    return lm.family if lm.family in OPENINGS else "default"
