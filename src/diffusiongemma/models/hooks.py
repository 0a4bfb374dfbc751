"""Hooks on a model for one block of code: registered on entry, removed on exit whatever happens.

Examples:
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> with scoped_hooks([(lin, "forward", lambda m, i, o: o * 0)]):
    ...     hook_count(lin)
    1
    >>> hook_count(lin)
    0
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

__all__ = ["hook_count", "scoped_hooks"]


def hook_count(model: torch.nn.Module) -> int:
    """Number of forward (pre-)hooks registered anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@contextmanager
def scoped_hooks(hooks: Sequence[tuple[torch.nn.Module, str, Any]]) -> Iterator[None]:
    """Register ``(module, "forward" | "forward_pre" | "forward_kw", fn)`` hooks for the duration of a block, then remove
    them whatever happens (success, exception, KeyboardInterrupt).

    Examples:
        >>> lin = torch.nn.Linear(2, 2)
        >>> with scoped_hooks([(lin, "forward", lambda m, i, o: o * 0)]):
        ...     hook_count(lin)
        1
        >>> hook_count(lin)
        0
    """
    handles = []
    try:
        for module, kind, fn in hooks:
            if kind == "forward_kw":  # a forward hook that also receives the keyword arguments
                handles.append(module.register_forward_hook(fn, with_kwargs=True))
                continue
            register = module.register_forward_hook if kind == "forward" else module.register_forward_pre_hook
            handles.append(register(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()
