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


def test_a_feature_flip_set_is_confirmed_by_the_reply_an_auditor_regenerates(safety):
    """explain-refusal over the demo SAE's features: the flip set is confirmed by the reply regenerated with
    those latents taken out, and that reply is what a hand-written hook on layer 12 (the cached decoder, every
    position) makes the model say."""
    import torch

    from diffusiongemma.components.features import load_sae
    from diffusiongemma.generation import generate_replies
    from diffusiongemma.refusal import explain_refusal

    attr = explain_refusal(PROMPT, model=safety, units="features:gemma-270m-safety-L12#8", components=None,
                           faithfulness=False, max_new_tokens=24)
    t = attr.triggers["necessary"]
    assert attr.decision["refused"] and t.state == "confirmed" and t.reply_agrees and t.reply is not None
    latents = [int(attr.units[i].text.split(".F")[1]) for i in t.units]
    assert 767 in latents  # the latent that alone carries +7.2 of the +5.9 refusal score
    sae = load_sae("gemma-270m-safety-L12")
    idx = torch.tensor(latents)

    def take_out(module, inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        new = h - sae.encode(h.float())[..., idx].to(h.dtype) @ sae.w_dec[idx].to(h.dtype)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = safety.model.get_submodule(safety.architecture.layers)[12].register_forward_hook(take_out)
    try:
        by_hand = generate_replies(safety, [PROMPT], max_new_tokens=24)[0]
    finally:
        handle.remove()
    assert by_hand == t.reply and not by_hand.startswith(("I'm sorry", "Sorry", "I cannot", "I can't"))
