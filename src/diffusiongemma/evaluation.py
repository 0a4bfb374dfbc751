"""Batched evaluation of masked prompts: one forward per chunk of masks, logits only at target positions,
and the prefix shared by every mask computed once (KV cache).

Where the target is read matters under ``remove``: when the last prompt token is removed, deletion would
predict the first target token from the last *kept* token, so that is where each row is read. A scoped
hook on the final norm gathers each row's read positions before the LM head, so the head (262k-word
vocabulary for Gemma) runs only there.

Example:
    >>> ev = PromptEvaluator(lm, rendered, bound, operator, token_unit)  # doctest: +SKIP
    >>> ev(torch.ones(4, n, dtype=torch.long)).shape  # doctest: +SKIP
    torch.Size([4])
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from .errors import NumericalError
from .masking import MaskOperator, keep_matrix, scoped_hooks
from .prompts import RenderedPrompt
from .targets import BoundTarget

__all__ = ["PromptEvaluator"]

_LOGIT_BUDGET = 256  # rows × positions of [*, V] logits materialised at once (262k vocab: ~256 MB)


def _cache_kwarg(model: Any) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class PromptEvaluator:
    """Evaluates a bound target on one rendered prompt under batches of unit masks."""

    def __init__(self, lm: Any, rendered: RenderedPrompt, bound: BoundTarget, operator: MaskOperator,
                 token_unit: torch.Tensor, batch_size: int | None = None) -> None:
        self.lm = lm
        self.model = lm.model
        self.device = lm.device
        self.bound = bound
        self.operator = operator
        self.prompt_ids = torch.tensor(rendered.input_ids, device=self.device)  # [L]
        self.token_unit = token_unit.to(self.device)  # [L], unit index or -1
        self.batch_size = batch_size or 64
        unit_pos = (self.token_unit >= 0).nonzero()
        self.prefix_len = int(unit_pos[0]) if len(unit_pos) else len(self.prompt_ids)
        self._cache_kw = _cache_kwarg(self.model)
        self._prefix_cache: Any = None

    def _prefix(self) -> Any:
        """KV cache of the positions before the first unit token (the same under every mask)."""
        if self._prefix_cache is None and self.prefix_len >= 2:
            with torch.no_grad():
                out = self.model(input_ids=self.prompt_ids[None, : self.prefix_len], use_cache=True)
            self._prefix_cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
        return self._prefix_cache

    def _forward(self, ids: torch.Tensor, attn: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        """ids, attn ``[b, T]``, read positions ``[b, r]`` → logits ``[b, r, V]`` (float32)."""
        b, T = ids.shape
        positions = torch.arange(T, device=self.device).unsqueeze(0).expand(b, -1)  # [b, T]
        kwargs: dict[str, Any] = {"logits_to_keep": 0, "use_cache": False}
        # the prefix cache serves only when every row is read after the prefix (a row whose units are all
        # removed may be read at a prefix position)
        cache = self._prefix() if int(read.min()) >= self.prefix_len else None
        start = 0
        if cache is not None:
            start = self.prefix_len
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(b)
            kwargs.update({self._cache_kw: batch_cache, "use_cache": True})
        index = (read - start).unsqueeze(-1)  # [b, r, 1], relative to the fed positions

        def gather(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return output.gather(1, index.expand(-1, -1, output.shape[-1]))  # [b, r, d]

        norm = self.model.get_submodule(self.lm.architecture.final_norm)
        with scoped_hooks([(norm, "forward", gather)]):
            out = self.model(input_ids=ids[:, start:], attention_mask=attn, position_ids=positions[:, start:],
                             **kwargs)
        return out.logits.float()

    @torch.no_grad()
    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """Target values ``[B]`` (float64, CPU) for unit masks ``[B, n]`` of 0/1."""
        masks = masks.to(self.device).long()
        longest = max(max(len(c), 1) for c in self.bound.continuations)
        chunk = max(1, min(self.batch_size, _LOGIT_BUDGET // longest))
        values = []
        for lo in range(0, masks.shape[0], chunk):
            keep = keep_matrix(self.token_unit, masks[lo: lo + chunk])  # [b, L]
            ids, attn = self.operator.apply(self.prompt_ids, keep)  # [b, L]
            L = ids.shape[1]
            last_kept = (attn * torch.arange(L, device=self.device)).amax(1)  # [b], BOS is always kept
            logits = []
            for cont in self.bound.continuations:
                tail = torch.tensor(cont[:-1], device=self.device, dtype=ids.dtype)  # teacher-forced part
                full_ids = torch.cat([ids, tail.expand(ids.shape[0], -1)], dim=1)  # [b, L + k - 1]
                full_attn = torch.cat([attn, torch.ones_like(tail).expand(ids.shape[0], -1)], dim=1)
                after = torch.arange(L, L + len(tail), device=self.device).expand(ids.shape[0], -1)
                read = torch.cat([last_kept[:, None], after], dim=1)  # [b, max(k, 1)]
                logits.append(self._forward(full_ids, full_attn, read))  # [b, k, V]
            values.append(self.bound.combine(logits).double().cpu())
        result = torch.cat(values)  # [B]
        if not torch.isfinite(result).all():
            raise NumericalError(
                f"the model returned non-finite target values for {int((~torch.isfinite(result)).sum())} of "
                f"{len(result)} masks (NaN or inf in the logits); try dtype float32"
            )
        return result
