"""What the layers above add to model loading, registered by them, so that ``models/`` knows no workflow: model
names that stand for a base model plus a packaged adapter (the demo models register theirs), and the loader of
``load_model(..., patch=)`` files (the harden workflow registers its steering patch).

Examples:
    >>> register_named_adapter("my-model", Path("/nonexistent"), "train it first")
    >>> named_adapter("my-model").missing, named_adapter("gpt-2") is None
    ('train it first', True)
    >>> del NAMED_ADAPTERS["my-model"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelLoadError

__all__ = ["NamedAdapter", "NAMED_ADAPTERS", "register_named_adapter", "named_adapter", "register_patch_loader",
           "patch_loader"]


@dataclass(frozen=True)
class NamedAdapter:
    """A model name that loads the default base model with this adapter directory; ``missing`` ends the sentence
    that says what to do when the directory holds no adapter."""

    name: str
    directory: Path
    missing: str


NAMED_ADAPTERS: dict[str, NamedAdapter] = {}
_PATCH_LOADER: list[Callable[[Any, str | Path], Any]] = []


def register_named_adapter(name: str, directory: Path, missing: str) -> None:
    """Make ``load_model(name)`` load the default base model with the adapter in ``directory``."""
    NAMED_ADAPTERS[name] = NamedAdapter(name, directory, missing)


def named_adapter(name: str | None) -> NamedAdapter | None:
    """The registered adapter of a model name, or ``None`` for any other spec.

    Examples:
        >>> named_adapter('gemma-270m-safety').directory.name, named_adapter('google/gemma-3-270m')
        ('gemma-270m-safety', None)
    """
    return NAMED_ADAPTERS.get(name) if isinstance(name, str) else None


def register_patch_loader(load: Callable[[Any, str | Path], Any]) -> None:
    """Set the function that applies a patch file to a loaded model (``load(lm, path)``)."""
    _PATCH_LOADER[:] = [load]


def patch_loader() -> Callable[[Any, str | Path], Any]:
    """The registered patch loader (one sentence when none is: this installation cannot apply patches).

    Examples:
        >>> callable(patch_loader())  # the harden workflow registers its steering patch when the package loads
        True
    """
    if not _PATCH_LOADER:
        raise ModelLoadError("no patch loader is registered: import diffusiongemma.harden.patches first")
    return _PATCH_LOADER[0]
