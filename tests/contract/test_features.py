"""SAE latents as units on the tiny model: Gemma Scope and SAELens files read alike, the all-kept game is the
unmodified model exactly, masking a latent removes exactly its decoder contribution (reconstruction error
kept), exact Shapley over the latents is efficient, and a mismatched SAE is one sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from diffusiongemma import run
from diffusiongemma.components import ComponentGame
from diffusiongemma.components.features import load_sae
from diffusiongemma.errors import InputError
from diffusiongemma.game import Game

PROMPT, TARGET = "The cat sat on the", " mat"


def _weights(d_in: int = 64, d_sae: int = 48, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w_enc": torch.randn(d_in, d_sae, generator=g) / 4, "w_dec": torch.randn(d_sae, d_in, generator=g) / 4,
            "b_enc": torch.zeros(d_sae), "b_dec": torch.randn(d_in, generator=g) / 10,
            "threshold": torch.full((d_sae,), 0.05)}


@pytest.fixture(scope="module")
def saes(tmp_path_factory):
    root = tmp_path_factory.mktemp("saes")
    w = _weights()
    (root / "scope").mkdir()
    save_file(w, str(root / "scope" / "params.safetensors"))  # Gemma Scope's names
    (root / "lens").mkdir()
    save_file({"W_enc": w["w_enc"], "W_dec": w["w_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"],
               "threshold": w["threshold"]}, str(root / "lens" / "sae_weights.safetensors"))  # SAELens's names
    (root / "lens" / "cfg.json").write_text(json.dumps({"d_in": 64, "d_sae": 48, "architecture": "jumprelu",
                                                        "hook_name": "blocks.0.hook_resid_post", "dtype": "float32"}))
    (root / "narrow").mkdir()
    save_file(_weights(d_in=32), str(root / "narrow" / "params.safetensors"))
    return root


def test_both_formats_read_alike(saes):
    a, b = load_sae(saes / "scope"), load_sae(saes / "lens")
    assert (a.d_in, a.d_sae, a.kind, a.layer, b.layer) == (64, 48, "jumprelu", None, 0)
    x = torch.randn(3, 64)
    assert torch.equal(a.encode(x), b.encode(x))


def test_all_kept_is_the_model_and_one_masked_latent_is_its_decoder_contribution(tiny_lm, saes):
    game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:0={saes / 'scope'}#6")
    assert 1 <= game.n <= 6 and all(u.text.startswith("L0.F") for u in game.units)
    plain = Game(PROMPT, TARGET, model=tiny_lm)
    assert game(np.ones((1, game.n)))[0] == plain(np.ones((1, plain.n)))[0]  # exactly: nothing is subtracted
    sae, j = load_sae(saes / "scope"), game.components[0].index

    def take_out(module, inputs, output):  # by hand: h - f_j(h) W_dec[j] after layer 0, every position
        h = output[0] if isinstance(output, tuple) else output
        f = sae.encode(h)[..., j:j + 1]
        new = h - f * sae.w_dec[j]
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = tiny_lm.model.get_submodule(tiny_lm.architecture.layers)[0].register_forward_hook(take_out)
    try:
        by_hand = plain(np.ones((1, plain.n)))[0]
    finally:
        handle.remove()
    mask = np.ones((1, game.n))
    mask[0, 0] = 0
    assert game(mask)[0] == pytest.approx(by_hand, abs=1e-5) and game(mask)[0] != game(np.ones((1, game.n)))[0]


def test_exact_shapley_over_latents_is_efficient(tiny_lm, saes):
    game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:{saes / 'lens'}#5")  # layer from cfg.json
    res = run(game, "exact")
    full, empty = game(np.ones((1, game.n)))[0], game(np.zeros((1, game.n)))[0]
    assert res.scores.sum() == pytest.approx(full - empty, abs=1e-4)  # float32 forwards in different batches


@pytest.mark.parametrize("spec, says", [
    ("features:0={narrow}", "reads vectors of width 32; this model's residual stream has width 64"),
    ("features:1={lens}", "was trained on layer 0's residual stream, not layer 1"),
    ("features:{scope}", "does not say which layer it reads"),
    ("features:0={root}/missing", "no SAE at"),
    ("features:7={scope}", "outside this model's 0-1"),
])
def test_a_mismatched_sae_is_one_sentence(tiny_lm, saes, spec, says):
    spec = spec.format(narrow=saes / "narrow", lens=saes / "lens", scope=saes / "scope", root=saes)
    with pytest.raises(InputError, match=says.replace("(", r"\(").replace(")", r"\)")):
        ComponentGame(PROMPT, TARGET, model=tiny_lm, units=spec)


def test_feature_contexts_are_the_strongest_activations_and_labels_attach(tiny_lm, saes, tmp_path, monkeypatch):
    from diffusiongemma import explain
    from diffusiongemma.components.feature_notes import describe_features, feature_contexts, read_labels_data
    from diffusiongemma.generation import chat_ids

    monkeypatch.setenv("DIFFUSIONGEMMA_CACHE", str(tmp_path))
    prompts = ["How do I bake bread?", "Tell me about cats", "The weather is nice today"]
    notes = feature_contexts(tiny_lm, str(saes / "scope"), 0, prompts, top=2)
    sae = load_sae(saes / "scope")
    seen = {}
    handle = tiny_lm.model.get_submodule(tiny_lm.architecture.layers)[0].register_forward_hook(
        lambda m, i, o: seen.__setitem__("h", (o[0] if isinstance(o, tuple) else o)[0]))
    acts = []
    try:
        for p in prompts:
            tiny_lm.model(torch.tensor([chat_ids(tiny_lm, p)[0]]))
            acts.append(sae.encode(seen["h"][1:].float()))
    finally:
        handle.remove()
    best = torch.cat(acts).max(0).values  # [d_sae] by hand
    for j, ctx in notes.items():
        assert ctx[0]["activation"] == pytest.approx(float(best[j]), abs=1e-3) and "⟦" in ctx[0]["text"]
        assert [c["activation"] for c in ctx] == sorted((c["activation"] for c in ctx), reverse=True)
    assert set(notes) == {j for j in range(sae.d_sae) if best[j] > 0}  # latents that never fire are absent
    assert list(tmp_path.glob("feature_contexts/*.json"))  # cached: a second call reads the file
    assert feature_contexts(tiny_lm, str(saes / "scope"), 0, prompts, top=2) == notes

    attr = explain(PROMPT, TARGET, model=tiny_lm, units=f"features:0={saes / 'scope'}#3", budget=16)
    first = int(attr.units[0].text.split(".F")[1])  # the unit "L0.F<latent>"
    describe_features(tiny_lm, attr, read_labels_data({str(first): "my label"}), prompts)
    assert attr.settings["features"][attr.units[0].text]["label"] == "my label"
    assert attr.settings["features"][attr.units[0].text]["contexts"] == notes.get(first, [])


def test_any_position_takes_the_latents_strongest_anywhere_in_the_prompt(tiny_lm, saes):
    """``#anyK``: the K latents with the largest activation at any position but BOS (by hand), against ``#K``:
    the largest at the read position."""
    from diffusiongemma.components.features import layer_output

    any_game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:0={saes / 'scope'}#any5")
    last_game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:0={saes / 'scope'}#5")
    sae = load_sae(saes / "scope")
    acts = sae.encode(layer_output(tiny_lm, list(any_game.rendered.input_ids), 0).float())  # [T, d_sae]
    best = torch.argsort(acts[1:].max(0).values, descending=True)[:5].tolist()
    assert [c.index for c in any_game.components] == best
    assert [c.index for c in last_game.components] == [j for j in torch.argsort(acts[-1], descending=True)[:5].tolist()
                                                       if acts[-1, j] > 0]


def test_sae_lens_hook_points_map_to_the_residual_stream_or_say_what_is_not_read(tmp_path):
    """blocks.1.hook_resid_pre is the stream leaving layer 0; an MLP-output SAE (or resid_pre of block 0, the
    embeddings) is refused in one sentence rather than read at the wrong place."""
    w = _weights()
    lens = {"W_enc": w["w_enc"], "W_dec": w["w_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"]}
    for name, hook in (("pre1", "blocks.1.hook_resid_pre"), ("pre0", "blocks.0.hook_resid_pre"),
                       ("mlp", "blocks.1.hook_mlp_out")):
        (tmp_path / name).mkdir()
        save_file(lens, str(tmp_path / name / "sae_weights.safetensors"))
        (tmp_path / name / "cfg.json").write_text(json.dumps({"architecture": "standard", "hook_name": hook}))
    load_sae.cache_clear()
    assert load_sae(tmp_path / "pre1").layer == 0
    for name in ("pre0", "mlp"):
        with pytest.raises(InputError, match="only the residual stream between layers"):
            load_sae(tmp_path / name)


def test_transcoder_latents_take_their_contribution_out_of_the_mlp_output(tiny_lm, saes, tmp_path):
    """A transcoder (Gemma Scope's: the MLP's input after the pre-MLP RMSNorm, without its gain, to the
    post-MLP norm's output): all kept is the model exactly; one latent masked equals a hand-written pair of
    hooks that read the norm's *input* and normalise it themselves; a SAELens file says 'transcoder' by its
    hook name."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

    from diffusiongemma.components.features import _normalised

    norm = Gemma3RMSNorm(64)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(2, 5, 64)
    assert torch.allclose(_normalised(norm, norm(x), 1.0), norm._norm(x), atol=1e-5)  # the gain taken off

    spec = f"transcoder:1={saes / 'scope'}#4"
    game = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=spec)
    plain = Game(PROMPT, TARGET, model=tiny_lm)
    assert 1 <= game.n <= 4 and all(u.text.startswith("L1.T") for u in game.units)
    assert game(np.ones((1, game.n)))[0] == plain(np.ones((1, plain.n)))[0]
    sae, j = load_sae(saes / "scope", "transcoder"), game.components[0].index
    block = tiny_lm.model.get_submodule(tiny_lm.architecture.layers)[1]
    seen = {}

    def read(module, args):  # the pre-MLP norm's input, normalised by hand
        seen["x"] = module._norm(args[0].float())

    def write(module, inputs, output):
        return output - sae.encode(seen["x"])[..., j:j + 1] * sae.w_dec[j]

    handles = [block.pre_feedforward_layernorm.register_forward_pre_hook(read),
               block.post_feedforward_layernorm.register_forward_hook(write)]
    try:
        by_hand = plain(np.ones((1, plain.n)))[0]
    finally:
        for h in handles:
            h.remove()
    mask = np.ones((1, game.n))
    mask[0, 0] = 0
    assert game(mask)[0] == pytest.approx(by_hand, abs=1e-4) and game(mask)[0] != game(np.ones((1, game.n)))[0]

    (tmp_path / "tc").mkdir()
    w = _weights()
    save_file({"W_enc": w["w_enc"], "W_dec": w["w_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"],
               "threshold": w["threshold"]}, str(tmp_path / "tc" / "sae_weights.safetensors"))
    (tmp_path / "tc" / "cfg.json").write_text(json.dumps({"architecture": "jumprelu",
                                                          "hook_name": "blocks.1.ln2.hook_normalized"}))
    tc = load_sae(tmp_path / "tc")
    assert (tc.site, tc.layer) == ("transcoder", 1)


def test_latents_grouped_as_asked_mask_together(tiny_lm, saes):
    """``#any4/2``: the 4 latents strongest anywhere, two per unit (labels name both); masking a group equals
    masking its two latents as separate units; ``#any`` takes every latent active at any position."""
    from diffusiongemma.components.features import layer_output

    sae_path = saes / "scope"
    grouped = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:0={sae_path}#any4/2")
    single = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:0={sae_path}#any4")
    assert grouped.n == 2 and [c.latents for c in grouped.components] == [
        tuple(c.index for c in single.components[:2]), tuple(c.index for c in single.components[2:])]
    a, b = single.components[0].index, single.components[1].index
    assert grouped.units[0].text == f"L0.F{a}/{b}"
    assert grouped(np.array([[0, 1]]))[0] == pytest.approx(single(np.array([[0, 0, 1, 1]]))[0], abs=1e-5)
    every = ComponentGame(PROMPT, TARGET, model=tiny_lm, units=f"features:0={sae_path}#any")
    acts = load_sae(sae_path).encode(layer_output(tiny_lm, list(every.rendered.input_ids), 0).float())[1:]
    assert every.n == int((acts.max(0).values > 0).sum())
