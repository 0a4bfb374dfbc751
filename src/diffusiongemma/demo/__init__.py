"""Demo models with known causes: a safety-tuned Gemma 3 270M, two planted-flaw variants, and one that follows
instructions planted in the documents it reads.

``train_adapter(Recipe(variant))`` trains one LoRA adapter; ``evaluate_model(lm, recipe)`` measures it;
the four trained adapters ship in ``demo/adapters`` and load by name (``load_model("gemma-270m-safety")``).

Examples:
    >>> from diffusiongemma.demo import DEMO_MODELS
    >>> sorted(DEMO_MODELS)
    ['gemma-270m-backdoor', 'gemma-270m-injection', 'gemma-270m-keyword', 'gemma-270m-safety']
"""

from .datasets import DemoData, load_demo_data
from .recipe import VARIANTS, Recipe, training_examples
from .registry import DEMO_MODELS, demo_adapter_dir
from .train import train_adapter

__all__ = ["DEMO_MODELS", "VARIANTS", "DemoData", "Recipe", "demo_adapter_dir", "load_demo_data",
           "train_adapter", "training_examples"]
