"""Refusals: detecting them in generated text, and the refusal score target.

Example:
    >>> from diffusiongemma.refusal import is_refusal
    >>> is_refusal("I can't help with that.")
    True
"""

from .detector import REFUSAL_PHRASES, is_refusal, refusal_phrase
from .score import OPENINGS, RefusalScore

__all__ = ["REFUSAL_PHRASES", "is_refusal", "refusal_phrase", "OPENINGS", "RefusalScore"]
