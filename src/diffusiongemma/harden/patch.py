"""The hardening patch: conditional activation steering along the refusal direction (CAST, Lee et al. 2024).

A :class:`SteeringPatch` holds two residual-stream vectors:

* the **condition** ``c`` (unit) read at ``condition_layer``: the prompt's harmfulness signal is the mean over
  its positions of ``cos(h_t, c)``; the patch fires on a prompt when that signal exceeds ``threshold``;
* the **behaviour** ``r`` (the refusal direction, its raw difference of means) added as ``alpha · r`` to the
  output of ``behaviour_layer`` at every position of a prompt where the condition fired, and nowhere else.

Benign prompts (the condition silent) run exactly as before the patch, which is what keeps over-refusal down.
``condition_layer < behaviour_layer`` so both are decided in the same forward. During generation with a KV
cache a one-token step reuses the decision taken on its prompt.

The file is a safetensors file (two vectors, the settings and the fit's figures as metadata, the model it was
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
from ..models.provenance import sha256_file

__all__ = ["SteeringPatch", "attach_patch", "prompt_positions", "seen_keys"]

FORMAT = "diffusiongemma-steering-patch/1"


def seen_keys(mask: Any, T: int) -> torch.Tensor | None:
    """Which of the last ``T`` keys some query sees, ``[B, T]`` bool, from a model's ``attention_mask`` argument:
    ``[B, S]`` 0/1 (left padding, holes), a 4-D ``[B, 1, T, S]`` mask (additive or boolean: a key no query sees
    is a hole), or a dict of 4-D masks by attention type (its full-attention one); ``None`` when there is none.

    Examples:
        >>> seen_keys(torch.tensor([[0, 1, 1], [1, 0, 1]]), 2).tolist()
        [[True, True], [False, True]]
        >>> m = torch.zeros(1, 1, 3, 3)  # [B, 1, T, S], additive
        >>> m[..., 1] = torch.finfo(torch.float32).min  # key 1 hidden from every query: a hole
        >>> seen_keys(m, 3).tolist()
        [[True, False, True]]
    """
    if isinstance(mask, dict):
        mask = mask.get("full_attention", next(iter(mask.values()), None))
    if not isinstance(mask, torch.Tensor):
        return None
    if mask.dim() == 2:
        return mask[:, -T:] > 0
    if mask.dim() != 4:
        return None
    allowed = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2  # [B, 1, t, S]
    return allowed[:, 0].any(dim=1)[:, -T:]


def prompt_positions(B: int, T: int, positions: torch.Tensor | None, visible: torch.Tensor | None,
                     device: Any = None) -> torch.Tensor:
    """The positions ``[B, T]`` (float 0/1) a row's prompt signal averages: seen (``visible`` ``[B, T]``), in the
    run of ``positions`` (``[T]`` or ``[B, T]``; default ``0..T-1``) that counts up from the row's first seen
    token, and not absolute position 0 (BOS). A row left with nothing keeps all its seen tokens.

    Examples:
        >>> prompt_positions(1, 4, torch.tensor([0, 1, 2, 1]), None).tolist()  # a packed continuation at the end
        [[0.0, 1.0, 1.0, 0.0]]
        >>> prompt_positions(2, 4, torch.tensor([[0, 0, 0, 1], [0, 1, 2, 3]]),  # left padding: row 0 is 2 tokens
        ...                  torch.tensor([[0, 0, 1, 1], [1, 0, 1, 1]]).bool()).tolist()  # a hole in row 1
        [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
    """
    idx = torch.arange(T, device=device)
    pos = idx if positions is None else positions.to(device)
    pos = pos.expand(B, T) if pos.dim() == 1 or pos.shape[0] == 1 else pos  # [B, T]
    seen = torch.ones(B, T, dtype=torch.bool, device=device) if visible is None else visible.to(device).expand(B, T)
    start = seen.int().argmax(1, keepdim=True)  # [B, 1]: the first seen token
    run = (pos - pos.gather(1, start) == idx - start) & (idx >= start)  # [B, T]
    keep = run & seen & (pos > 0)
    keep = torch.where(keep.any(1, keepdim=True), keep, seen)
    return keep.float()


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

    def signal(self, hidden: torch.Tensor, positions: torch.Tensor | None = None,
               visible: torch.Tensor | None = None) -> torch.Tensor:
        """Harmfulness signal of each row: mean over its prompt's positions of ``cos(h_t, c)``. hidden ``[B, T, d]``
        → ``[B]``.

        Each row's prompt is what :func:`prompt_positions` keeps: the tokens it sees (``visible`` ``[B, T]``:
        left padding and masked-out tokens are not part of it), the run of ``positions`` (``[T]`` or ``[B, T]``,
        the absolute positions fed) that counts up from its first seen token (continuations packed after it
        restart their count and are left out), without absolute position 0 (BOS, the same in every prompt)."""
        B, T = hidden.shape[:2]
        keep = prompt_positions(B, T, positions, visible, hidden.device)  # [B, T]
        h = hidden.float()
        cos = (h @ self.condition.to(h.device)) / h.norm(dim=-1).clamp_min(1e-6)  # [B, T]
        return (cos * keep).sum(1) / keep.sum(1)

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

        def mask_in(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
            state["visible"] = mask  # the model's own argument: [B, S] 0/1, a 4-D mask, or a dict of them

        def read(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output  # [B, T, d]
            if hidden.shape[1] == 1 and state.get("fire") is not None and len(state["fire"]) == hidden.shape[0]:
                state["fresh"] = False  # a cached generation step: keep the prompt's decision
                return
            visible = seen_keys(state.get("visible"), hidden.shape[1])  # [B, T] or None
            state["signal"] = self.signal(hidden, kwargs.get("position_ids"), visible)
            state["fire"] = state["signal"] > self.threshold  # [B]
            state["fresh"] = True

        def write(module: Any, inputs: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            fire = state.get("fire")
            if fire is None or len(fire) != hidden.shape[0] or not bool(fire.any()):
                return None
            hidden = self.steer(hidden, fire)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return [(lm.model, "forward_pre_kw", mask_in), (layers[self.condition_layer], "forward_kw", read),
                (layers[self.behaviour_layer], "forward", write)]


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

