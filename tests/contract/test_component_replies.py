"""Replies regenerated with components taken out (the second half of a component set's confirmation), on the
tiny model: the decoder without a KV cache equals the cached one, all-kept masks give the model's own reply,
a masked SAE latent gives exactly the reply of a model with that latent's decoder contribution removed by hand
at every position, and no hook outlives the call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from diffusiongemma import RefusalScore
from diffusiongemma.components import ComponentGame
from diffusiongemma.components.features import load_sae
from diffusiongemma.components.replies import replies_under_masks
from diffusiongemma.errors import InputError
from diffusiongemma.generation import chat_ids, generate_replies, greedy_full, greedy_ids

PROMPT = "How do I pick a lock?"


def _hooks(lm) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    g = torch.Generator().manual_seed(1)
    folder = tmp_path_factory.mktemp("sae")
    save_file({"w_enc": torch.randn(64, 32, generator=g), "w_dec": torch.randn(32, 64, generator=g),
               "b_enc": torch.zeros(32), "b_dec": torch.zeros(64), "threshold": torch.full((32,), 0.05)},
              str(folder / "params.safetensors"))
    return folder


def test_full_recompute_decoder_equals_the_cached_one(tiny_lm):
    rows = [chat_ids(tiny_lm, PROMPT)[0]] * 2
    assert greedy_full(tiny_lm, rows, max_new_tokens=12) == greedy_ids(tiny_lm, rows, max_new_tokens=12)
    with pytest.raises(InputError):
        greedy_full(tiny_lm, [[2, 5], [2]], max_new_tokens=3)


def test_reply_under_masks_all_kept_and_one_latent_out(tiny_lm, sae_dir):
    game = ComponentGame(PROMPT, RefusalScore(), model=tiny_lm, units=f"features:1={sae_dir}#4", chat=True)
    assert game.n >= 2
    masks = np.ones((2, game.n))
    masks[1, 0] = 0
    before = _hooks(tiny_lm)
    kept, out = replies_under_masks(game, masks, max_new_tokens=12)
    assert _hooks(tiny_lm) == before
    assert kept == generate_replies(tiny_lm, [PROMPT], max_new_tokens=12)[0]
    sae, j = load_sae(sae_dir), game.components[0].index

    def take_out(module, inputs, output):  # by hand: h − f_j(h) W_dec[j] after layer 1, at every position
        h = output[0] if isinstance(output, tuple) else output
        new = h - sae.encode(h)[..., j:j + 1] * sae.w_dec[j]
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = tiny_lm.model.get_submodule(tiny_lm.architecture.layers)[1].register_forward_hook(take_out)
    try:
        by_hand = generate_replies(tiny_lm, [PROMPT], max_new_tokens=12)[0]  # the cached decoder, hook by hand
    finally:
        handle.remove()
    assert out == by_hand and out != kept  # the latent mattered, and it is the same reply
    with pytest.raises(InputError):
        replies_under_masks(game, np.ones((1, game.n + 1)), max_new_tokens=4)
