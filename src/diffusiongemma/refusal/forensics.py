"""Why did the model refuse (or comply)? The decision, its refusal score, the map, the checked trigger sets.

``explain_refusal(prompt)`` generates the model's reply to the prompt as a chat turn and judges it with
the refusal detector (the decision), then attributes the refusal score (log p(refusal openings) −
log p(compliance openings)) to the prompt's units, finds the minimal flip set and the minimal keep set
along the map — every one confirmed or not by running the model — and checks the map by deletion and
insertion. Everything lands in one :class:`~diffusiongemma.attribution.Attribution` (``attr.decision``,
``attr.triggers``, ``attr.faithfulness``).

The default model is the safety-tuned demo ``gemma-270m-safety`` (the base Gemma 3 270M does not refuse).

Example:
    >>> from diffusiongemma.refusal import explain_refusal
    >>> attr = explain_refusal("Explain how to make a pipe bomb at home")  # doctest: +SKIP
    >>> attr.decision["refused"], attr.triggers["necessary"].confirmed  # doctest: +SKIP
    (True, True)
"""

from __future__ import annotations

from typing import Any, Callable

from ..attribution import Attribution
from ..masking import scoped_hooks
from ..models import LoadedModel
from .direction import direction_hooks
from .detector import refusal_phrase
from .score import RefusalScore

__all__ = ["DEFAULT_REFUSAL_MODEL", "explain_refusal"]

DEFAULT_REFUSAL_MODEL = "gemma-270m-safety"


def explain_refusal(
    prompt: str,
    *,
    response: str | None = None,
    model: LoadedModel | str | None = DEFAULT_REFUSAL_MODEL,
    units: str = "words",
    method: str = "shapley",
    budget: int = 128,
    seed: int = 0,
    system: str | None = None,
    max_new_tokens: int = 48,
    triggers: bool = True,
    faithfulness: bool = True,
    components: str | None = "heads+mlps",
    component_method: str = "gradient",
    component_budget: int = 48,
    direction: Any = None,
    intervention: str = "ablate",
    alpha: float = 1.0,
    progress: Callable[[int, int], Any] | None = None,
    generated_reply: str | None = None,
) -> Attribution:
    """The decision on ``prompt`` (a user turn) and what in the prompt drove it, checked by intervention.

    Args:
        prompt: the user's request (rendered with the model's chat template).
        response: a reply to judge instead of generating one (a logged answer); the map still explains the
            model's own refusal score on the prompt.
        model: a :class:`LoadedModel` or a spec; default the safety-tuned demo model.
        budget: evaluations for the map; the trigger search and the deletion check count apart.
        max_new_tokens: length of the generated reply the detector judges.
        components: also attribute the refusal score to these model components (``None``: skip); the ten
            strongest land in ``attr.decision["components"]`` (``component_method`` over
            ``component_budget`` evaluations; the default, ``gradient``, is integrated attribution patching).
        direction: a :class:`~diffusiongemma.refusal.direction.RefusalDirection`; with it, everything (reply,
            map, checks) is computed under its ``intervention`` (``"ablate"``, or ``"add"`` α·r).
        generated_reply: the model's own greedy reply, generated beforehand with the same ``system`` and
            ``max_new_tokens`` (a batch audit generates a group's replies in one batch); recorded as generated.

    Example:
        >>> a = explain_refusal("How do I hack my neighbour's wifi?", budget=64)  # doctest: +SKIP
        >>> a.decision["reply"][:20]  # doctest: +SKIP
        "I'm sorry, but I ca"
    """
    from ..api import explain
    from ..game import resolve_model
    from ..generation import generate_replies

    lm = resolve_model(model)
    hooks = direction_hooks(lm, direction, intervention, alpha) if direction is not None else []
    with scoped_hooks(hooks):
        reply = response if response is not None else generated_reply if generated_reply is not None else \
            generate_replies(lm, [prompt], max_new_tokens=max_new_tokens, system=system)[0]
        attr = explain(prompt, RefusalScore(family=_openings_family(lm)), model=lm, units=units, method=method,
                       budget=budget, seed=seed, chat=True, system=system, triggers=triggers,
                       faithfulness=faithfulness, progress=progress)
        comp = explain(prompt, RefusalScore(family=_openings_family(lm)), model=lm, units=components,
                       method=component_method, budget=component_budget, seed=seed, chat=True,
                       system=system) if components else None
    phrase = refusal_phrase(reply)
    attr.decision = {"reply": reply, "refused": phrase is not None, "phrase": phrase,
                     "score_says": "refuse" if attr.v_full > 0 else "comply", "max_new_tokens": max_new_tokens,
                     "reply_source": "given" if response is not None else "generated"}
    if comp is not None:
        attr.decision["components"] = [{"unit": u.text, "score": sc, "stderr": se} for u, sc, se in comp.top(10)]
        attr.decision["components_settings"] = {"units": components, "method": component_method,
                                                "evaluations": comp.evaluations,
                                                "efficiency_gap": comp.efficiency_gap}
    if direction is not None:
        attr.decision["intervention"] = {"mode": intervention, "alpha": alpha, "layer": direction.layer,
                                         "position": direction.position}
    return attr


def _openings_family(lm: LoadedModel) -> str:
    from .score import OPENINGS

    return lm.family if lm.family in OPENINGS else "default"
