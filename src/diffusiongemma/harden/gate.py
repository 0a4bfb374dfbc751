"""The harm gate: a linear condition on the residual stream that decides, prompt by prompt, whether a patch acts
(conditional activation steering's condition, Lee et al. 2024; also what makes the gated LoRA patch conditional).

The gate reads layer ``layer``'s output: a prompt's signal is the mean over its own tokens of ``cos(h_t, c)``
(``c`` unit); the gate fires when the signal exceeds ``threshold``. A row's own tokens are those it sees — left
padding and masked-out tokens are left out (:func:`prompt_positions`) — so a batch decides each row as if it were
alone, and a mask with a hole decides as the prompt without that token. During generation with a KV cache a
one-token step keeps the decision taken on its prompt.

Examples:
    >>> import torch
    >>> g = Gate(torch.tensor([1.0, 0.0]), layer=0, threshold=0.5)
    >>> h = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.1]]])  # [B=1, T=3, d=2]
    >>> g.signal(h)  # mean cos over positions 1..T-1 (position 0 is BOS)
    tensor([0.9975])
    >>> g.signal(h, positions=torch.tensor([0, 1, 1]))  # a packed continuation restarts at 1: left out
    tensor([1.])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ModelLoadError

__all__ = ["Gate", "prompt_positions", "seen_keys"]


@dataclass
class Gate:
    """Fires on a prompt when the mean cosine of its tokens' residual stream at ``layer`` with ``vector`` exceeds
    ``threshold``."""

    vector: torch.Tensor  # [d], unit (normalised on creation unless it already is, to the last bit)
    layer: int
    threshold: float

    def __post_init__(self) -> None:
        if self.vector.dim() != 1:
            raise ModelLoadError("a gate's condition is one vector [d]")
        norm = float(self.vector.float().norm())
        self.vector = self.vector.float() / (norm if abs(norm - 1.0) > 1e-6 else 1.0)

    def signal(self, hidden: torch.Tensor, positions: torch.Tensor | None = None,
               visible: torch.Tensor | None = None) -> torch.Tensor:
        """Each row's signal ``[B]`` from hidden ``[B, T, d]``: the mean of ``cos(h_t, c)`` over the positions
        :func:`prompt_positions` keeps (``positions`` ``[T]`` or ``[B, T]`` fed, ``visible`` ``[B, T]`` seen)."""
        B, T = hidden.shape[:2]
        keep = prompt_positions(B, T, positions, visible, hidden.device)  # [B, T]
        h = hidden.float()
        cos = (h @ self.vector.to(h.device)) / h.norm(dim=-1).clamp_min(1e-6)  # [B, T]
        return (cos * keep).sum(1) / keep.sum(1)

    def check(self, lm: Any) -> None:
        """A clear error when the gate does not fit ``lm`` (its width, its layers)."""
        if not self.layer < len(lm.layers) or self.vector.shape[0] != lm.model.config.hidden_size:
            raise ModelLoadError(f"the patch's gate (d={self.vector.shape[0]}, layer {self.layer}) does not fit this "
                                 f"model (d={lm.model.config.hidden_size}, {len(lm.layers)} layers)")

    def hooks(self, lm: Any, state: dict[str, Any]) -> list[tuple[Any, str, Any]]:
        """Hooks (for :func:`~diffusiongemma.models.hooks.scoped_hooks`) that put the decision of each forward in
        ``state``: ``"fire"`` ``[B]`` bool, ``"signal"`` ``[B]``, ``"fresh"`` (False on a cached generation step,
        which keeps its prompt's decision)."""
        self.check(lm)

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

        return [(lm.model, "forward_pre_kw", mask_in), (lm.layers[self.layer], "forward_kw", read)]


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
