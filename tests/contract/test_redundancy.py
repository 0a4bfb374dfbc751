"""Redundancy that one-at-a-time patching misses, found by the interaction scores: a toy Llama built to have
it. Both MLPs write the same large vector to the residual stream (a bias, whatever the input); the final
RMSNorm saturates, so either MLP alone gives almost the model's output, and only removing both changes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffusiongemma as dg
from diffusiongemma.components import ComponentGame
from diffusiongemma.models.architectures import architecture_for
from diffusiongemma.models.loading import LoadedModel

PROMPT, TARGET = "The quick brown fox jumps over the lazy", " dog"


@pytest.fixture(scope="module")
def toy(tiny_dir):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=262144, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, mlp_bias=True, initializer_range=0.3)
    model = LlamaForCausalLM(config).eval()
    target = AutoTokenizer.from_pretrained(str(tiny_dir))(TARGET, add_special_tokens=False)["input_ids"][0]
    u = model.get_output_embeddings().weight[target].detach()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.zero_()
            layer.mlp.down_proj.bias.copy_(300 * u / u.norm())  # the same push from each MLP
    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    return LoadedModel(model, tok, "toy-redundant-llama", architecture_for("llama"), None)


@pytest.mark.slow
def test_interactions_find_the_redundant_pair_that_single_patching_misses(toy):
    game = ComponentGame(PROMPT, TARGET, model=toy, units="heads+mlps")
    mlps = [i for i, u in enumerate(game.units) if u.site.kind == "mlp"]
    full = game(np.ones((1, game.n)))[0]
    drops = {}
    for name, off in (("first", mlps[:1]), ("second", mlps[1:]), ("both", mlps)):
        m = np.ones((1, game.n))
        m[0, off] = 0
        drops[name] = full - game(m)[0]
    assert abs(drops["both"]) > 1.0  # removing both MLPs changes the target by over a nat ...
    assert max(abs(drops["first"]), abs(drops["second"])) < 0.05 * abs(drops["both"])  # ... each alone barely

    patching = dg.explain(PROMPT, target=TARGET, model=toy, units="heads+mlps", method="ablation")
    exact = dg.explain(PROMPT, target=TARGET, model=toy, units="heads+mlps", method="exact")
    shap = dg.explain(PROMPT, target=TARGET, model=toy, units="heads+mlps", budget=600, interactions=4)
    assert np.abs(patching.scores[mlps]).max() < 0.05 * abs(drops["both"])  # patching sees (almost) nothing
    assert set(np.argsort(-np.abs(exact.scores))[:2].tolist()) == set(mlps)  # Shapley puts them on top ...
    assert np.all(exact.scores[mlps] * np.sign(drops["both"]) > 0.3 * abs(drops["both"]))  # ... sharing the joint effect
    i, j, value = min(shap.interactions, key=lambda p: p[2])  # the most negative pair: either one suffices
    assert {i, j} == set(mlps) and value < -0.5 * abs(drops["both"])


@pytest.mark.slow
def test_backup_search_confirms_the_redundant_pair_by_running_the_model(toy, tmp_path):
    """explain(backups=...) removes each high-gap unit with every other one: the MLP pair is reported as
    redundant with the model's own drops (alone ≈ 0, together the whole effect), and nothing else is."""
    attr = dg.explain(PROMPT, target=TARGET, model=toy, units="heads+mlps", budget=600, backups=2)
    game = ComponentGame(PROMPT, TARGET, model=toy, units="heads+mlps")
    mlps = tuple(i for i, u in enumerate(game.units) if u.site.kind == "mlp")
    b = attr.backups
    assert b.evaluations == game.n + 2 + 2 * (game.n - 1) - 1  # singles, then each candidate's pairs once
    assert set(b.candidates) == set(mlps)  # the largest Shapley-minus-drop gaps
    redundant = [p for p in b.pairs if p.redundant]
    assert [p.units for p in redundant] == [mlps]
    m = np.ones((1, game.n))
    m[0, list(mlps)] = 0
    both = game(np.ones((1, game.n)))[0] - game(m)[0]
    assert redundant[0].drop_both == pytest.approx(both, abs=1e-4)  # the reported figure is a model run
    assert redundant[0].redundancy == pytest.approx(abs(both) - abs(redundant[0].drop_i + redundant[0].drop_j),
                                                    rel=0.05)
    back = dg.Attribution.from_json(attr.to_json(tmp_path / "a.json"))
    assert back.backups.pairs[0] == b.pairs[0]
    html = attr.to_html(tmp_path / "a.html").read_text()
    assert "Backups: units that cover for each other" in html and "L0.MLP" in html
