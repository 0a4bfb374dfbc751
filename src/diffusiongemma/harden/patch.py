"""The hardening patch: conditional activation steering along the refusal direction (CAST, Lee et al. 2024).

A :class:`SteeringPatch` holds two residual-stream vectors:

* the **condition** ``c`` (unit) read at ``condition_layer``: the prompt's harmfulness signal is the mean over
  its positions of ``cos(h_t, c)``; the patch fires on a prompt when that signal exceeds ``threshold``;
* the **behaviour** ``r`` (the refusal direction, its raw difference of means) added as ``alpha · r`` to the
  output of ``behaviour_layer`` at every position of a prompt where the condition fired, and nowhere else.

Benign prompts (the condition silent) run exactly as before the patch, which is what keeps over-refusal down.
``condition_layer < behaviour_layer`` so both are decided in the same forward. During generation with a KV
cache a one-token step reuses the decision taken on its prompt.

The condition is a :class:`~.gate.Gate` (each row of a batch decided on its own tokens). The file is a safetensors file (two vectors, the settings and the fit's figures as metadata, the model it was
fit on); :func:`~diffusiongemma.models.load_model` applies it with ``patch=FILE``.

Examples:
    >>> import torch
    >>> p = SteeringPatch(torch.tensor([1.0, 0.0]), 0, 0.5, torch.tensor([0.0, 2.0]), 1, 1.0)
    >>> h = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.1]]])  # [B=1, T=3, d=2]
    >>> p.signal(h)  # mean cos over positions 1..T-1 (position 0 is BOS)
    tensor([0.9975])
    >>> p.signal(h, positions=torch.tensor([0, 1, 1]))  # a packed continuation restarts at 1: left out
    tensor([1.])
    >>> p.steer(h, p.signal(h) > p.threshold)[0, 0].tolist()
    [0.0, 3.0]
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import InputError, ModelLoadError
from ..models.hooks import register_hook
from .gate import Gate
from ..models.provenance import sha256_file

__all__ = ["SteeringPatch", "attach_patch"]

FORMAT = "diffusiongemma-steering-patch/1"


@dataclass
class SteeringPatch:
    """Conditional steering: add ``alpha · behaviour`` at ``behaviour_layer`` where the condition fires."""

    condition: torch.Tensor  # [d], unit vector
    condition_layer: int
    threshold: float
    behaviour: torch.Tensor  # [d], the refusal direction (raw difference of means)
    behaviour_layer: int
    alpha: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.condition.shape != self.behaviour.shape or self.condition.dim() != 1:
            raise InputError("a steering patch needs condition and behaviour vectors of one same size d")
        if not self.condition_layer < self.behaviour_layer:
            raise InputError(f"the condition layer ({self.condition_layer}) must come before the behaviour "
                             f"layer ({self.behaviour_layer})")
        norm = float(self.condition.float().norm())
        self.condition = self.condition.float() / (norm if abs(norm - 1.0) > 1e-6 else 1.0)  # unit (kept as read)

    @property
    def gate(self) -> Gate:
        """The condition as a :class:`~.gate.Gate` (it reads, per prompt, whether the patch acts)."""
        return Gate(self.condition, self.condition_layer, self.threshold)

    def signal(self, hidden: torch.Tensor, positions: torch.Tensor | None = None,
               visible: torch.Tensor | None = None) -> torch.Tensor:
        """Harmfulness signal of each row ``[B]`` from hidden ``[B, T, d]``: :meth:`.gate.Gate.signal`."""
        return self.gate.signal(hidden, positions, visible)

    def steer(self, hidden: torch.Tensor, fire: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``[B, T, d]`` with ``alpha · r`` added to the rows where ``fire`` ``[B]`` is true."""
        r = self.behaviour.to(hidden.device, hidden.dtype)  # [d]
        return hidden + self.alpha * fire.to(hidden.device, hidden.dtype)[:, None, None] * r

    def save(self, path: str | Path) -> Path:
        """Write the patch (safetensors; settings and figures in the header)."""
        from safetensors.torch import save_file

        meta = {"format": FORMAT, "condition_layer": str(self.condition_layer), "threshold": repr(self.threshold),
                "behaviour_layer": str(self.behaviour_layer), "alpha": repr(self.alpha),
                "meta": json.dumps(self.meta, default=str)}
        save_file({"condition": self.condition.detach().float().cpu().contiguous(),
                   "behaviour": self.behaviour.detach().float().cpu().contiguous()}, str(path), metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "SteeringPatch":
        """Read a patch file; a missing or foreign file is a clear error."""
        from .patchfile import read_patch_file

        meta, tensors = read_patch_file(path, {FORMAT}, "steering patch")
        cond, beh = tensors["condition"], tensors["behaviour"]
        return cls(cond, int(meta["condition_layer"]), float(meta["threshold"]), beh, int(meta["behaviour_layer"]),
                   float(meta["alpha"]), json.loads(meta.get("meta", "{}")))

    @contextmanager
    def applied(self, lm: Any) -> Iterator[dict[str, Any]]:
        """The patch's hooks on ``lm`` inside the block (removed after it); yields the state dict that holds the
        last decision (``"fire"`` ``[B]``, ``"signal"``)."""
        from ..models.hooks import scoped_hooks

        state: dict[str, Any] = {}
        with scoped_hooks(self.hooks(lm, state)):
            yield state

    def hooks(self, lm: Any, state: dict[str, Any] | None = None) -> list[tuple[Any, str, Any]]:
        """Forward hooks (for :func:`~diffusiongemma.models.hooks.scoped_hooks`, or kept by :func:`attach_patch`).
        ``state`` (a dict) receives the last decision: ``state["fire"]`` ``[B]`` and ``state["signal"]``."""
        layers = lm.layers
        if not self.behaviour_layer < len(layers) or self.behaviour.shape[0] != lm.model.config.hidden_size:
            raise ModelLoadError(f"the patch (d={self.behaviour.shape[0]}, layer {self.behaviour_layer}) does not fit "
                                 f"this model (d={lm.model.config.hidden_size}, {len(layers)} layers)")
        state = {} if state is None else state

        def write(module: Any, inputs: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            fire = state.get("fire")
            if fire is None or len(fire) != hidden.shape[0] or not bool(fire.any()):
                return None
            hidden = self.steer(hidden, fire)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return [*self.gate.hooks(lm, state), (layers[self.behaviour_layer], "forward", write)]


def attach_patch(lm: Any, path: str | Path) -> SteeringPatch:
    """Apply a patch file to a loaded model for good (its hooks stay registered) and record it in the
    model's provenance (path, sha256, settings).

    Examples:
        >>> import tempfile, torch
        >>> from diffusiongemma.models import load_model
        >>> path = SteeringPatch(condition=torch.ones(64) / 8, condition_layer=0, threshold=0.5, behaviour=torch.ones(64),
        ...                      behaviour_layer=1, alpha=4.0).save(tempfile.mkdtemp() + "/p.patch.safetensors")
        >>> lm = load_model("tiny-random-gemma", patch=path)  # calls attach_patch
        >>> lm.provenance["patch"]["alpha"]
        4.0
    """
    patch = SteeringPatch.load(path)
    state: dict[str, Any] = {}
    handles = [register_hook(module, kind, fn) for module, kind, fn in patch.hooks(lm, state)]
    lm.provenance["patch"] = {"path": str(path), "sha256": sha256_file(Path(path)), "kind": "steering",
                              "condition_layer": patch.condition_layer, "behaviour_layer": patch.behaviour_layer,
                              "threshold": patch.threshold, "alpha": patch.alpha,
                              "fit_on": patch.meta.get("model")}
    lm.patch = {"patch": patch, "state": state, "handles": handles}
    return patch

