"""Load a causal LM for attribution: the default Gemma, a local directory, a cached id, a PEFT adapter.

Never downloads: ids are resolved with ``local_files_only=True``.

Examples:
    >>> from diffusiongemma.models import load_model
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()  # load_model("tiny-random-gemma"); load_model() is the default Gemma 3 270M
    >>> lm.family
    'gemma3'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelLoadError, ModelNotFoundError
from .named import named_adapter, patch_loader
from .tiny import EXAMPLE_MODELS
from .adapter import ModelAdapter
from .architectures import Architecture, architecture_for
from .gguf import cached_gguf
from .default_gemma import DEFAULT_ALIASES, DEFAULT_MODEL_NAME, ensure_default_model, gemma3_chat_template
from .provenance import sha256_file, sha256_files, sha256_text
from .tokenizer_cache import load_tokenizer

__all__ = ["LoadedModel", "load_model"]


@dataclass
class LoadedModel(ModelAdapter):
    """A model ready for masking: the HF module, its tokenizer, its family and where it came from; what the
    library asks of the model (layers, dims, forwards at read positions) is its :class:`ModelAdapter` side."""

    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any  # a fast tokenizer (offsets needed)
    name: str
    architecture: Architecture
    chat_template: str | None
    provenance: dict[str, Any] = field(default_factory=dict)
    patch: Any = None  # the hardening patch applied at load time, with its hooks (see load_model's patch=)

    @property
    def family(self) -> str:
        return self.architecture.family

    @property
    def sharded(self) -> bool:
        """Loaded with a ``device_map`` (layers placed by accelerate)."""
        return bool(getattr(self.model, "hf_device_map", None))

    @property
    def max_length(self) -> int:
        """The longest sequence the model accepts (its context length)."""
        cfg = self.model.config
        length: Any = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 2048)
        return int(length)


def _is_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def _resolve(spec: str | None) -> tuple[str, Path]:
    """Return (display name, Hugging Face directory); a ``.gguf`` file resolves to its converted directory."""
    if spec in DEFAULT_ALIASES:
        return DEFAULT_MODEL_NAME, ensure_default_model()
    assert spec is not None
    if spec in EXAMPLE_MODELS:  # the docs' example models, made from a seed (models/tiny.py)
        return spec, EXAMPLE_MODELS[spec]()
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":  # converted once, then read from the cache
            return spec, cached_gguf(path)
        if path.is_dir():
            if not (path / "config.json").exists():
                raise ModelNotFoundError(f"{spec} is a directory but holds no config.json of a Hugging Face model")
            return spec, path
        raise ModelNotFoundError(f"{spec} is neither a Hugging Face model directory nor a .gguf file")
    if _is_hub_id(spec):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            local = snapshot_download(spec, local_files_only=True)
        except (LocalEntryNotFoundError, OSError, ValueError):
            raise ModelNotFoundError(
                f"model id {spec!r} is not in the local Hugging Face cache and DiffusionGemma never downloads; "
                "download it yourself or pass a local directory"
            ) from None
        return spec, Path(local)
    raise ModelNotFoundError(f"model path {spec} does not exist")


def _load_adapter(model: Any, adapter: str) -> tuple[Any, str]:
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").exists():
        raise ModelNotFoundError(f"adapter {adapter} is not a PEFT adapter directory (no adapter_config.json)")
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"adapter {adapter} is damaged: its adapter_config.json is not readable JSON ({exc}); "
                             "copy or train the adapter again") from exc
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ModelLoadError(f"adapter {adapter} is damaged: its adapter_config.json has no peft_type; copy or train "
                             "the adapter again")
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except Exception as exc:  # peft raises many kinds for mismatched adapters
        raise ModelLoadError(f"adapter {adapter} does not fit this model: {exc}") from exc
    weights = [p for p in path.iterdir() if p.name.startswith("adapter_model")]
    return peft_model.merge_and_unload(), sha256_files(weights)


def _demo_adapter(spec: str | None, adapter: str | None) -> Path | None:
    """The packaged adapter of a registered model name (the demo models, ``gemma-270m-safety``, ...; see
    :mod:`~diffusiongemma.models.named`), or None for other specs."""
    named = named_adapter(spec)
    if named is None:
        return None
    if adapter:
        raise InputError(f"{spec} is a base model plus its own adapter; it takes no adapter= of its own")
    if not (named.directory / "adapter_config.json").exists():
        raise ModelNotFoundError(f"the demo adapter {spec} is not in this installation ({named.directory}); "
                                 f"{named.missing}")
    return named.directory


def _check_device(device: str) -> None:
    """An unknown or absent device is one sentence, not a traceback from inside torch.

    Examples:
        >>> _check_device("cpu")
        >>> _check_device("tpu9")
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: device 'tpu9' is not a device torch knows (e.g. cpu, cuda, cuda:1, mps)
    """
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device {device!r} is not a device torch knows (e.g. cpu, cuda, cuda:1, mps)") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} is not available: this PyTorch build sees no CUDA GPU; use --device cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} is not available on this machine; use --device cpu")


def _placement(device_map: str | dict[str, Any] | None, max_memory: dict[Any, str] | None,
               offload_folder: str | None) -> dict[str, Any]:
    """``from_pretrained`` arguments that let accelerate place (and offload) the layers."""
    if device_map is None:
        if max_memory or offload_folder:
            raise InputError("max_memory and offload_folder only apply with device_map")
        return {}
    if isinstance(device_map, str) and device_map not in ("auto", "balanced", "balanced_low_0", "sequential"):
        raise InputError(f"device_map {device_map!r} is not auto, balanced, balanced_low_0, sequential or a dict")
    import tempfile

    out: dict[str, Any] = {"device_map": device_map,
                           "offload_folder": offload_folder or tempfile.mkdtemp(prefix="diffusiongemma-offload-")}
    if max_memory:
        out["max_memory"] = max_memory
    return out


def load_model(
    spec: str | None = None,
    *,
    adapter: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, str] | None = None,
    offload_folder: str | None = None,
    patch: str | Path | None = None,
) -> LoadedModel:
    """Load a model for attribution.

    Args:
        spec: ``None`` (the default Gemma 3 270M), a demo model (``"gemma-270m-safety"``,
            ``"gemma-270m-backdoor"``, ``"gemma-270m-keyword"``: the default plus a shipped adapter), the example
            model ``"tiny-random-gemma"`` (2 random layers, Gemma's tokenizer: for trying calls, never findings), a local
            Hugging Face directory, a ``.gguf`` file, or a model id already in the local Hugging Face cache.
        adapter: a PEFT adapter directory applied on top (merged, so masking sees one plain model).
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when present, else CPU.
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``. Target log-probabilities are
            accumulated in float32 whatever the weights' dtype.
        device_map: for models larger than one device: ``"auto"`` (accelerate spreads the layers over the
            GPUs, then CPU, then disk) or an explicit ``{module name: device}`` map, where a device may be
            ``"disk"`` (weights offloaded to ``offload_folder`` and loaded layer by layer). ``device`` is
            ignored then. Masking hooks work on every shard.
        max_memory: with ``device_map``, the memory each device may use (``{0: "70GiB", "cpu": "100GiB"}``).
        offload_folder: where offloaded weights go (a temporary folder when omitted).
        patch: a hardening patch file written by ``diffusiongemma harden`` (conditional steering along the
            refusal direction, or a LoRA patch added to the weights), applied for good; recorded in
            ``provenance["patch"]``.

    Raises:
        ModelNotFoundError: a missing path, or an id not in the cache.
        UnsupportedModelError: an architecture DiffusionGemma cannot mask.

    Examples:
        >>> lm = load_model("tiny-random-gemma")
        >>> len(lm.provenance["weights_sha256"]), lm.provenance["model"]
        (64, 'tiny-random-gemma')
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if device_map is not None and adapter:
        raise InputError("an adapter cannot be merged into a model placed by device_map; merge it first "
                         "(peft's merge_and_unload) and load the merged directory")
    if dtype not in (None, "float32", "bfloat16", "float16"):
        raise InputError(f"dtype {dtype!r} is not one of float32, bfloat16, float16")
    if patch is not None and not Path(patch).is_file():  # fail before minutes of loading
        raise ModelLoadError(f"patch file not found: {patch}")
    torch_dtype = getattr(torch, dtype or "float32")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    _check_device(device)  # before minutes of loading
    demo = _demo_adapter(spec, adapter)
    if demo:
        spec, adapter = None, str(demo)
    name, directory = _resolve(spec)
    kwargs: dict[str, Any] = {"local_files_only": True}
    placement = _placement(device_map, max_memory, offload_folder)
    try:
        config = AutoConfig.from_pretrained(str(directory), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the model configuration in {directory}: {exc}") from exc
    arch = architecture_for(config.model_type)
    try:
        tokenizer = load_tokenizer(directory, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch_dtype, **kwargs, **placement)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the model in {directory}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"the tokenizer of {name} is not a fast tokenizer; character offsets are needed")
    weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    meta_file = directory / "diffusiongemma_source.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    provenance: dict[str, Any] = {
        "model": name,
        "model_type": config.model_type,
        "weights_sha256": meta.get("weights_sha256") or (sha256_files(weights) if weights else None),
        "source": meta.get("source", str(directory)),
        "adapter": None,
        "adapter_sha256": None,
        "dtype": dtype or "float32",
    }
    if adapter:
        model, provenance["adapter_sha256"] = _load_adapter(model, adapter)
        provenance["adapter"] = str(adapter)
    if demo:
        name = provenance["model"] = demo.name
        card = demo / "card.json"
        provenance["demo_card"] = json.loads(card.read_text()) if card.exists() else None
    template = getattr(tokenizer, "chat_template", None)
    if not template and arch.chat_template:
        template = gemma3_chat_template()
    tok_json = directory / "tokenizer.json"
    provenance["tokenizer_sha256"] = (
        sha256_file(tok_json) if tok_json.exists() else sha256_text(json.dumps(sorted(tokenizer.get_vocab().items())))
    )
    provenance["chat_template_sha256"] = sha256_text(template) if template else None
    # accelerate records its placement; a map that put everything on one device may leave none
    provenance["device_map"] = dict(getattr(model, "hf_device_map", None) or {"": str(next(model.parameters()).device)}) \
        if placement else None
    # transformers wraps PreTrainedModel.to in a decorator whose type hides its signature
    model = (model if placement else model.to(device)).eval()  # type: ignore[arg-type]
    lm = LoadedModel(model, tokenizer, name, arch, template, provenance)
    if patch is not None:
        patch_loader()(lm, patch)
    return lm
