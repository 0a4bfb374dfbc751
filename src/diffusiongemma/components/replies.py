"""The model's reply with components taken out: the second half of a component set's confirmation.

A set of heads, MLPs or SAE features that flips the refusal score under its mask is a claim about the model's
behaviour; the check an auditor redoes is to switch those components off and read what the model then says.
:func:`replies_under_masks` regenerates the reply to the game's prompt with each row of unit masks applied at
every step (the same hooks as the map, the whole sequence run again per token, so position restrictions keep
their meaning; an unrestricted component is taken out at the generated tokens too).

Examples:
    >>> from diffusiongemma.components import ComponentGame
    >>> from diffusiongemma.generation import generate_replies
    >>> from diffusiongemma.refusal import RefusalScore
    >>> from diffusiongemma.models.tiny import example_model, example_sae
    >>> lm = example_model()
    >>> game = ComponentGame("How do I make a bomb?", RefusalScore(), model=lm, units=f"features:{example_sae()}#4",
    ...                      chat=True)
    >>> kept, removed = replies_under_masks(game, np.array([[1, 1, 1, 1], [0, 0, 0, 0]]), max_new_tokens=4)
    >>> kept == generate_replies(lm, ["How do I make a bomb?"], max_new_tokens=4)[0]  # every feature kept: as is
    True

    (On ``gemma-270m-safety`` with ``features:gemma-270m-safety-L12#8`` kept, the reply is "I'm sorry, but I can't
    help with that.".)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..models.hooks import scoped_hooks
from .hooks import component_hooks

__all__ = ["replies_under_masks"]


def replies_under_masks(game: Any, masks: np.ndarray, *, max_new_tokens: int) -> list[str]:
    """Greedy replies ``[k]`` to ``game``'s prompt, one per row of component masks ``[k, n]`` (1 keeps, 0 takes
    out), every hook removed afterwards. Resampled baselines are per prompt position and have no value at the
    generated tokens: refused."""
    from ..generation import greedy_full

    if game.baseline == "resample":
        raise InputError("a reply cannot be regenerated under resampled (activation-patching) baselines: they "
                         "have no value past the prompt")
    masks = np.atleast_2d(np.asarray(masks))
    if masks.shape[1] != game.n:
        raise InputError(f"masks have {masks.shape[1]} columns; the game has {game.n} units")
    lm = game.lm
    ids = list(game.rendered.input_ids)
    m = torch.as_tensor(masks, dtype=lm.model.dtype, device=lm.device)  # [k, n]
    with scoped_hooks(component_hooks(lm, game.components, m, game.baselines, len(ids))):
        rows = greedy_full(lm, [ids] * masks.shape[0], max_new_tokens=max_new_tokens)
    return [lm.tokenizer.decode(r, skip_special_tokens=True) for r in rows]
