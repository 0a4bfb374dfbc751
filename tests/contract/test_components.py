"""Component masking on the tiny Gemma 3: each site against a known answer (the same model with the
component's weights zeroed), batching, soft masks, baselines, and no hook left behind."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from diffusiongemma import run
from diffusiongemma.components import ComponentGame
from diffusiongemma.components.sites import Component, enumerate_components, parse_component_spec
from diffusiongemma.errors import InputError
from diffusiongemma.models.hooks import hook_count

PROMPT, TARGET = "The quick brown fox jumps over the lazy", " dog"


@pytest.fixture(scope="module")
def game(tiny_lm):
    return ComponentGame(PROMPT, TARGET, model=tiny_lm, units="heads+mlps+layers")


def _value_with(tiny_lm, edit):
    """The target of the model with some weights zeroed (a copy), every component kept."""
    lm = copy.copy(tiny_lm)
    lm.model = copy.deepcopy(tiny_lm.model)
    with torch.no_grad():
        edit(lm.model.model.layers)
    g = ComponentGame(PROMPT, TARGET, model=lm, units="mlps")
    return g(np.ones((1, g.n)))[0]


def _mask(game, off):
    m = np.ones((1, game.n))
    m[0, [game.components.index(c) for c in off]] = 0
    return m


def test_units_follow_the_spec(game, tiny_lm):
    assert [u.text for u in game.units][:5] == ["L0.H0", "L0.H1", "L0.H2", "L0.H3", "L1.H0"]
    assert game.n == 2 * 4 + 2 + 2 and {u.role for u in game.units} == {"component"}
    assert {u.site.kind for u in game.units} == {"head", "mlp", "layer"}  # the structured site, not the label
    assert parse_component_spec("heads@1-1") == [("heads", (1, 1), "")]
    assert len(enumerate_components(tiny_lm, "heads@1")) == 4
    with pytest.raises(InputError):
        enumerate_components(tiny_lm, "heads@0-9")
    with pytest.raises(InputError):
        enumerate_components(tiny_lm, "mlps+mlps")


def test_masking_a_head_equals_zeroing_its_output_weights(game, tiny_lm):
    def edit(layers):
        layers[1].self_attn.o_proj.weight[:, 2 * 16:3 * 16] = 0  # head 2 of layer 1 (head_dim 16)

    expected = _value_with(tiny_lm, edit)
    assert game(_mask(game, [Component("head", 1, 2)]))[0] == pytest.approx(expected, abs=1e-5)
    assert game(_mask(game, [Component("head", 1, 1)]))[0] != pytest.approx(expected, abs=1e-3)


def test_masking_an_mlp_equals_zeroing_its_down_projection(game, tiny_lm):
    def edit(layers):
        layers[0].mlp.down_proj.weight.zero_()

    assert game(_mask(game, [Component("mlp", 0)]))[0] == pytest.approx(_value_with(tiny_lm, edit), abs=1e-5)


def test_masking_a_layer_equals_zeroing_both_of_its_outputs(game, tiny_lm):
    def edit(layers):
        layers[1].self_attn.o_proj.weight.zero_()
        layers[1].mlp.down_proj.weight.zero_()

    assert game(_mask(game, [Component("layer", 1)]))[0] == pytest.approx(_value_with(tiny_lm, edit), abs=1e-5)


def test_rows_of_a_batch_are_independent(game):
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, (7, game.n))
    together = game(masks)
    alone = np.array([game(m[None])[0] for m in masks])
    assert np.allclose(together, alone, atol=1e-5)


def test_soft_masks_match_hard_ones_and_finite_differences(game):
    rng = np.random.default_rng(1)
    hard = rng.integers(0, 2, (3, game.n)).astype(float)
    values, _ = game.gradient(hard)
    assert np.allclose(values, game(hard), atol=1e-5)
    point = rng.uniform(0.2, 0.8, (1, game.n))
    _, grad = game.gradient(point)
    i, eps = 3, 1e-3
    up, down = point.copy(), point.copy()
    up[0, i] += eps
    down[0, i] -= eps
    fd = (game.gradient(up)[0][0] - game.gradient(down)[0][0]) / (2 * eps)
    assert grad[0, i] == pytest.approx(fd, rel=2e-2, abs=1e-3)


def test_mean_baseline_replaces_the_output_by_its_reference_mean(tiny_lm):
    ref = ["Hello there, how are you today?", "A completely different sentence."]
    zero = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps")
    mean = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps", baseline="mean", reference=ref)
    outs = []
    handle = tiny_lm.model.model.layers[0].mlp.register_forward_hook(lambda m, i, o: outs.append(o[0]))
    try:
        for text in ref:
            tiny_lm.model(input_ids=torch.tensor([tiny_lm.tokenizer(text)["input_ids"]]))
    finally:
        handle.remove()
    expected = torch.cat(outs).mean(0)
    assert torch.allclose(mean.baselines[Component("mlp", 0)], expected, atol=1e-5)
    m = np.array([[0, 1]])
    assert mean(m)[0] != pytest.approx(zero(m)[0], abs=1e-4)
    with pytest.raises(InputError, match="reference"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps", baseline="mean")


def test_exact_shapley_over_components_is_efficient_and_leaves_no_hooks(tiny_lm):
    g = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps+layers")
    res = run(g, "exact")
    assert abs(res.scores.sum() - (res.v_full - res.v_empty)) < 1e-6
    assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())
    with pytest.raises(InputError):
        g(np.ones((2, g.n + 1)))
    assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())


def test_explain_over_components_with_ablation_and_the_html_grid(tiny_lm, tmp_path):
    import diffusiongemma as dg

    attr = dg.explain(PROMPT, target=TARGET, model=tiny_lm, units="heads+mlps", method="ablation")
    g = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="heads+mlps")
    i = [u.text for u in attr.units].index("L1.H2")
    assert attr.scores[i] == pytest.approx(attr.v_full - g(_mask(g, [Component("head", 1, 2)]))[0], abs=1e-4)
    assert attr.evaluations == g.n + 2 and np.all(attr.stderr == 0)
    shap = dg.explain(PROMPT, target=TARGET, model=tiny_lm, units="heads+mlps", budget=64)
    assert abs(shap.efficiency_gap) < 1e-6
    html = shap.to_html(tmp_path / "c.html").read_text()
    assert "layer × head" in html and html.count('class="cell"') == g.n
    assert 'class="unit"' not in html and shap.settings["mask"] == "component"  # the prompt is plain text
    few = dg.explain(PROMPT, target=TARGET, model=tiny_lm, units="heads+mlps", budget=16)  # under 3 per unit
    page = few.to_html(tmp_path / "few.html").read_text()
    assert "The budget of 16 evaluations is under 3 per unit" in page and "The the" not in page


def test_a_direction_unit_masked_is_directional_ablation_at_every_layer(tiny_lm, tmp_path):
    """``direction:FILE`` is one unit: masked, the model computes exactly what it computes under the refusal
    direction's ablation hooks; kept, exactly what it computes without them; soft masks are differentiable."""
    from diffusiongemma.models.hooks import scoped_hooks
    from diffusiongemma.refusal.direction import RefusalDirection, direction_hooks

    g = torch.Generator().manual_seed(5)
    d = RefusalDirection(torch.randn(64, generator=g) * 3, layer=1, position=-1)
    path = d.save(tmp_path / "r.safetensors")
    game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"mlps+direction:{path}")
    assert game.n == 3 and game.units[-1].text == "dir:r" and game.components[-1].kind == "direction"
    clean = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps")
    with scoped_hooks(direction_hooks(tiny_lm, d, "ablate")):
        ablated = clean(np.ones((1, 2)))[0]
    values = game(np.array([[1, 1, 1], [1, 1, 0]]))
    assert values[0] == pytest.approx(clean(np.ones((1, 2)))[0], abs=1e-5)
    assert values[1] == pytest.approx(ablated, abs=1e-5) and abs(values[1] - values[0]) > 1e-4
    _, grads = game.gradient(np.full((1, 3), 0.5))
    assert np.isfinite(grads).all() and grads[0, 2] != 0
    assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())
    with pytest.raises(InputError, match="cannot read the direction file"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"direction:{tmp_path / 'none.safetensors'}")


COUNTER = "The quick brown cat jumps over the lazy"  # one word changed, same token count


def test_resample_baseline_patches_the_counterfactual_activation_position_by_position(tiny_lm):
    """Masking an MLP under ``resample`` equals a plain hook that writes the counterfactual run's MLP output
    (captured independently); the prompt as its own counterfactual changes nothing under any mask."""
    game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps+heads@1+neurons:0/32", baseline="resample",
                         counterfactual=COUNTER)
    mlp0 = tiny_lm.model.model.layers[0].mlp
    ids = tiny_lm.tokenizer(COUNTER)["input_ids"]
    seen = []
    handle = mlp0.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    try:
        tiny_lm.model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    assert torch.allclose(game.baselines[Component("mlp", 0)], seen[0][0], atol=1e-6)  # [T, d]
    assert game.baselines[Component("neuron", 0, 1, size=32)].shape == (len(ids), 32)
    handle = mlp0.register_forward_hook(lambda m, i, o: seen[0].expand_as(o))
    try:
        clean = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps")
        expected = clean(np.ones((1, 2)))[0]
    finally:
        handle.remove()
    assert game(_mask(game, [Component("mlp", 0)]))[0] == pytest.approx(expected, abs=1e-5)
    values, grads = game.gradient(np.vstack([np.ones(game.n), np.full(game.n, 0.5)]))
    assert values[0] == pytest.approx(game(np.ones((1, game.n)))[0], abs=1e-5)
    assert np.isfinite(grads).all() and (grads[1] != 0).sum() > game.n // 2  # AtP through every site kind
    same = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps+heads@1", baseline="resample",
                         counterfactual=PROMPT)
    masks = np.random.default_rng(0).integers(0, 2, (5, same.n))
    assert np.allclose(same(masks), same(np.ones((1, same.n)))[0], atol=1e-5)
    assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())


def test_resample_and_unit_spec_errors_are_clear(tiny_lm):
    with pytest.raises(InputError, match="same number of tokens"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps", baseline="resample", counterfactual="Hello")
    with pytest.raises(InputError, match="needs a counterfactual"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps", baseline="resample")
    with pytest.raises(InputError, match="only used with"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units="mlps", counterfactual=COUNTER)
    with pytest.raises(InputError, match="does not divide"):
        enumerate_components(tiny_lm, "neurons:0/100")
    with pytest.raises(InputError, match="outside"):
        enumerate_components(tiny_lm, "neurons:5")
    with pytest.raises(InputError, match="outside the prompt"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units="heads@tok3-99")
    with pytest.raises(InputError, match="neither a layer range"):
        enumerate_components(tiny_lm, "heads@first")
    assert len(enumerate_components(tiny_lm, "neurons:1")) == 128


def test_a_new_component_kind_is_one_class_in_the_registry(tiny_lm):
    """What docs/ARCHITECTURE.md promises: a kind registered in UNIT_KINDS (here the attention block's output per
    layer, written in this test) works in specs, games, labels and sites with no other change."""
    from diffusiongemma.components.kinds.base import ComponentKind, layer_range, levels, mix
    from diffusiongemma.units import UNIT_KINDS, register_unit_kind

    class Attentions(ComponentKind):
        name, unit, spec, layered = "attns", "attn", "attns", True

        def enumerate(self, lm, part, layers, positions, input_ids):
            return [Component("attn", layer, positions=positions) for layer in layer_range(part, layers, lm.dims.layers)]

        def label(self, c):
            return f"L{c.layer}.ATTN"

        def hooks(self, lm, members, masks, baselines, prompt_len):
            def hook(col, c):
                def fn(module, inputs, output):
                    kept = mix(output[0], levels(masks[:, col:col + 1], [c.positions], prompt_len, output[0].shape[1]), None)
                    return (kept, *output[1:])
                return lm.layers[c.layer].self_attn, "forward", fn
            return [hook(col, c) for col, c in members]

    register_unit_kind("attns", domain="component")(Attentions)
    try:
        g = ComponentGame(PROMPT, TARGET, model=tiny_lm, units="attns@1+mlps")
        assert [u.text for u in g.units] == ["L1.ATTN", "L0.MLP", "L1.MLP"] and g.units[0].site.kind == "attn"

        def edit(layers):
            layers[1].self_attn.o_proj.weight.zero_()

        assert g(_mask(g, [Component("attn", 1)]))[0] == pytest.approx(_value_with(tiny_lm, edit), abs=1e-5)
        assert hook_count(tiny_lm.model) == 0
    finally:
        del UNIT_KINDS["attns"]
    with pytest.raises(InputError, match="unknown component kind"):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units="attns")
