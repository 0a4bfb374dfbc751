"""DiffusionGemma: forensic interpretability of language model decisions.

Which prompt tokens (and, later, which model components) drove a decision, estimated by a masking
diffusion over units with standard errors, on the real Gemma 3 270M by default.

Examples:
    >>> import diffusiongemma as dg
    >>> sorted(dg.METHODS)
    ['ablation', 'banzhaf', 'exact', 'gp', 'gradient', 'kadd', 'owen', 'paired', 'regression', 'shapley']
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import _quiet  # noqa: F401  (first: one third-party import-time warning is filtered before torch loads)
from .api import METHODS, explain, explain_many
from .attribution import Attribution
from .context import explain_context
from .engine import EngineResult, run, run_many
from .errors import (
    DiffusionGemmaError,
    InputError,
    ModelLoadError,
    ModelNotFoundError,
    NumericalError,
    UnsupportedModelError,
)
from .game import Game
from .models import LoadedModel, load_model
from .options import Checks, ExplainOptions, GameSpec, RunSpec
from .refusal import RefusalOptions, RefusalScore, explain_refusal, explain_refusals, is_refusal
from .targets import TARGETS, CallableTarget, Continuation, Contrast, Greedy, NextToken, Target
from .units import UNIT_KINDS, Unit
from .demo import registry as _demo_models  # noqa: F401  (registers the demo model names with load_model)
from .harden import patches as _patches  # noqa: F401  (registers load_model's patch= loader)

__all__ = [
    "__version__",
    "explain", "explain_many", "METHODS", "Attribution", "Game", "run", "run_many", "EngineResult",
    "ExplainOptions", "GameSpec", "RunSpec", "Checks", "RefusalOptions",
    "load_model", "LoadedModel",
    "Target", "TARGETS", "Continuation", "Contrast", "NextToken", "Greedy", "CallableTarget", "RefusalScore",
    "is_refusal", "explain_refusal", "explain_refusals", "explain_context",
    "Unit", "UNIT_KINDS",
    "DiffusionGemmaError", "InputError", "ModelLoadError", "ModelNotFoundError", "UnsupportedModelError",
    "NumericalError",
]
