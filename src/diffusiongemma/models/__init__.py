"""Model loading, the architecture map, and the adapter every forward goes through."""

from .adapter import Dims, ModelAdapter, PrefixCache
from .architectures import ARCHITECTURES, Architecture, architecture_for
from .loading import LoadedModel, load_model

__all__ = ["Dims", "ModelAdapter", "PrefixCache", "ARCHITECTURES", "Architecture", "architecture_for", "LoadedModel", "load_model"]
