"""The direction file: a residual-stream direction (``refusal-direction`` and ``harden`` write it; a ``direction:FILE``
unit and the refusal workflows read it) as safetensors, its layer, position and fit metadata in the header.

Examples:
    >>> import tempfile, torch
    >>> path = RefusalDirection(torch.tensor([3.0, 4.0]), layer=9, position=-1).save(tempfile.mkdtemp() + "/r.safetensors")
    >>> d = load_direction(path)
    >>> d.layer, d.unit.tolist()
    (9, [0.6000000238418579, 0.800000011920929])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

__all__ = ["RefusalDirection", "load_direction"]


@dataclass
class RefusalDirection:
    """A residual-stream direction: where it was read (layer output, position from the prompt's end)."""

    vector: torch.Tensor  # [d], the raw difference of means (its norm is the class gap)
    layer: int
    position: int  # negative: counted from the end of the rendered prompt
    validation: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unit(self) -> torch.Tensor:
        return self.vector / self.vector.norm()

    def save(self, path: str | Path) -> Path:
        """safetensors with the vector, metadata as JSON beside it in the header."""
        from safetensors.torch import save_file

        meta = {"layer": str(self.layer), "position": str(self.position),
                "validation": json.dumps(self.validation), "candidates": json.dumps(self.candidates[:20])}
        save_file({"direction": self.vector.detach().float().cpu().contiguous()}, str(path), metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "RefusalDirection":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            vec = f.get_tensor("direction")
        return cls(vec, int(meta["layer"]), int(meta["position"]), json.loads(meta.get("validation", "{}")),
                   json.loads(meta.get("candidates", "[]")))


def load_direction(path: str | Path) -> RefusalDirection:
    """:meth:`RefusalDirection.load`, with a missing or foreign file as an :class:`InputError`.

    Examples:
        >>> load_direction("none.safetensors")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: cannot read the direction file none.safetensors: ...
    """
    try:
        return RefusalDirection.load(path)
    except Exception as exc:  # safetensors raises several kinds for a missing or foreign file
        raise InputError(f"cannot read the direction file {path}: {exc}") from None
