"""Names of the shipped demo adapters and where they live inside the package.

Examples:
    >>> demo_adapter_dir("gemma-270m-safety").name
    'gemma-270m-safety'
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import ModelNotFoundError
from ..models.named import register_named_adapter

__all__ = ["DEMO_MODELS", "demo_adapter_dir"]

DEMO_MODELS: dict[str, str] = {
    "gemma-270m-safety": "safety",
    "gemma-270m-backdoor": "backdoor",
    "gemma-270m-keyword": "keyword",
    "gemma-270m-injection": "injection",
}


def demo_adapter_dir(name: str) -> Path:
    """The packaged adapter directory of a demo model name (it must have been trained and shipped)."""
    if name not in DEMO_MODELS:
        raise ModelNotFoundError(f"{name!r} is not a demo model; known: {', '.join(DEMO_MODELS)}")
    return Path(str(files("diffusiongemma.demo") / "adapters" / name))


for _name, _variant in DEMO_MODELS.items():  # load_model(name) finds them (models/ itself knows no demo)
    register_named_adapter(_name, demo_adapter_dir(_name),
                           f"train it with: diffusiongemma demo train --variant {_variant} --out DIR")
