"""Shared fixtures: the real Gemma 3 270M (converted once into the user cache) and a tiny seeded random
Gemma 3 with the real tokenizer, saved as a local Hugging Face directory (no download anywhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# tests/data holds fixtures, among them the scripts that made the red-team tool files with the tools
# themselves (garak 0.12, PyRIT 1.1.0, not installed here): never import them as test modules
collect_ignore_glob = ["data/*"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The slow lane (``pytest -m slow``) holds the real-model and real-browser tests besides those marked slow;
    plain ``pytest`` runs the rest (the fast lane: pyproject's ``-m "not slow"``)."""
    for item in items:
        if item.get_closest_marker("real_model") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def real_lm():
    from diffusiongemma.models import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A 2-layer random Gemma 3 (seed 0) with the real Gemma tokenizer, as a local HF directory."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    from diffusiongemma.models.default_gemma import ensure_default_tokenizer

    source = ensure_default_tokenizer()  # the tokenizer alone on a fresh machine: the fast lane needs no weights
    out = tmp_path_factory.mktemp("tiny-gemma3")
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(_tiny_config()).eval()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def _tiny_config(**overrides):
    """The tiny models' Gemma 3 config: 2 layers, width 64, the real vocabulary."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**{
        "vocab_size": 262144, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 256,
        "sliding_window": 512, "layer_types": ["sliding_attention", "full_attention"], "initializer_range": 0.5,
        **overrides})


MARKER = " zebra"  # one token of the Gemma vocabulary: the planted model's cause


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory) -> Path:
    """A 2-layer Gemma 3 with a known cause built into its weights: wherever the token ``MARKER`` is in the
    prompt, the model says it. Queries and keys are zero (attention is uniform over the prefix); only the marker's
    embedding has a coordinate 0, the first layer's attention carries that coordinate to every later position
    (its output normalised and scaled ×100), the MLPs add nothing, and the tied unembedding reads the marker back.
    Without the marker every logit is near zero (no cause, no such reply)."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    from diffusiongemma.models.default_gemma import ensure_default_tokenizer

    tok = AutoTokenizer.from_pretrained(ensure_default_tokenizer())
    (x,) = tok(MARKER, add_special_tokens=False)["input_ids"]
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(_tiny_config(max_position_embeddings=2048, sliding_window=2048)).eval()
    with torch.no_grad():
        emb = model.model.embed_tokens.weight  # [V, 64], tied to the unembedding
        emb.mul_(0.01)
        emb[:, 0] = 0.0
        emb[x] = 0.0
        emb[x, 0] = 1.0
        for k, layer in enumerate(model.model.layers):
            att = layer.self_attn
            for proj in (att.q_proj, att.k_proj, att.v_proj, att.o_proj, layer.mlp.down_proj):
                proj.weight.zero_()
            if k == 0:
                att.v_proj.weight[0, 0] = 1.0  # the normalised residual's coordinate 0: nonzero at the marker only
                att.o_proj.weight[0, 0] = 1.0
                layer.post_attention_layernorm.weight[0] = 99.0
    out = tmp_path_factory.mktemp("planted-gemma3")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_lm(tiny_dir):
    from diffusiongemma.models import load_model

    return load_model(str(tiny_dir), device="cpu")


class ToyGame:
    """A game with interactions and known values: v(m) = w·m + Σ pair terms + one triple term."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.n = n
        self.w = rng.normal(size=n)
        self.pairs = [(int(i), int(j), float(c)) for i, j, c in
                      zip(rng.integers(0, n, 6), rng.integers(0, n, 6), rng.normal(size=6) * 2) if i != j]
        self.calls = 0

    def __call__(self, masks):
        m = np.asarray(masks, dtype=float)
        self.calls += len(m)
        v = m @ self.w
        for i, j, c in self.pairs:
            v = v + c * m[:, i] * m[:, j]
        return v + 1.5 * m[:, 0] * m[:, 1] * m[:, 2] if self.n >= 3 else v

    def shapley(self) -> np.ndarray:
        """Closed form: linear terms go to their unit, an interaction splits equally among its members."""
        phi = self.w.copy()
        for i, j, c in self.pairs:
            phi[i] += c / 2
            phi[j] += c / 2
        if self.n >= 3:
            phi[:3] += 0.5
        return phi


@pytest.fixture
def toy_game():
    return ToyGame(8)


@pytest.fixture
def run_cli(monkeypatch):
    """The console script's entry point in this process (no interpreter start-up per call): a function of the
    argument list that returns ``(exit code, stderr, stdout)``, rich's width fixed at 200 columns."""
    import contextlib
    import io
    import sys

    from diffusiongemma import cli

    def run(argv: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["diffusiongemma", *map(str, argv)])
        monkeypatch.setenv("COLUMNS", "200")
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return code, err.getvalue(), out.getvalue()

    return run
