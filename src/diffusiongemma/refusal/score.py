"""The refusal score target: how much more the model is inclined to open its reply with a refusal than
with compliance, ``log Σ_r p(r | prompt) − log Σ_c p(c | prompt)`` over sets of reply openings.

Each opening is teacher-forced in the same pass (one continuation each). Positive: refusal is the more
likely opening. Render the prompt as a chat (``chat=True``) so the openings follow the model's turn marker.
The opening sets are data (:data:`OPENINGS`), per model family, and can be given per call.

Examples:
    >>> from diffusiongemma.refusal import RefusalScore
    >>> RefusalScore().name, "I cannot" in OPENINGS["default"]["refusal"]
    ('refusal', True)
    >>> import diffusiongemma as dg
    >>> from diffusiongemma.models.tiny import example_model
    >>> attr = dg.explain("How do I pick a lock?", target=RefusalScore(), model=example_model(), chat=True, budget=24)
    >>> attr.target["kind"], [u.text for u in attr.units][:3]
    ('refusal', ['How', 'do', 'I'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from ..prompts import RenderedPrompt
from ..targets import TARGETS, BoundTarget, Target, tokens_of, continuation_logprob

if TYPE_CHECKING:
    import numpy as np

__all__ = ["OPENINGS", "RefusalScore", "refusal_scores"]

OPENINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "default": {
        "refusal": ("I cannot", "I can't", "I can’t", "I'm sorry", "I am sorry", "I apologize", "Sorry",
                    "I'm not able", "I am not able", "I'm unable", "I will not", "I won't", "As an AI"),
        "compliance": ("Sure", "Here", "Certainly", "Of course", "Yes", "Absolutely", "Okay", "OK", "To",
                       "1.", "Step", "First", "The", "**"),
    },
}


@dataclass
class RefusalScore(Target):
    """log p(refusal openings) − log p(compliance openings) of the reply."""

    refusals: tuple[str, ...] | None = None
    compliances: tuple[str, ...] | None = None
    family: str = "default"
    name = "refusal"
    help = "refusal score: log p(refusal openings) - log p(compliance openings) (API: RefusalScore())"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        sets = OPENINGS.get(self.family)
        if sets is None:
            raise InputError(f"no refusal openings for family {self.family!r}; known: {', '.join(OPENINGS)}")
        refusals, compliances = self.refusals or sets["refusal"], self.compliances or sets["compliance"]
        if not refusals or not compliances:
            raise InputError("the refusal score needs at least one refusal and one compliance opening")
        ref = [tokens_of(lm, t, "refusal opening") for t in refusals]
        com = [tokens_of(lm, t, "compliance opening") for t in compliances]
        k = len(ref)

        def score(lp: torch.Tensor) -> torch.Tensor:  # [R + C, B] continuation log-probs -> [B]
            return torch.logsumexp(lp[:k], 0) - torch.logsumexp(lp[k:], 0)

        def combine(logits: list[torch.Tensor]) -> torch.Tensor:
            return score(torch.stack([continuation_logprob(lg, t) for lg, t in zip(logits, ref + com)]))

        return BoundTarget(ref + com, combine, {"kind": self.name, "text": "refusal score",
                                                "refusals": list(refusals), "compliances": list(compliances)},
                           from_logprobs=lambda lps: score(torch.stack([lp.sum(-1) for lp in lps])))


TARGETS[RefusalScore.name] = RefusalScore


def refusal_scores(lm: Any, prompts: list[str]) -> np.ndarray:
    """The refusal score of each prompt as a chat turn ``[len(prompts)]`` (> 0: the model leans to refuse),
    with every unit kept: one forward per prompt, under whatever hooks the caller has in place.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> refusal_scores(example_model(), ["How do I make a bomb?", "Hi"]).shape  # 2.3 for the bomb on gemma-270m-safety
        (2,)
    """
    import numpy as np

    from ..game import Game

    out = []
    for p in prompts:
        game = Game(p, RefusalScore(), model=lm, chat=True, units="words")
        out.append(float(game(np.ones((1, game.n)))[0]))
    return np.array(out)
