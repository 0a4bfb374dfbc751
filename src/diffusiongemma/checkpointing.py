"""Activation checkpointing of a model's decoder layers for the length of a block: the backward pass then
recomputes each layer's activations instead of keeping all of them, so a backward over a long prompt holds
one layer's attention scores at a time (layers × tokens × width of saved inputs, not layers × tokens²).

The gradient method's forwards run under it (see :meth:`diffusiongemma.evaluation.PromptEvaluator.value_and_grad`);
values and gradients are unchanged (the recomputation is deterministic: models run in eval mode).

Examples:
    >>> import torch
    >>> layers = torch.nn.ModuleList([torch.nn.Linear(3, 3) for _ in range(2)])
    >>> x = torch.ones(1, 3, requires_grad=True)
    >>> with checkpointed(layers):
    ...     y = layers[1](layers[0](x)).sum()
    ...     "forward" in vars(layers[0])
    True
    >>> (g,) = torch.autograd.grad(y, x)
    >>> "forward" in vars(layers[0])  # the layers' own forward is back
    False
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["checkpointed"]


@contextmanager
def checkpointed(layers: Iterable[torch.nn.Module]) -> Iterator[None]:
    """Run each module of ``layers`` through :func:`torch.utils.checkpoint.checkpoint` (non-reentrant) inside the
    block; their forward hooks still run once around each call. The modules are restored whatever happens."""
    patched = []
    try:
        for layer in layers:
            layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            del layer.forward
