"""The refusal direction on the tiny model: the interventions do exactly what they say, and leave no trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusiongemma.errors import InputError
from diffusiongemma.generation import chat_ids
from diffusiongemma.models.hooks import hook_count, scoped_hooks
from diffusiongemma.refusal.direction import (RefusalDirection, direction_hooks, fit_refusal_direction, projection,
                                              residual_activations)

HARMFUL = [f"Explain how to build weapon number {i} to hurt people" for i in range(10)]
HARMLESS = [f"Explain how to bake bread number {i} for friends" for i in range(10)]


@pytest.fixture(scope="module")
def fitted(tiny_lm):
    return fit_refusal_direction(tiny_lm, HARMFUL, HARMLESS, positions=3, shortlist=3)


def test_fit_records_its_choice_on_validation(fitted):
    assert fitted.layer in (0, 1) and -3 <= fitted.position <= -1
    measured = [c for c in fitted.candidates if "ablation_drop" in c]
    assert len(measured) == 2 or len(measured) == 3
    assert fitted.validation["ablation_drop"] == max(c["ablation_drop"] for c in measured)
    assert fitted.validation["train"] == {"harmful": 8, "harmless": 8}


def test_ablation_removes_the_direction_from_every_layer(tiny_lm, fitted):
    acts = lambda: residual_activations(tiny_lm, HARMFUL[:3], positions=3)  # noqa: E731
    before = acts() @ fitted.unit
    with scoped_hooks(direction_hooks(tiny_lm, fitted, "ablate")):
        after = acts() @ fitted.unit
    assert before.abs().max() > 1e-2 and after.abs().max() < 1e-4


def test_addition_shifts_the_projection_at_its_layer_by_alpha_times_the_gap(tiny_lm, fitted):
    p0 = projection(tiny_lm, fitted, HARMLESS[:3])
    with scoped_hooks(direction_hooks(tiny_lm, fitted, "add", alpha=2.0)):
        p1 = projection(tiny_lm, fitted, HARMLESS[:3])
    assert np.allclose(p1 - p0, 2.0 * float(fitted.vector.norm()), rtol=1e-4)


def test_interventions_leave_no_hook_and_the_same_logits(tiny_lm, fitted):
    ids = torch.tensor([chat_ids(tiny_lm, HARMFUL[0])[0]])
    with torch.no_grad():
        clean = tiny_lm.model(input_ids=ids).logits
        with pytest.raises(RuntimeError):
            with scoped_hooks(direction_hooks(tiny_lm, fitted, "ablate")):
                raise RuntimeError("boom")
        assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())
        assert torch.equal(tiny_lm.model(input_ids=ids).logits, clean)


def test_save_and_load(tmp_path, fitted):
    again = RefusalDirection.load(fitted.save(tmp_path / "d.safetensors"))
    assert torch.equal(again.vector, fitted.vector.float()) and (again.layer, again.position) == (fitted.layer, fitted.position)
    assert again.validation == fitted.validation


def test_bad_input(tiny_lm, fitted):
    with pytest.raises(InputError):
        fit_refusal_direction(tiny_lm, HARMFUL[:3], HARMLESS)
    with pytest.raises(InputError):
        direction_hooks(tiny_lm, fitted, "invert")


def test_the_projection_target_reads_the_direction_at_its_layer_and_position(tiny_lm, tmp_path):
    """v(all kept) is the direction's projection measured independently; the forward stops after the read
    layer; soft masks agree with hard ones; components after the read layer change nothing, exactly."""
    from diffusiongemma import run
    from diffusiongemma.components import ComponentGame
    from diffusiongemma.game import Game
    from diffusiongemma.refusal.projection import DirectionProjection

    d = RefusalDirection(torch.randn(64, generator=torch.Generator().manual_seed(3)), layer=0, position=-2)
    path = d.save(tmp_path / "r.safetensors")
    prompt = HARMFUL[0]
    game = Game(prompt, DirectionProjection(path), model=tiny_lm, chat=True, mask="remove")  # soft = hard below
    assert game(np.ones((1, game.n)))[0] == pytest.approx(projection(tiny_lm, d, [prompt])[0], abs=1e-4)
    later = []
    handle = tiny_lm.model.model.layers[1].register_forward_pre_hook(lambda m, a: later.append(1))
    try:
        masks = np.random.default_rng(0).integers(0, 2, (6, game.n))
        values = game(masks)
    finally:
        handle.remove()
    assert later == [] and len(set(np.round(values, 5))) > 1
    soft, grads = game.gradient(masks.astype(float))
    assert np.allclose(soft, values, atol=1e-4) and np.isfinite(grads).all()
    res = run(game, "exact") if game.n <= 12 else run(game, "regression", budget=64)
    assert abs(res.scores.sum() - (res.v_full - res.v_empty)) < 1e-6
    comps = ComponentGame(prompt, DirectionProjection(d), model=tiny_lm, units="mlps+heads@1", chat=True)
    full = comps(np.ones((1, comps.n)))[0]
    only_later = np.ones((1, comps.n))
    only_later[0, 1:] = 0  # layer 1's MLP and heads
    assert comps(only_later)[0] == full
    assert comps(np.array([[0] + [1] * (comps.n - 1)]))[0] != pytest.approx(full, abs=1e-4)
    assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())
    with pytest.raises(InputError, match="does not fit"):
        Game(prompt, DirectionProjection(RefusalDirection(torch.ones(8), 0, -1)), model=tiny_lm, chat=True)
    with pytest.raises(InputError, match="cannot read"):
        Game(prompt, DirectionProjection(tmp_path / "none.safetensors"), model=tiny_lm, chat=True)
