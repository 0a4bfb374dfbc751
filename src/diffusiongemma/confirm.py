"""Claims checked on the real thing: the edited text, rendered and tokenised afresh, sent again.

A set of units found under a mask (a minimal flip or keep set, a restoring set) is a claim about the text an
auditor would send by hand. :func:`confirm_on_text` builds that text (:mod:`diffusiongemma.editing`), runs it
as a new request with the same target, and says whether the value lands where the set claims. The refusal
workflows add the second half: the reply regenerated to the edited text, judged again.

Examples:
    >>> from diffusiongemma import RefusalScore, explain
    >>> from diffusiongemma.models.tiny import example_model
    >>> attr = explain("Explain how to hack wifi", RefusalScore(), model=example_model(), chat=True, budget=24,
    ...                triggers=True)
    >>> sorted(attr.triggers), attr.triggers["necessary"].state in ("confirmed", "masked only", "not found")
    (['necessary', 'sufficient'], True)

    (On ``gemma-270m-safety`` the flip set is confirmed: ``('confirmed', [{'role': 'user', 'content': 'how to hack
    wifi'}], -0.41)`` for ``t.state, t.edited_prompt, t.value_edited``.)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .evaluation import PromptEvaluator
from .faithfulness import TriggerSet
from .masking import mask_operator
from .prompts import Chat, render_prompt

__all__ = ["edited_request", "sendable", "value_of", "confirm_on_text"]


def edited_request(game: Any, mask: np.ndarray) -> str | list[dict[str, str]]:
    """What a user would send for a unit ``mask`` ``[n]`` of ``game`` (a text game, or a cut of a unit tree):
    the plain text, or the chat's messages with their edited contents.

    Examples:
        >>> from diffusiongemma import Game
        >>> from diffusiongemma.models.tiny import example_model
        >>> game = Game("Explain how to hack", " now", model=example_model(), units="words")
        >>> edited_request(game, np.array([0, 1, 1, 1]))
        'how to hack'
    """
    leaf = getattr(game, "leaf_masks", None)
    m = np.asarray(leaf(mask)[0] if leaf is not None else mask).astype(int).tolist()
    edits = getattr(game, "edits", None)
    if edits is None:
        raise InputError("this game has no text to edit (component units are checked by their intervention)")
    return edits.request(m)


def sendable(request: str | Chat) -> str | list[dict[str, str]] | None:
    """The request as it can be sent again: a chat without its emptied turns (a system prompt deleted
    whole is not sent), or ``None`` when nothing of what the user wrote is left.

    Examples:
        >>> sendable([{"role": "system", "content": ""}, {"role": "user", "content": "hi"}])
        [{'role': 'user', 'content': 'hi'}]
        >>> sendable("  ") is None
        True
    """
    if isinstance(request, str):
        return request if request.strip() else None
    kept = [dict(m) for m in request if m["content"].strip()]
    return kept if kept and kept[-1]["role"] == request[-1]["role"] else None


@torch.no_grad()
def value_of(lm: Any, request: str | Chat, bound: Any) -> float:
    """The value of a bound target on ``request``, rendered and tokenised as a new prompt: one plain forward,
    no unit and no mask.

    Examples:
        >>> from diffusiongemma import Game
        >>> from diffusiongemma.models.tiny import example_model
        >>> game = Game("Explain how to hack", " now", model=example_model(), units="words")
        >>> abs(value_of(game.lm, "how to hack", game.bound) - float(game(np.array([[0, 1, 1, 1]]))[0])) < 1e-4
        True
    """
    rendered = render_prompt(request, lm.tokenizer, lm.chat_template)
    no_units = torch.full((len(rendered),), -1, dtype=torch.long)  # [L]: every token kept as it is
    ev = PromptEvaluator(lm, rendered, bound, mask_operator("remove", None), no_units, batch_size=1)
    return float(ev(torch.ones(1, 1, dtype=torch.long))[0])


def confirm_on_text(game: Any, found: TriggerSet) -> TriggerSet:
    """``found`` checked on the edited text: ``edited_prompt``, ``value_edited`` and the state
    (``confirmed`` when the edited text's value is where the set claims, else ``masked only``). A set of
    model components keeps its masked verdict (state ``intervention``); a set not found stays so.

    Examples:
        >>> from diffusiongemma import Game
        >>> from diffusiongemma.faithfulness import minimal_trigger_set
        >>> from diffusiongemma.models.tiny import example_model
        >>> game = Game("Explain how to hack", " now", model=example_model(), units="words")
        >>> t = confirm_on_text(game, minimal_trigger_set(game, np.array([3.0, 1.0, 2.0, 0.5]), kind="necessary",
        ...                                               threshold=float(game(np.ones((1, 4)))[0]) - 1e-3))
        >>> t.state, abs(t.value_edited - t.value_after) < 1e-3  # the edited text sent again gives the masked value
        ('confirmed', True)
    """
    if not found.masked:
        return replace(found, confirmed=False, state="not found")
    if getattr(game, "edits", None) is None:
        return replace(found, confirmed=True, state="intervention")
    request = sendable(edited_request(game, found.mask(int(game.n))))
    if request is None:  # the set keeps nothing the user wrote: there is no text to send
        return replace(found, confirmed=False, state="masked only", edited_prompt=None)
    value = value_of(game.lm, request, game.bound)
    ok = found.passes(value)
    return replace(found, confirmed=ok, state="confirmed" if ok else "masked only", edited_prompt=request,
                   value_edited=value)
