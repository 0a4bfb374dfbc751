"""Mask operators on prompt tokens, (scoped interventions: :mod:`diffusiongemma.models.hooks`).

A mask ``m ∈ {0,1}^n`` over units becomes a keep matrix over token positions; an operator turns that into
model inputs:

* ``remove``: the token is dropped from attention (attention-mask hole); every other position keeps its
  original position id, so this equals deleting the token with the original positions kept. Where nothing
  else hooks the model, the evaluator does the same without holes (:func:`compact_rows`).
* ``replace``: the token id is replaced by a baseline token (the pad token by default).
* ``edit`` (the default for text units): the units' text is deleted and the prompt tokenised again, exactly
  what an auditor's edit sends (see :mod:`diffusiongemma.editing`); the gradient method relaxes it as
  ``remove``.

Examples:
    >>> import torch
    >>> token_unit = torch.tensor([-1, 0, 0, 1])  # BOS, unit 0 (two tokens), unit 1
    >>> keep_matrix(token_unit, torch.tensor([[1, 0], [0, 1]]))
    tensor([[1, 1, 1, 0],
            [1, 0, 0, 1]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .errors import InputError

__all__ = ["MASK_OPERATORS", "MaskOperator", "keep_matrix", "mask_operator", "compact_rows"]


def keep_matrix(token_unit: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Token-level keep flags ``[B, L]`` from unit masks ``[B, n]`` (0/1, or soft levels in [0, 1]); tokens
    of no unit (-1) are kept.

    Examples:
        >>> keep_matrix(torch.tensor([-1, 0, 0, 1]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])).tolist()
        [[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
    """
    gathered = masks[:, token_unit.clamp(min=0)]  # [B, L]
    return torch.where(token_unit >= 0, gathered, torch.ones_like(gathered))


def compact_rows(ids: torch.Tensor, keep: torch.Tensor,
                 read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``remove`` without attention-mask holes: each row's kept tokens moved to the front, in order, with
    their original positions; the removed ones go after them, where a causal model's kept tokens never see
    them (they are computed and never read). An accelerator then runs plain causal attention, twice as fast
    as attention with a mask. Needs every read position to be a kept token, and a model whose attention
    window (if any) covers the whole row.

    ids ``[B, T]``, keep ``[B, T]`` (0/1), read positions ``[B, r]`` → (ids ``[B, T]``, position ids ``[B, T]``,
    read positions ``[B, r]`` in the compacted rows).

    Examples:
        >>> ids, pos, read = compact_rows(torch.tensor([[5, 6, 7, 8]]), torch.tensor([[1, 0, 1, 1]]),
        ...                               torch.tensor([[2, 3]]))
        >>> ids.tolist(), pos.tolist(), read.tolist()
        ([[5, 7, 8, 6]], [[0, 2, 3, 1]], [[1, 2]])
    """
    order = torch.argsort(1 - keep.long(), dim=1, stable=True)  # [B, T]: kept first, each group in order
    new_index = keep.long().cumsum(1) - 1  # [B, T]: where each kept token lands
    return ids.gather(1, order), order, new_index.gather(1, read)


@dataclass(frozen=True)
class MaskOperator:
    """How removed tokens are presented to the model."""

    name: str
    baseline_id: int | None = None  # for "replace"

    def apply(self, input_ids: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (input_ids ``[B, L]``, attention_mask ``[B, L]``) for prompt ids ``[L]`` and keep ``[B, L]``."""
        ids = input_ids.unsqueeze(0).expand(keep.shape[0], -1)  # [B, L]
        if self.name == "remove":
            return ids, keep.long()
        baseline = torch.full_like(ids, int(self.baseline_id))  # type: ignore[arg-type]
        return torch.where(keep.bool(), ids, baseline), torch.ones_like(ids)


MASK_OPERATORS = ("edit", "remove", "replace")


def mask_operator(name: str, tokenizer: Any, baseline: str | int | None = None) -> MaskOperator:
    """Build a mask operator by name; ``replace`` takes a baseline token (id or text), default the pad token.

    Examples:
        >>> mask_operator("remove", None).name
        'remove'
    """
    if name in ("remove", "edit"):
        return MaskOperator(name)
    if name != "replace":
        raise InputError(f"unknown mask operator {name!r}; choose edit, remove or replace")
    if baseline is None:
        bid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.unk_token_id
    elif isinstance(baseline, int):
        bid = baseline
    else:
        ids = tokenizer(baseline, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise InputError(f"baseline {baseline!r} is {len(ids)} tokens; it must be exactly one token")
        bid = ids[0]
    if bid is None:
        raise InputError("this tokenizer has no pad or unk token; pass a baseline token for replace")
    return MaskOperator("replace", int(bid))
