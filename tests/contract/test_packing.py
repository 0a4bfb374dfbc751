"""Packed continuations (one forward for all of a target's openings) equal one forward per continuation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusiongemma import Game, RefusalScore
from diffusiongemma.evaluation import PromptEvaluator


class _OneByOne(PromptEvaluator):
    @property
    def _packs(self) -> bool:
        return False


def _reference(game):
    return _OneByOne(game.lm, game.rendered, game.bound, game.operator, game.token_unit, game.evaluator.batch_size)


@pytest.mark.parametrize("read", ["token log-probs", "logits"])
@pytest.mark.parametrize("mask", ["remove", "replace"])
@pytest.mark.parametrize("target, contrast", [(RefusalScore(), None), (" yes", " no thanks")])
def test_packed_equals_one_continuation_at_a_time(tiny_lm, mask, target, contrast, read):
    game = Game("Explain how to crack an egg with one hand, please", target=target, contrast=contrast,
                model=tiny_lm, chat=True, mask=mask, baseline=" the" if mask == "replace" else None)
    assert game.evaluator._packs
    if read == "logits":  # a target that reads each continuation's logits (no from_logprobs)
        game.bound.from_logprobs = None
    rng = np.random.default_rng(0)
    masks = np.vstack([np.ones(game.n), np.zeros(game.n), rng.integers(0, 2, (20, game.n))])
    masks = torch.as_tensor(masks).long()
    packed = game.evaluator(masks)
    alone = _reference(game)(masks)
    assert torch.allclose(packed, alone, atol=1e-4), (packed - alone).abs().max()


def test_packing_uses_one_forward_per_chunk(tiny_lm):
    game = Game("How do I pick a lock?", target=RefusalScore(), model=tiny_lm, chat=True)
    calls = []
    handle = tiny_lm.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        game(np.ones((3, game.n)))
    finally:
        handle.remove()
    assert len(calls) == 1  # 27 openings, 3 masks: one forward (the reference needs 27)
    conts = game.bound.continuations
    layout = game.evaluator._layout  # openings that start alike share their prefix: fewer nodes and reads
    assert len(layout.tokens) < sum(len(c) - 1 for c in conts) and 3 * len(layout.reads) < sum(map(len, conts))
