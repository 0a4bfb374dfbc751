"""Where things live in each supported model family: the architecture map, as data.

A new family is a new entry in :data:`ARCHITECTURES`, never a re-implemented forward pass. The entries name
the module paths (relative to the ``*ForCausalLM`` model) of the decoder layers and their parts; the
component issue builds head/MLP/neuron units on them.

Examples:
    >>> from diffusiongemma.models.architectures import architecture_for
    >>> architecture_for("gemma3_text").layers
    'model.layers'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedModelError

__all__ = ["Architecture", "ARCHITECTURES", "architecture_for"]


@dataclass(frozen=True)
class Architecture:
    """Module paths of one model family, relative to the causal-LM module."""

    family: str
    layers: str  # the ModuleList of decoder blocks
    attn: str  # attention module inside a block
    attn_out: str  # output projection inside the attention module (its input holds the per-head outputs)
    mlp: str  # MLP module inside a block
    mlp_out: str  # down projection inside the MLP (its input holds the hidden neurons)
    embed: str  # token embedding
    final_norm: str  # the norm before the LM head (its output holds the hidden state at every position)
    chat_template: str | None = None  # packaged template used when the tokenizer carries none
    mlp_in_norm: str | None = None  # the RMSNorm before the MLP inside a block (a transcoder reads its input)
    mlp_out_norm: str | None = None  # the norm after the MLP, if any (a transcoder writes its output); else the MLP
    norm_gain_offset: float = 0.0  # RMSNorm scales by (offset + weight): 1 on Gemma, 0 on Llama


_LLAMA_LIKE: dict[str, Any] = dict(
    layers="model.layers", attn="self_attn", attn_out="o_proj", mlp="mlp", mlp_out="down_proj",
    embed="model.embed_tokens", final_norm="model.norm",
)

_GEMMA_NORMS: dict[str, Any] = dict(mlp_in_norm="pre_feedforward_layernorm", mlp_out_norm="post_feedforward_layernorm",
                    norm_gain_offset=1.0)
_PRE_MLP: dict[str, Any] = dict(mlp_in_norm="post_attention_layernorm")  # Llama-like blocks: the second norm is before the MLP

ARCHITECTURES: dict[str, Architecture] = {
    "gemma3_text": Architecture("gemma3", chat_template="gemma3.jinja", **_LLAMA_LIKE, **_GEMMA_NORMS),
    "gemma2": Architecture("gemma2", chat_template="gemma3.jinja", **_LLAMA_LIKE, **_GEMMA_NORMS),
    "gemma": Architecture("gemma", chat_template="gemma3.jinja", **_LLAMA_LIKE, **_PRE_MLP, norm_gain_offset=1.0),
    "llama": Architecture("llama", **_LLAMA_LIKE, **_PRE_MLP),
    "mistral": Architecture("mistral", **_LLAMA_LIKE, **_PRE_MLP),
    "qwen2": Architecture("qwen2", **_LLAMA_LIKE, **_PRE_MLP),
    "qwen3": Architecture("qwen3", **_LLAMA_LIKE, **_PRE_MLP),
    "gpt2": Architecture(
        "gpt2", layers="transformer.h", attn="attn", attn_out="c_proj", mlp="mlp", mlp_out="c_proj",
        embed="transformer.wte", final_norm="transformer.ln_f",
    ),
}


def architecture_for(model_type: str) -> Architecture:
    """Return the architecture entry of a Hugging Face ``config.model_type``.

    Raises :class:`UnsupportedModelError` with the list of supported families otherwise.

    Examples:
        >>> architecture_for("llama").attn_out
        'o_proj'
    """
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported (dense causal LMs of these families are: {supported})"
        ) from None
