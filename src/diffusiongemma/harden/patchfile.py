"""Reading a patch file: a safetensors file whose header names its ``format``; every way it can be wrong (missing,
unreadable, another format) is one clear :class:`~diffusiongemma.errors.ModelLoadError`.

Examples:
    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> path = tempfile.mkdtemp() + "/x.safetensors"
    >>> save_file({"v": torch.ones(2)}, path, metadata={"format": "demo/1"})
    >>> meta, tensors = read_patch_file(path, {"demo/1"}, "demo patch")
    >>> meta["format"], tensors["v"].tolist()
    ('demo/1', [1.0, 1.0])
    >>> read_patch_file(path, {"other/1"}, "steering patch")
    Traceback (most recent call last):
    ...
    diffusiongemma.errors.ModelLoadError: ... is not a DiffusionGemma steering patch (format 'demo/1')
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelLoadError

__all__ = ["read_patch_file"]


def read_patch_file(path: str | Path, formats: set[str], what: str, *,
                    tensors: bool = True) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header and (with ``tensors``) every tensor of the patch file at ``path``, whose format must be one of
    ``formats``; ``what`` names the expected kind in the error."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"patch file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") not in formats:
                raise ModelLoadError(f"{path} is not a DiffusionGemma {what} (format {meta.get('format')!r})")
            return meta, ({k: f.get_tensor(k) for k in f.keys()} if tensors else {})
    except SafetensorError as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors patch: {exc}") from exc
