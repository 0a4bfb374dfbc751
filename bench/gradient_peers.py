"""Peers that need the model itself (gradients or attention), run as a user would run them.

Captum ``LLMGradientAttribution`` with ``LayerIntegratedGradients`` and ``LayerGradientXActivation``
(gradient × input) on the token embeddings, and raw attention weights (from the last position, mean over
layers and heads). Each returns token scores, summed here into our units so every method is judged on the
same units and the same game. A forward+backward counts as 3 evaluations (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def _to_units(game: Any, token_scores: np.ndarray) -> np.ndarray:
    """Sum token scores ``[L]`` into the game's units ``[n]``."""
    return np.array([float(np.sum(token_scores[list(u.positions)])) for u in game.units])


def _captum_gradient(cls_name: str, game: Any, **kw: Any) -> tuple[np.ndarray, int]:
    import captum.attr as ca

    lm = game.lm
    ids = lm.tokenizer(game.text)["input_ids"]
    if list(ids) != list(game.rendered.input_ids):
        raise RuntimeError("Captum's tokenization of the prompt differs from the game's")
    method = getattr(ca, cls_name)(lm.model, lm.model.get_submodule(lm.architecture.embed))
    llm = ca.LLMGradientAttribution(method, lm.tokenizer)
    inp = ca.TextTokenInput(game.text, lm.tokenizer)
    target = torch.tensor(game.bound.description["tokens"])
    res = llm.attribute(inp, target=target, **kw)
    steps = kw.get("n_steps", 50) if cls_name == "LayerIntegratedGradients" else 1
    return _to_units(game, res.seq_attr.detach().float().cpu().numpy()), 3 * steps


def captum_lig(game: Any) -> tuple[np.ndarray, int]:
    """Captum integrated gradients on the embeddings (its defaults: zero-id baseline, 50 steps)."""
    return _captum_gradient("LayerIntegratedGradients", game)


def captum_grad_x_input(game: Any) -> tuple[np.ndarray, int]:
    """Gradient × input on the embeddings, through Captum."""
    return _captum_gradient("LayerGradientXActivation", game)


def attention(game: Any) -> tuple[np.ndarray, int]:
    """Attention weights from the last prompt position, mean over layers and heads."""
    model = game.lm.model
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([game.rendered.input_ids]), output_attentions=True)
    finally:
        model.set_attn_implementation(before)
    att = torch.stack([a[0, :, -1, :] for a in out.attentions])  # [layers, heads, L]
    return _to_units(game, att.float().mean(dim=(0, 1)).numpy()), 1


GRADIENT_PEERS: dict[str, Callable[[Any], tuple[np.ndarray, int]]] = {
    "captum LayerIntegratedGradients": captum_lig,
    "captum gradient × input": captum_grad_x_input,
    "attention (last position, mean)": attention,
}
