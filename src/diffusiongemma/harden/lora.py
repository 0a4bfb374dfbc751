"""The LoRA hardening patch: low-rank weight deltas trained against the attack suite, with benign twins.

Where the steering patch (:mod:`.patch`) adds a vector when a harm signal fires, this patch changes weights: a
LoRA trained on the *training split* only — harmful requests, plain and wrapped in every attack of the suite,
answered with a refusal; benign requests, plain and wrapped in the very same attacks (their *twins*), answered
as before — so that the wrapper is no cue and only the request decides. The file holds the LoRA's ``A`` and
``B`` matrices per module (safetensors, settings and figures in the header); applying it adds
``scale · B @ A`` to each module's weight, and :meth:`LoraPatch.applied` puts the original weights back
exactly afterwards.

Examples:
    >>> import torch
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()
    >>> name = "model.layers.0.mlp.down_proj"
    >>> w = lm.model.get_submodule(name).weight
    >>> A, B = torch.ones(2, w.shape[1]), torch.ones(w.shape[0], 2)  # a rank-2 delta of 2 · 0.5 = 1 everywhere
    >>> p = LoraPatch({name: (A, B)}, scale=0.5)
    >>> before = w.detach().clone()
    >>> with p.applied(lm):
    ...     float((lm.model.get_submodule(name).weight - before).mean())
    1.0
    >>> torch.equal(lm.model.get_submodule(name).weight, before)  # restored exactly
    True
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import InputError, ModelLoadError

__all__ = ["FORMAT", "LoraPatch", "LoraPatchSettings"]

FORMAT = "diffusiongemma-lora-patch/1"


@dataclass(frozen=True)
class LoraPatchSettings:
    """How the LoRA patch is trained (the fields :func:`~diffusiongemma.demo.train.fit_lora` reads)."""

    steps: int | None = None  # None: one pass over the examples
    batch_size: int = 8
    learning_rate: float = 3e-4
    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    max_reply_tokens: int = 40
    max_minutes: float = 30.0
    seed: int = 0

    @property
    def n_steps(self) -> int:
        """The optimizer steps (set them, or :meth:`for_examples` does: one pass)."""
        if self.steps is None:
            raise ValueError("the steps are not set: call for_examples(n) first")
        return self.steps

    def for_examples(self, n: int) -> "LoraPatchSettings":
        """These settings with the steps set to one pass over ``n`` examples, unless they were given.

        Examples:
            >>> LoraPatchSettings().for_examples(20).n_steps, LoraPatchSettings(steps=5).for_examples(20).n_steps
            (3, 5)
        """
        from dataclasses import replace

        return self if self.steps is not None else replace(self, steps=max(1, -(-n // self.batch_size)))


@dataclass
class LoraPatch:
    """Per module (its name in the model): ``A`` ``[r, in]`` and ``B`` ``[out, r]``; the delta is ``scale · B @ A``."""

    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scale: float
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_peft(cls, peft_model: Any, meta: dict[str, Any] | None = None) -> "LoraPatch":
        """The factors of a peft LoRA model (its default adapter), before ``unload()``."""
        factors, scales = {}, set()
        for name, module in peft_model.get_base_model().named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                A = module.lora_A["default"].weight.detach().float().cpu().clone()  # [r, in]
                B = module.lora_B["default"].weight.detach().float().cpu().clone()  # [out, r]
                factors[name] = (A, B)
                scales.add(float(module.scaling["default"]))
        if not factors or len(scales) != 1:
            raise InputError("the model holds no single LoRA adapter to make a patch of")
        return cls(factors, scales.pop(), dict(meta or {}))

    def _modules(self, lm: Any) -> dict[str, Any]:
        out = {}
        for name, (A, B) in self.factors.items():
            try:
                module = lm.model.get_submodule(name)
            except AttributeError as exc:
                raise ModelLoadError(f"the patch changes {name}, which this model does not have") from exc
            if tuple(module.weight.shape) != (B.shape[0], A.shape[1]):
                raise ModelLoadError(f"the patch does not fit this model: {name} is {tuple(module.weight.shape)}, "
                                     f"the patch's delta {(B.shape[0], A.shape[1])}")
            out[name] = module
        return out

    @torch.no_grad()
    def _add(self, modules: dict[str, Any]) -> None:
        for name, module in modules.items():
            A, B = self.factors[name]
            w = module.weight
            w.add_((self.scale * (B @ A)).to(w.device, w.dtype))  # [out, in]

    @contextmanager
    def applied(self, lm: Any) -> Iterator[dict[str, Any]]:
        """The patch on ``lm`` inside the block; the original weights back exactly after it. Yields a state dict
        (empty: a weight patch has no per-prompt decision)."""
        modules = self._modules(lm)
        saved = {name: m.weight.detach().clone() for name, m in modules.items()}
        self._add(modules)
        try:
            yield {}
        finally:
            with torch.no_grad():
                for name, m in modules.items():
                    m.weight.copy_(saved[name])

    def attach(self, lm: Any) -> None:
        """Apply the patch for good (the weights change; nothing stays registered)."""
        self._add(self._modules(lm))

    def save(self, path: str | Path) -> Path:
        """Write the patch (safetensors; scale and figures in the header)."""
        from safetensors.torch import save_file

        tensors = {}
        for name, (A, B) in self.factors.items():
            tensors[f"{name}.lora_A"] = A.float().contiguous()
            tensors[f"{name}.lora_B"] = B.float().contiguous()
        save_file(tensors, str(path), metadata={"format": FORMAT, "scale": repr(self.scale),
                                                 "meta": json.dumps(self.meta, default=str)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "LoraPatch":
        """Read a LoRA patch file; a missing, foreign or incomplete file is a clear error."""
        from .patchfile import read_patch_file

        meta, tensors = read_patch_file(path, {FORMAT}, "LoRA patch")
        names = {k.rsplit(".", 1)[0] for k in tensors}
        if any(f"{n}.lora_A" not in tensors or f"{n}.lora_B" not in tensors for n in names):
            raise ModelLoadError(f"{path} is incomplete: a module has only one of its two LoRA factors")
        return cls({n: (tensors[f"{n}.lora_A"], tensors[f"{n}.lora_B"]) for n in sorted(names)},
                   float(meta["scale"]), json.loads(meta.get("meta", "{}")))
