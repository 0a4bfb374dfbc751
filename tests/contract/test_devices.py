"""Scale on CPU: bfloat16 numerics against float32, the batch size chosen from free memory, and a model
sharded by accelerate (one layer offloaded to disk) giving the attributions of the unsharded one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffusiongemma as dg
from diffusiongemma.models import batching
from diffusiongemma.errors import InputError, MemoryLimitError
from diffusiongemma.game import Game
from diffusiongemma.models.hooks import hook_count
from diffusiongemma.models import load_model

PROMPT, TARGET = "The quick brown fox jumps over the lazy", " dog"


@pytest.mark.slow  # 5-8 s: the fast lane stays under 5 minutes
def test_bfloat16_scores_stay_within_tolerance_of_float32(tiny_dir, tiny_lm):
    bf16 = load_model(str(tiny_dir), device="cpu", dtype="bfloat16")
    assert bf16.model.dtype == torch.bfloat16
    g32, g16 = (Game(PROMPT, TARGET, model=lm, units="words") for lm in (tiny_lm, bf16))
    masks = np.random.default_rng(0).integers(0, 2, size=(24, g32.n))
    v32, v16 = g32(masks), g16(masks)
    assert v16.dtype == np.float64  # accumulated in float32 or wider, whatever the weights
    spread = v32.max() - v32.min()
    assert spread > 0.5  # the masks do move the target, so the comparison means something
    assert np.abs(v16 - v32).max() < 0.1 * spread
    a32 = dg.explain(PROMPT, target=TARGET, model=tiny_lm, method="exact")
    a16 = dg.explain(PROMPT, target=TARGET, model=bf16, method="exact")
    assert np.corrcoef(a32.scores, a16.scores)[0, 1] > 0.95
    assert abs(a16.efficiency_gap) < 1e-6


def test_batch_size_follows_free_memory_and_never_changes_the_values(tiny_lm, monkeypatch):
    g = Game(PROMPT, TARGET, model=tiny_lm, units="words")
    masks = np.random.default_rng(1).integers(0, 2, size=(20, g.n))
    auto = g(masks)
    assert g.evaluator.rows_per_forward() == 64  # plenty of RAM on CPU: the CPU cap
    per_row = batching.row_bytes(tiny_lm.model.config, len(g.rendered), 1, 4)
    monkeypatch.setattr(batching, "free_memory", lambda device: int(3.5 * per_row / batching._FRACTION))
    tight = Game(PROMPT, TARGET, model=tiny_lm, units="words")
    assert tight.evaluator.rows_per_forward() == 3
    np.testing.assert_allclose(tight(masks), auto, atol=1e-5)
    fixed = Game(PROMPT, TARGET, model=tiny_lm, units="words", batch_size=5)
    assert fixed.evaluator.rows_per_forward() == 5  # the user's override wins
    np.testing.assert_allclose(fixed(masks), auto, atol=1e-5)


def test_more_read_positions_mean_fewer_rows():
    from types import SimpleNamespace

    cfg = SimpleNamespace(hidden_size=640, intermediate_size=2048, num_attention_heads=4, num_key_value_heads=1,
                          head_dim=256, num_hidden_layers=18, vocab_size=262144)
    free = 40 * 2**30
    one = batching.rows_that_fit(cfg, 64, 1, 2, free, "cuda")
    many = batching.rows_that_fit(cfg, 64, 32, 2, free, "cuda")
    assert many < one and many == int(0.6 * free // batching.row_bytes(cfg, 64, 32, 2))
    assert batching.rows_that_fit(cfg, 64, 1, 2, int(1.01 * batching.row_bytes(cfg, 64, 1, 2) / 0.6), "cuda") == 1
    with pytest.raises(MemoryLimitError, match="one prompt of 64 tokens"):  # not even one row: refused, not run
        batching.rows_that_fit(cfg, 64, 1, 2, 1000, "cuda")
    backward = batching.rows_that_fit(cfg, 64, 1, 2, free, "cuda", backward=True)
    # a backward keeps every layer's input and one layer's activations with their gradients (checkpointed)
    assert backward < one and backward == int(0.6 * free // batching.row_bytes(cfg, 64, 1, 2, backward=True))
    assert batching.rows_that_fit(cfg, 64, 1, 4, free, "cpu", backward=True) == 16  # CPU: 16 rows with a backward


def test_a_sharded_model_gives_the_unsharded_attributions(tiny_dir, tiny_lm, tmp_path):
    device_map = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                  "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "cpu"}
    sharded = load_model(str(tiny_dir), device_map=device_map, offload_folder=str(tmp_path / "offload"))
    assert sharded.sharded and sharded.provenance["device_map"]["model.layers.1"] == "disk"
    assert next(sharded.model.model.layers[1].parameters()).device.type == "meta"  # really offloaded
    assert sharded.device.type == "cpu"
    for units, kw in (("words", {}), ("heads+mlps+layers", {"baseline": "mean", "reference": ["A cat sat."]})):
        ref = dg.explain(PROMPT, target=TARGET, model=tiny_lm, units=units, budget=48, **kw)
        got = dg.explain(PROMPT, target=TARGET, model=sharded, units=units, budget=48, **kw)
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
    grad = dg.explain(PROMPT, target=TARGET, model=sharded, method="gradient", budget=24)
    np.testing.assert_allclose(grad.scores, dg.explain(PROMPT, target=TARGET, model=tiny_lm, method="gradient",
                                                      budget=24).scores, atol=1e-4)
    assert hook_count(sharded.model) == 0  # ours are gone; accelerate's wrap forward and stay
    assert hasattr(sharded.model.model.layers[1], "_hf_hook")


def test_device_map_rejects_what_it_cannot_do(tiny_dir):
    with pytest.raises(InputError, match="device_map"):
        load_model(str(tiny_dir), device_map="everywhere")
    with pytest.raises(InputError, match="adapter"):
        load_model(str(tiny_dir), device_map="auto", adapter="/nonexistent")
    with pytest.raises(InputError, match="only apply"):
        load_model(str(tiny_dir), max_memory={"cpu": "1GiB"})


def _shape(tiny_lm, text: str) -> tuple[int, int]:
    from diffusiongemma.game import Game

    return Game(text, " and", model=tiny_lm, units="words").evaluator.row_shape()


def test_a_gradient_run_that_cannot_fit_is_refused_with_a_clear_error(tiny_lm, monkeypatch):
    """The gradient method on a 4,147-token prompt was killed by the kernel at 22 GB (B7 memory); now one row's
    backward estimate above the memory it may take is a MemoryLimitError before any backward, while the same
    prompt's forward (which fits) still runs."""
    from diffusiongemma import explain

    text = "The cat sat on the mat"
    seq_len, reads = _shape(tiny_lm, text)
    cfg = tiny_lm.model.config
    fwd = batching.row_bytes(cfg, seq_len, reads, 4)
    bwd = batching.row_bytes(cfg, seq_len, reads, 4, backward=True)
    assert bwd > fwd
    free = int((fwd + bwd) / 2 / batching._FRACTION)  # room for a forward row, not for a backward one
    monkeypatch.setattr(batching, "free_memory", lambda device: free)
    explain(text, target=" and", model=tiny_lm, method="shapley", budget=8)  # forwards fit
    with pytest.raises(MemoryLimitError, match="backward pass"):
        explain(text, target=" and", model=tiny_lm, method="gradient", budget=12)


def test_a_forward_that_cannot_fit_is_refused(tiny_lm, monkeypatch):
    """Below one row's forward estimate the request is refused, not run into the kernel's kill (above it, the
    batch shrinks: test_batch_size_follows_free_memory_and_never_changes_the_values)."""
    from diffusiongemma import explain

    text = "The cat sat on the mat and then"
    seq_len, reads = _shape(tiny_lm, text)
    one = batching.row_bytes(tiny_lm.model.config, seq_len, reads, 4)
    monkeypatch.setattr(batching, "free_memory", lambda device: int(0.9 * one / batching._FRACTION))
    with pytest.raises(MemoryLimitError, match=f"one prompt of {seq_len} tokens needs about .* one forward pass"):
        explain(text, target=" it", model=tiny_lm, method="shapley", budget=24, seed=1)


def test_the_memory_ceiling_comes_from_the_environment(monkeypatch):
    """DIFFUSIONGEMMA_MAX_MEMORY caps the free memory on CPU at the limit less what the process holds; a bad
    value is an InputError naming the variable."""
    import psutil

    rss = psutil.Process().memory_info().rss
    monkeypatch.setenv(batching.LIMIT_ENV, str(rss + 100 * 2**20))
    assert 50 * 2**20 < batching.free_memory(torch.device("cpu")) <= 100 * 2**20
    monkeypatch.setenv(batching.LIMIT_ENV, "1KB")
    assert batching.free_memory(torch.device("cpu")) == 0
    monkeypatch.setenv(batching.LIMIT_ENV, "lots")
    with pytest.raises(InputError, match="DIFFUSIONGEMMA_MAX_MEMORY='lots' is not a memory size"):
        batching.free_memory(torch.device("cpu"))
