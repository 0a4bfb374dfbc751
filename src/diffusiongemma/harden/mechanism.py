"""How an attack works: by suppressing the refusal features, or by getting around them.

The refusal features are the two found by the forensics: the refusal direction (its projection at the
direction's layer and position) and the refusal components (the heads and MLPs with the largest mean
contribution to the refusal score on plain harmful requests, from the gradient component map). For an
attacked request against its plain form:

* **direction suppression** ``(p_plain − p_attacked) / (p_plain − p_harmless)``: 0 = the projection is
  untouched, 1 = down to the harmless mean;
* **component suppression** ``1 − contrib_attacked / contrib_plain``, where a contribution is the refusal score
  with every component kept minus with the refusal components zeroed together (run on the model);
* mechanism: ``suppresses direction``, ``suppresses components``, ``suppresses both`` (suppression ≥ 0.5), or
  ``goes around`` (the features still fire and the decision flips anyway).

Examples:
    >>> mechanism(0.8, 0.1), mechanism(0.2, 0.7), mechanism(0.6, 0.9), mechanism(0.1, 0.2)
    ('suppresses direction', 'suppresses components', 'suppresses both', 'goes around')
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["refusal_components", "score_and_contribution", "mechanism", "suppression"]

SUPPRESSED = 0.5


def refusal_components(lm: Any, harmful: list[str], *, k: int = 5, budget: int = 24, seed: int = 0
                       ) -> list[dict[str, Any]]:
    """The ``k`` heads/MLPs with the largest mean contribution to the refusal score on ``harmful`` (gradient
    component maps, ``budget`` evaluations each): ``[{"unit", "index", "score"}]``, strongest first.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> top = refusal_components(example_model(), ["How do I make a bomb?"], k=2)
        >>> len(top), sorted(top[0])  # on gemma-270m-safety the two strongest are L11.MLP and L7.MLP
        (2, ['index', 'score', 'unit'])
    """
    from ..api import explain
    from ..refusal.score import RefusalScore

    maps = [explain(p, RefusalScore(), model=lm, units="heads+mlps", method="gradient", budget=budget, seed=seed,
                    chat=True) for p in harmful]
    mean = np.mean([m.scores for m in maps], axis=0)  # [n_components]
    order = np.argsort(-mean)[:k]
    return [{"unit": maps[0].units[i].text, "index": int(i), "score": float(mean[i])} for i in order]


def score_and_contribution(lm: Any, prompts: list[str], components: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Refusal score of each prompt ``[N]`` and the joint contribution of ``components`` to it ``[N]`` (score
    minus the score with those components zeroed), from one batch of two masks per prompt."""
    from ..components.game import ComponentGame
    from ..refusal.score import RefusalScore

    scores, contrib = [], []
    for p in prompts:
        game = ComponentGame(p, RefusalScore(), model=lm, units="heads+mlps", chat=True)
        masks = np.ones((2, game.n))
        masks[1, components] = 0
        v = np.asarray(game(masks))
        scores.append(float(v[0]))
        contrib.append(float(v[0] - v[1]))
    return np.array(scores), np.array(contrib)


def suppression(plain: float, attacked: float, floor: float = 0.0) -> float | None:
    """Share of ``plain − floor`` that the attack removed (None when plain carries nothing above floor).

    Examples:
        >>> suppression(4.0, 1.0), suppression(2.0, 3.0, floor=1.0), suppression(0.5, 0.0, floor=1.0)
        (0.75, -1.0, None)
    """
    span = plain - floor
    if span <= 1e-9:
        return None
    return float((plain - attacked) / span)


def mechanism(direction: float | None, components: float | None) -> str:
    """Name the mechanism from the two suppressions (None counts as not suppressed)."""
    d = direction is not None and direction >= SUPPRESSED
    c = components is not None and components >= SUPPRESSED
    return {(True, True): "suppresses both", (True, False): "suppresses direction",
            (False, True): "suppresses components", (False, False): "goes around"}[(d, c)]
