"""The exception tree of DiffusionGemma, written down in one place.

Every error a user can cause derives from :class:`DiffusionGemmaError`; the CLI prints its message as
one sentence and exits with code 2.

    DiffusionGemmaError
    ├── InputError            bad prompt, target, units, budget, options
    ├── ModelLoadError        a model cannot be loaded
    │   ├── ModelNotFoundError      missing path, id not in the local cache
    │   └── UnsupportedModelError   architecture not supported
    ├── NumericalError        the model produced NaN or infinite values
    ├── MemoryLimitError      a request would not fit in the memory it may take
    └── StoreError            an audit store cannot be written (disk full, read-only, held by another audit)

Examples:
    >>> from diffusiongemma.errors import InputError, DiffusionGemmaError
    >>> issubclass(InputError, DiffusionGemmaError)
    True
"""

from __future__ import annotations

__all__ = [
    "DiffusionGemmaError",
    "InputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "UnsupportedModelError",
    "NumericalError",
    "MemoryLimitError",
    "StoreError",
]


class DiffusionGemmaError(Exception):
    """Base class of every error DiffusionGemma raises on purpose."""


class InputError(DiffusionGemmaError, ValueError):
    """The user's input (prompt, target, units, budget, options) cannot be used."""


class ModelLoadError(DiffusionGemmaError):
    """A model could not be loaded."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """A model path does not exist, or an id is not in the local Hugging Face cache."""


class UnsupportedModelError(ModelLoadError):
    """The model's architecture is not one DiffusionGemma knows how to mask."""


class NumericalError(DiffusionGemmaError, ArithmeticError):
    """The model returned NaN or infinite values."""


class MemoryLimitError(DiffusionGemmaError, MemoryError):
    """A request would not fit in the memory it may take (free memory, or ``DIFFUSIONGEMMA_MAX_MEMORY``): refused
    before it runs, instead of the kernel killing the process."""


class StoreError(DiffusionGemmaError):
    """An audit store cannot be opened for writing or written to: what was stored before stays intact."""
