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
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import InputError, ModelLoadError
from .gate import Gate

__all__ = ["FORMAT", "LoraPatch", "LoraPatchSettings"]

FORMAT = "diffusiongemma-lora-patch/1"
GATE_KEY = "gate.vector"  # a gated patch's condition vector (its layer and threshold are in the header)


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
    layers: tuple[int, ...] | None = None  # the decoder layers it changes (None: all); a gated patch: after the gate
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
    gate: Gate | None = None  # a gated patch acts only on the prompts where its gate fires, on layers after it

    @classmethod
    def from_peft(cls, peft_model: Any, meta: dict[str, Any] | None = None, gate: Gate | None = None) -> "LoraPatch":
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
        return cls(factors, scales.pop(), dict(meta or {}), gate)

    def _modules(self, lm: Any) -> dict[str, Any]:
        if self.gate is not None:
            self.gate.check(lm)
        out = {}
        for name, (A, B) in self.factors.items():
            try:
                module = lm.model.get_submodule(name)
            except AttributeError as exc:
                raise ModelLoadError(f"the patch changes {name}, which this model does not have") from exc
            if tuple(module.weight.shape) != (B.shape[0], A.shape[1]):
                raise ModelLoadError(f"the patch does not fit this model: {name} is {tuple(module.weight.shape)}, "
                                     f"the patch's delta {(B.shape[0], A.shape[1])}")
            if self.gate is not None and not _layer_of(name) > self.gate.layer:
                raise ModelLoadError(f"the patch changes {name}, at or before its gate's layer {self.gate.layer}: "
                                     "a gated patch acts on the layers after the gate only")
            out[name] = module
        return out

    def _delta_hooks(self, modules: dict[str, Any], state: dict[str, Any]) -> list[tuple[Any, str, Any]]:
        """Forward hooks adding ``scale · x Aᵀ Bᵀ`` to each module's output on the rows where the gate fired."""

        def hook_for(A: torch.Tensor, B: torch.Tensor) -> Any:
            def hook(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
                fire = state.get("fire")
                if fire is None or len(fire) != output.shape[0] or not bool(fire.any()):
                    return None
                x = inputs[0]  # [B, T, in]
                delta = (x.to(A.dtype) @ A.to(x.device).T) @ B.to(x.device).T  # [B, T, out]
                gate = fire.to(output.device, delta.dtype)[:, None, None]  # [B, 1, 1]
                return output + (self.scale * gate * delta).to(output.dtype)

            return hook

        return [(m, "forward", hook_for(*self.factors[name])) for name, m in modules.items()]

    @torch.no_grad()
    def _add(self, modules: dict[str, Any]) -> None:
        for name, module in modules.items():
            A, B = self.factors[name]
            w = module.weight
            w.add_((self.scale * (B @ A)).to(w.device, w.dtype))  # [out, in]

    @contextmanager
    def applied(self, lm: Any) -> Iterator[dict[str, Any]]:
        """The patch on ``lm`` inside the block; the original weights back exactly after it. Yields a state dict:
        empty for a weight patch (no per-prompt decision), the gate's last decision (``"fire"`` ``[B]``) for a
        gated one, which acts through hooks and leaves the weights untouched."""
        modules = self._modules(lm)
        if self.gate is not None:
            from ..models.hooks import scoped_hooks

            state: dict[str, Any] = {}
            with scoped_hooks([*self.gate.hooks(lm, state), *self._delta_hooks(modules, state)]):
                yield state
            return
        saved = {name: m.weight.detach().clone() for name, m in modules.items()}
        self._add(modules)
        try:
            yield {}
        finally:
            with torch.no_grad():
                for name, m in modules.items():
                    m.weight.copy_(saved[name])

    def attach(self, lm: Any) -> tuple[dict[str, Any], list[Any]]:
        """Apply the patch for good: the weights change (nothing stays registered), or for a gated patch its hooks
        stay registered. Returns the gate's state dict and the hooks' handles (empty for a weight patch)."""
        from ..models.hooks import register_hook

        modules = self._modules(lm)
        if self.gate is None:
            self._add(modules)
            return {}, []
        state: dict[str, Any] = {}
        hooks = [*self.gate.hooks(lm, state), *self._delta_hooks(modules, state)]
        return state, [register_hook(module, kind, fn) for module, kind, fn in hooks]

    def save(self, path: str | Path) -> Path:
        """Write the patch (safetensors; scale and figures in the header)."""
        from safetensors.torch import save_file

        tensors = {}
        for name, (A, B) in self.factors.items():
            tensors[f"{name}.lora_A"] = A.float().contiguous()
            tensors[f"{name}.lora_B"] = B.float().contiguous()
        header = {"format": FORMAT, "scale": repr(self.scale), "meta": json.dumps(self.meta, default=str)}
        if self.gate is not None:
            tensors[GATE_KEY] = self.gate.vector.detach().float().cpu().contiguous()
            header.update({"gate_layer": str(self.gate.layer), "gate_threshold": repr(self.gate.threshold)})
        save_file(tensors, str(path), metadata=header)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "LoraPatch":
        """Read a LoRA patch file; a missing, foreign or incomplete file is a clear error."""
        from .patchfile import read_patch_file

        meta, tensors = read_patch_file(path, {FORMAT}, "LoRA patch")
        gate = None
        if GATE_KEY in tensors or "gate_layer" in meta:
            if GATE_KEY not in tensors or "gate_layer" not in meta or "gate_threshold" not in meta:
                raise ModelLoadError(f"{path} is incomplete: its gate lacks its vector, layer or threshold")
            gate = Gate(tensors.pop(GATE_KEY), int(meta["gate_layer"]), float(meta["gate_threshold"]))
        names = {k.rsplit(".", 1)[0] for k in tensors}
        if any(f"{n}.lora_A" not in tensors or f"{n}.lora_B" not in tensors for n in names):
            raise ModelLoadError(f"{path} is incomplete: a module has only one of its two LoRA factors")
        return cls({n: (tensors[f"{n}.lora_A"], tensors[f"{n}.lora_B"]) for n in sorted(names)},
                   float(meta["scale"]), json.loads(meta.get("meta", "{}")), gate)


def _layer_of(name: str) -> int:
    """The decoder layer a module's name lies in (``model.layers.7.mlp.up_proj`` → 7), or −1 outside any.

    Examples:
        >>> _layer_of("model.layers.7.mlp.up_proj"), _layer_of("lm_head")
        (7, -1)
    """
    m = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
    return int(m.group(1)) if m else -1
