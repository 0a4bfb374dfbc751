"""Model loading and the architecture map."""

from .architectures import ARCHITECTURES, Architecture, architecture_for
from .loading import LoadedModel, load_model

__all__ = ["ARCHITECTURES", "Architecture", "architecture_for", "LoadedModel", "load_model"]
