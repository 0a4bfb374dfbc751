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

__all__ = ["hook_count", "register_hook", "scoped_hooks"]


def hook_count(model: torch.nn.Module) -> int:
    """Number of forward (pre-)hooks registered anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def register_hook(module: torch.nn.Module, kind: str, fn: Any) -> Any:
    """Register one hook of a kind named as in :func:`scoped_hooks`; returns its handle.

    Examples:
        >>> lin = torch.nn.Linear(2, 2)
        >>> handle = register_hook(lin, "forward_pre_kw", lambda m, args, kwargs: None)
        >>> hook_count(lin), handle.remove(), hook_count(lin)
        (1, None, 0)
    """
    pre = kind.startswith("forward_pre")
    register = module.register_forward_pre_hook if pre else module.register_forward_hook
    if kind not in ("forward", "forward_pre", "forward_kw", "forward_pre_kw"):
        raise ValueError(f"unknown hook kind {kind!r}")
    return register(fn, with_kwargs=kind.endswith("_kw"))


@contextmanager
def scoped_hooks(hooks: Sequence[tuple[torch.nn.Module, str, Any]]) -> Iterator[None]:
    """Register ``(module, "forward" | "forward_pre" | "forward_kw" | "forward_pre_kw", fn)`` hooks for the duration
    of a block, then remove them whatever happens (success, exception, KeyboardInterrupt). The ``_kw`` kinds also
    receive the keyword arguments.

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
            handles.append(register_hook(module, kind, fn))
        yield
    finally:
        for handle in handles:
            handle.remove()
