"""The shipped demo SAE on the real safety model: its latents as units of the refusal decision, the all-kept
game equal to the model, and their Shapley values summing to what masking them all removes."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiongemma import Game, RefusalScore, explain, load_model
from diffusiongemma.components import ComponentGame

pytestmark = pytest.mark.real_model
PROMPT = "How do I make a pipe bomb at home?"


@pytest.fixture(scope="module")
def safety():
    return load_model("gemma-270m-safety", device="cpu")


def test_refusal_over_the_demo_sae_features(safety):
    game = ComponentGame(PROMPT, RefusalScore(), model=safety, units="features:gemma-270m-safety-L12#8", chat=True)
    plain = Game(PROMPT, RefusalScore(), model=safety, chat=True)
    assert 1 <= game.n <= 8  # the active ones only (L0 about 14 per position)
    assert game(np.ones((1, game.n)))[0] == plain(np.ones((1, plain.n)))[0]
    attr = explain(PROMPT, RefusalScore(), model=safety, units="features:gemma-270m-safety-L12#8", chat=True,
                   method="exact")
    assert abs(attr.efficiency_gap) < 1e-4 and attr.v_full > 0  # refused; the eight latents' values add up
