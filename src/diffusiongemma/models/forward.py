"""Keyword arguments a model's forward takes, read from its signature (transformers versions differ).

Examples:
    >>> import torch
    >>> class M(torch.nn.Module):
    ...     def forward(self, input_ids, past_key_values=None, logits_to_keep=0): ...
    >>> cache_kwarg(M()), last_logits_only(M())
    ('past_key_values', {'logits_to_keep': 1})
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["cache_kwarg", "last_logits_only"]


def cache_kwarg(model: Any) -> str:
    """The name the forward gives its KV cache: ``cache`` from transformers 5.2x, ``past_key_values`` before."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def last_logits_only(model: Any) -> dict[str, int]:
    """``{"logits_to_keep": 1}`` when the forward takes it (logits at the last position only: one prompt of T
    tokens otherwise costs T × vocabulary floats, 4 GB at 4,000 tokens on Gemma), else nothing."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
