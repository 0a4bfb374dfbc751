"""Patch files: which kind a file is (by the ``format`` in its header) and how ``load_model(..., patch=)``
applies it — the steering patch (:mod:`.patch`, hooks that stay registered) or the LoRA patch (:mod:`.lora`,
weights changed in place; a gated one's hooks stay registered). Either way the model's provenance records the file and its sha256.

Examples:
    >>> import tempfile, torch
    >>> from diffusiongemma.harden.lora import LoraPatch
    >>> path = LoraPatch({"model.layers.1.mlp.down_proj": (torch.ones(1, 64), torch.ones(64, 1))},
    ...                  scale=0.25).save(tempfile.mkdtemp() + "/p.patch.safetensors")
    >>> patch_kind(path)  # load_model("tiny-random-gemma", patch=path) adds 0.25 to every weight of that projection
    'lora'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.named import register_patch_loader
from ..models.provenance import sha256_file
from . import lora, patch as steering
from .patchfile import read_patch_file

__all__ = ["patch_kind", "attach_any_patch"]

KINDS = {steering.FORMAT: "steering", lora.FORMAT: "lora"}


def patch_kind(path: str | Path) -> str:
    """``"steering"`` or ``"lora"``, read from the file's header; anything else is a clear error."""
    meta, _ = read_patch_file(path, set(KINDS), "patch", tensors=False)
    return KINDS[meta["format"]]


def attach_any_patch(lm: Any, path: str | Path) -> Any:
    """Apply the patch file at ``path`` to ``lm`` for good, whichever kind it is; returns the patch."""
    if patch_kind(path) == "steering":
        return steering.attach_patch(lm, path)
    p = lora.LoraPatch.load(path)
    state, handles = p.attach(lm)
    A, _ = next(iter(p.factors.values()))
    lm.provenance["patch"] = {"path": str(path), "sha256": sha256_file(Path(path)),
                              "kind": "lora" if p.gate is None else "gated lora",
                              "modules": len(p.factors), "rank": int(A.shape[0]), "scale": p.scale,
                              "fit_on": p.meta.get("model")}
    if p.gate is not None:
        lm.provenance["patch"].update({"gate_layer": p.gate.layer, "gate_threshold": p.gate.threshold})
    lm.patch = {"patch": p, "state": state, "handles": handles}
    return p


register_patch_loader(attach_any_patch)  # load_model(..., patch=FILE) applies it (models/ itself knows no workflow)
