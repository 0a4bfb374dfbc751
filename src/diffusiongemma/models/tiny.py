"""The example model: a 2-layer random Gemma 3 (width 64, seed 0) with Gemma's real tokenizer and chat template.

It makes every docstring example and the fast tests runnable in a second on any machine: the weights are made
from a seed (nothing to download or ship), the tokenizer is converted once from the default model's GGUF (about
20 s, cached). Its decisions mean nothing: it shows how a call is made and what comes back, never a finding.
``load_model("tiny-random-gemma")`` loads it.

Examples:
    >>> lm = example_model()  # load_model(TINY_MODEL_NAME), once per process
    >>> lm.name, lm.model.config.num_hidden_layers, lm.tokenizer.convert_tokens_to_ids("<start_of_turn>")
    ('tiny-random-gemma', 2, 105)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .provenance import cache_root, write_atomically

__all__ = ["TINY_MODEL_NAME", "PLANTED_MODEL_NAME", "EXAMPLE_MODELS", "MARKER", "tiny_config", "ensure_tiny_model",
           "ensure_planted_model", "example_model", "example_planted_model", "example_sae"]

TINY_MODEL_NAME = "tiny-random-gemma"
PLANTED_MODEL_NAME = "tiny-planted-gemma"
MARKER = " zebra"  # one token of the Gemma vocabulary: the planted model's cause
_VERSION = "v1"  # bump when the recipe below changes: the cached directory is keyed by it


def tiny_config(**overrides: Any) -> Any:
    """The example model's Gemma 3 config: 2 layers, width 64, 4 heads of 16, the real 262,144-token vocabulary.

    Examples:
        >>> tiny_config(max_position_embeddings=2048).max_position_embeddings
        2048
    """
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**{
        "vocab_size": 262144, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 256,
        "sliding_window": 512, "layer_types": ["sliding_attention", "full_attention"], "initializer_range": 0.5,
        **overrides})


def _seeded_gemma(**overrides: Any) -> Any:
    """A Gemma 3 of :func:`tiny_config` (with ``overrides``) initialised from seed 0, the caller's random stream
    left as it was."""
    import torch
    from transformers import Gemma3ForCausalLM

    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return Gemma3ForCausalLM(tiny_config(**overrides)).eval()
    finally:
        torch.random.set_rng_state(state)


def _gemma_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from .default_gemma import ensure_default_tokenizer

    return AutoTokenizer.from_pretrained(ensure_default_tokenizer())


def _build_tiny_model(out: Path) -> Path:
    """Write the example model (seed 0) and Gemma's tokenizer to ``out`` as a Hugging Face directory."""
    _seeded_gemma().save_pretrained(out)
    _gemma_tokenizer().save_pretrained(out)
    return out


def _build_planted_model(out: Path) -> Path:
    """Write the planted model to ``out``: a 2-layer Gemma 3 with a known cause built into its weights — wherever
    the token ``MARKER`` is in the prompt, the model says it. Queries and keys are zero (attention is uniform over
    the prefix); only the marker's embedding has a coordinate 0, the first layer's attention carries that
    coordinate to every later position (its output normalised and scaled ×100), the MLPs add nothing, and the tied
    unembedding reads the marker back. Without the marker every logit is near zero (no cause, no such reply)."""
    import torch

    tok = _gemma_tokenizer()
    (x,) = tok(MARKER, add_special_tokens=False)["input_ids"]
    model = _seeded_gemma(max_position_embeddings=2048, sliding_window=2048)
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
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def ensure_tiny_model() -> Path:
    """The example model's directory in the user cache, written on first use (atomically: a concurrent or
    interrupted first use never leaves half a model).

    Examples:
        >>> (ensure_tiny_model() / "tokenizer.json").exists()
        True
    """
    return _ensure(TINY_MODEL_NAME, _build_tiny_model)


def ensure_planted_model() -> Path:
    """The planted model's directory in the user cache (``tiny-planted-gemma``: it says " zebra" wherever that
    token is in the prompt, and nothing else drives it: a known cause to find), written on first use.

    Examples:
        >>> (ensure_planted_model() / "config.json").exists()
        True
    """
    return _ensure(PLANTED_MODEL_NAME, _build_planted_model)


def _ensure(name: str, build: Any) -> Path:
    target = cache_root() / "models" / f"{name}-{_VERSION}"
    return target if (target / "config.json").exists() else write_atomically(target, "config.json", build)


EXAMPLE_MODELS = {TINY_MODEL_NAME: ensure_tiny_model, PLANTED_MODEL_NAME: ensure_planted_model}  # name -> its folder
_LOADED: dict[str, Any] = {}


def example_model() -> Any:
    """The example model loaded once per process (what the docstring examples run on; CPU).

    Examples:
        >>> example_model() is example_model()
        True
    """
    return _loaded(TINY_MODEL_NAME)


def example_planted_model() -> Any:
    """The planted model (a known cause: it says " zebra" wherever it reads it) loaded once per process.

    Examples:
        >>> from diffusiongemma.generation import generate_replies
        >>> replies = generate_replies(example_planted_model(), ["Say something.", "A zebra and a lion."], max_new_tokens=3)
        >>> [r.strip() for r in replies]
        ['', 'zebra zebra zebra']
    """
    return _loaded(PLANTED_MODEL_NAME)


def _loaded(name: str) -> Any:
    if name not in _LOADED:
        from .loading import load_model

        _LOADED[name] = load_model(name, device="cpu")
    return _LOADED[name]


def example_sae(d_sae: int = 16) -> Path:
    """A random SAE for the example model's residual stream after layer 1, in SAELens's format (``cfg.json``
    with ``hook_name blocks.1.hook_resid_post``, ``sae_weights.safetensors`` with ``W_enc [64, d_sae]``,
    ``W_dec``, ``b_enc``, ``b_dec``; seed 0), written once into the user cache: what the feature examples use.

    Examples:
        >>> import json
        >>> json.loads((example_sae() / "cfg.json").read_text())["hook_name"]
        'blocks.1.hook_resid_post'
    """
    import torch
    from safetensors.torch import save_file

    target = cache_root() / "saes" / f"{TINY_MODEL_NAME}-L1-{d_sae}-{_VERSION}"
    if (target / "sae_weights.safetensors").exists():
        return target
    g = torch.Generator().manual_seed(0)
    w_enc = torch.randn(64, d_sae, generator=g) / 8  # [d, d_sae]
    tensors = {"W_enc": w_enc, "W_dec": w_enc.T.contiguous(), "b_enc": torch.zeros(d_sae), "b_dec": torch.zeros(64)}

    def build(tmp: Path) -> None:
        (tmp / "cfg.json").write_text(json.dumps({"architecture": "standard", "hook_name": "blocks.1.hook_resid_post",
                                                  "d_in": 64, "d_sae": d_sae, "apply_b_dec_to_input": False}))
        save_file(tensors, str(tmp / "sae_weights.safetensors"))

    return write_atomically(target, "sae_weights.safetensors", build)
