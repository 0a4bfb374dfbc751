"""Did safety training stick? Checks that tell learned refusal from brittle pattern matching.

Examples:
    >>> from diffusiongemma.verify import verify_safety
    >>> from diffusiongemma.models.tiny import example_model
    >>> verify_safety(example_model(), generalize=False, features=None).verdict in ("robust", "mixed", "brittle")
    True

    (``verify_safety("gemma-270m-keyword").verdict`` is ``'brittle'``: the keyword model refuses on words.)
"""

from .checks import Check, component_consistency, keyword_reliance, over_refusal, paraphrase_consistency
from .safety import SafetyReport, default_sets, read_prompt_file, verify_safety

__all__ = ["Check", "SafetyReport", "verify_safety", "default_sets", "read_prompt_file", "keyword_reliance",
           "paraphrase_consistency", "component_consistency", "over_refusal"]
