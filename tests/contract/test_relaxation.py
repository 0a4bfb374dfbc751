"""Soft masks: equal to the hard operators at 0 and 1, gradients that match finite differences, no leaks."""

import contextlib
from unittest.mock import patch

import numpy as np
import pytest
import torch

from diffusiongemma import Game, run
from diffusiongemma.targets import Contrast
from diffusiongemma.errors import InputError
from diffusiongemma.models.hooks import hook_count
from diffusiongemma.packing import tree_layout
from diffusiongemma.relaxation import soft_attention_mask

PROMPT = "Tell me how the old river bank flooded last spring, and why"
BASELINE = " the"  # replace needs a real embedding; the tiny model's pad row is zero


def game_of(tiny_lm, mask, target=" because"):
    return Game(PROMPT, target=target, model=tiny_lm, units="words", mask=mask,
                baseline=BASELINE if mask == "replace" else None)


@pytest.mark.parametrize("mask", ["remove", "replace"])
@pytest.mark.parametrize("target", [" because", " because it rained"])
def test_soft_equals_hard_at_zero_and_one(tiny_lm, mask, target):
    game = game_of(tiny_lm, mask, target)
    masks = (np.random.default_rng(0).random((6, game.n)) < 0.5).astype(int)
    masks[:2, -1] = 0  # the last word removed: both read at the same position
    masks[2] = 0
    soft_values, _ = game.gradient(masks.astype(float))
    np.testing.assert_allclose(soft_values, game(masks), atol=1e-4)


@pytest.mark.parametrize("mask", ["remove", "replace"])
def test_gradient_matches_finite_differences(tiny_lm, mask):
    # central differences with a step large enough for float32 values (error O(h²))
    game = game_of(tiny_lm, mask)
    m = np.random.default_rng(1).uniform(0.2, 0.8, game.n)
    _, grad = game.gradient(m[None])
    h = 1e-2
    for i in range(game.n):
        up, down = m.copy(), m.copy()
        up[i] += h
        down[i] -= h
        fd = (game.gradient(up[None])[0][0] - game.gradient(down[None])[0][0]) / (2 * h)
        assert grad[0, i] == pytest.approx(fd, rel=1e-2, abs=2e-3)


def test_gradient_counts_three_evaluations_and_leaves_no_hooks(tiny_lm):
    game = game_of(tiny_lm, "replace")
    before = hook_count(tiny_lm.model)
    ids = torch.tensor([game.rendered.input_ids])
    with torch.no_grad():
        clean = tiny_lm.model(input_ids=ids).logits
    game.gradient(np.full((4, game.n), 0.5))
    assert game.evaluations == 12
    assert hook_count(tiny_lm.model) == before
    with torch.no_grad():
        torch.testing.assert_close(tiny_lm.model(input_ids=ids).logits, clean)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        game.gradient(np.full((1, game.n), 1.5))


def test_sliding_window_layers_get_their_own_window():
    class Config:
        layer_types = ["sliding_attention", "full_attention"]
        sliding_window = 2

    masks = soft_attention_mask(torch.ones(1, 4), Config(), torch.float32)
    assert set(masks) == {"sliding_attention", "full_attention"}
    neg = torch.finfo(torch.float32).min
    assert masks["full_attention"][0, 0, 3, 0] == 0 and masks["sliding_attention"][0, 0, 3, 0] == neg
    assert masks["sliding_attention"][0, 0, 3, 2] == 0 and masks["full_attention"][0, 0, 0, 1] == neg


@pytest.mark.parametrize("mask", ["remove", "replace"])
def test_integrated_gradients_complete_as_the_levels_grow(tiny_lm, mask):
    """The soft path runs continuously from the empty to the full prompt (the soft read included), so the
    scores sum to v(all kept) − v(all removed) up to a quadrature error that vanishes with the budget."""
    game = game_of(tiny_lm, mask)
    total = float(np.diff(game(np.stack([np.zeros(game.n), np.ones(game.n)])))[0])
    gaps = [abs(run(game, "gradient", budget=b, seed=0).efficiency_gap) for b in (60, 1500)]
    assert gaps[1] < 0.01 * abs(total) and gaps[1] < gaps[0]


def test_gradient_refuses_a_zero_baseline_embedding(tiny_lm):
    """Interpolating towards a zero embedding is degenerate under RMSNorm (any tiny multiple of a token is
    normalised back to full size), so the relaxation would jump at 0: a clear error instead."""
    game = Game(PROMPT, target=" because", model=tiny_lm, units="words", mask="replace")  # pad: zero row
    with pytest.raises(InputError, match="baseline"):
        game.gradient(np.full((1, game.n), 0.5))


@pytest.mark.parametrize("target", [Contrast(" because it rained", " since"), Contrast(" because it", " because he")])
def test_several_continuations_packed_soft_path(tiny_lm, target):
    """Several continuations go through one packed forward with soft key biases: it equals the hard values
    at 0/1, and at fractional levels the one-forward-per-continuation relaxation it replaced (value and
    gradient), with the decoder layers checkpointed."""
    game = Game(PROMPT, target, model=tiny_lm, units="words", mask="remove")
    evaluator = game.evaluator
    assert evaluator._packs
    masks = (np.random.default_rng(0).random((5, game.n)) < 0.5).astype(float)
    masks[2] = 0
    np.testing.assert_allclose(game.gradient(masks)[0], game(masks.astype(int)), atol=1e-4)
    soft = np.random.default_rng(1).uniform(0.1, 0.9, (3, game.n))
    packed_values, packed_grads = game.gradient(soft)
    evaluator._layout = tree_layout([])  # the packed path off: one forward per continuation, no packing
    type(evaluator)._packs, saved = property(lambda self: False), type(evaluator)._packs
    try:
        values, grads = game.gradient(soft)
    finally:
        type(evaluator)._packs = saved
    np.testing.assert_allclose(packed_values, values, atol=1e-4)
    np.testing.assert_allclose(packed_grads, grads, rtol=3e-3, atol=1e-3)  # float32: summation order differs


def test_checkpointed_layers_give_the_same_gradient_and_are_restored(tiny_lm):
    game = game_of(tiny_lm, "remove")
    soft = np.random.default_rng(2).uniform(0.1, 0.9, (2, game.n))
    layers = game.lm.layers
    with_ckpt = game.gradient(soft)
    with patch("diffusiongemma.evaluation.checkpointed", lambda layers: contextlib.nullcontext()):
        without = game.gradient(soft)
    np.testing.assert_allclose(with_ckpt[1], without[1], atol=1e-5)
    assert not any("forward" in vars(layer) for layer in layers)
