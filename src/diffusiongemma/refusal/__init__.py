"""Refusals: detecting them in generated text, the refusal score target, and explaining a refusal.

Examples:
    >>> from diffusiongemma.refusal import is_refusal
    >>> is_refusal("I can't help with that.")
    True
"""

from .detector import REFUSAL_PHRASES, is_refusal, refusal_phrase
from .forensics import explain_refusal, explain_refusals
from .options import DEFAULT_REFUSAL_MODEL, RefusalOptions
from .projection import DirectionProjection
from .score import OPENINGS, RefusalScore

__all__ = ["REFUSAL_PHRASES", "is_refusal", "refusal_phrase", "OPENINGS", "RefusalScore", "DEFAULT_REFUSAL_MODEL",
           "RefusalOptions", "explain_refusal", "explain_refusals", "DirectionProjection"]
