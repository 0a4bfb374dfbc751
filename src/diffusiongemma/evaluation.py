"""Batched evaluation of masked prompts: one forward per chunk of masks, logits only at target positions,
and the prefix shared by every mask computed once (KV cache).

Where the target is read matters under ``remove``: when the last prompt token is removed, deletion would
predict the first target token from the last *kept* token, so that is where each row is read. A scoped
pre-hook on the LM head gathers each row's read positions from its input, so the head (262k-word
vocabulary for Gemma) runs only there.

Examples:
    >>> from diffusiongemma import Game
    >>> from diffusiongemma.models.tiny import example_model
    >>> game = Game("The river bank was muddy", " and", model=example_model())  # builds its PromptEvaluator
    >>> game.evaluator(torch.ones(4, game.n, dtype=torch.long)).shape  # one value per mask row
    torch.Size([4])
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from .errors import InputError
from .checkpointing import checkpointed
from .packing import tree_layout, tree_mask
from .masking import MaskOperator, compact_rows, keep_matrix
from .relaxation import embedding_interpolation, soft_attention_mask, soft_read_weights
from .editing import TextEdits
from .models import PrefixCache
from .models.hooks import hook_count
from .prompts import RenderedPrompt
from .stacking import Rows
from .targets import BoundTarget
from .validation import check_finite

__all__ = ["PromptEvaluator"]


class PromptEvaluator:
    """Evaluates a bound target on one rendered prompt under batches of unit masks."""

    def __init__(self, lm: Any, rendered: RenderedPrompt, bound: BoundTarget, operator: MaskOperator,
                 token_unit: torch.Tensor, batch_size: int | None = None, edits: TextEdits | None = None,
                 cache_prefix: bool = True) -> None:
        self.lm = lm
        self.model = lm.model
        self.device = lm.device
        self.bound = bound
        self.operator = operator
        self.prompt_ids = torch.tensor(rendered.input_ids, device=self.device)  # [L]
        self.token_unit = token_unit.to(self.device)  # [L], unit index or -1
        self.batch_size = batch_size  # None: chosen from free memory (see :mod:`diffusiongemma.models.batching`)
        self.edits = edits  # the ``edit`` operator's text edits (see :mod:`diffusiongemma.editing`)
        if operator.name == "edit" and edits is None:
            raise InputError("mask='edit' needs the prompt's text edits (TextEdits)")
        self.compact = True  # remove by compacting rows where that gives the same values (see _compacts)
        unit_at = self.token_unit.clamp(min=0)
        n_units = int(self.token_unit.max()) + 1 if len(self.token_unit) else 0
        first = torch.full((n_units,), len(self.token_unit), dtype=torch.long, device=self.device)
        first.scatter_reduce_(0, unit_at[self.token_unit >= 0],
                              (self.token_unit >= 0).nonzero()[:, 0], reduce="amin")
        self._unit_first = first  # [n]: each unit's first token position (its keep flag)
        self._first_always_kept = len(self.token_unit) > 0 and int(self.token_unit[0]) < 0  # BOS or a marker
        self._auto: dict[tuple[bool, bool], int] = {}
        unit_pos = (self.token_unit >= 0).nonzero()
        self.prefix_len = int(unit_pos[0]) if len(unit_pos) else len(self.prompt_ids)
        # the tokens before the first unit are the same under every mask: their KV cache is computed once
        # (not where hooks change them: the component game)
        self.prefix: PrefixCache | None = (lm.prefix_cache(self.prompt_ids[: self.prefix_len])
                                           if cache_prefix and self.prefix_len >= 2 else None)
        # several continuations: one prefix tree, its index tensors made once (see rows, finish)
        self._layout = tree_layout(bound.continuations)
        L = len(self.prompt_ids)
        self._tree_nodes = torch.tensor(self._layout.tokens, device=self.device, dtype=torch.long)  # [nodes]
        self._tree_reads = torch.tensor([L + r for r in self._layout.reads[1:]], device=self.device,
                                        dtype=torch.long)  # [R - 1]: the nodes read (R 0 is the prompt's end)
        self._tree_slots = [torch.tensor(s, device=self.device) for s in self._layout.slots]  # [k_c] each
        self._tree_tokens = [torch.tensor(c, device=self.device, dtype=torch.long)
                             for c in bound.continuations]  # [k_c] each

    def forward(self, rows: Rows, hooks: Sequence[tuple[Any, str, Any]] = (),
                first_read: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[b, r, V]`` (float32) at the rows' read positions (see
        :meth:`~diffusiongemma.models.ModelAdapter.forward_at`), or a probe's ``[b, 1, 1]``. The prefix cache
        serves when the rows may use it (2-D masks, every row starting with the prefix) and every row is read
        after the prefix (a row whose units are all removed may be read inside it)."""
        prefix = self.prefix
        if prefix is not None and (not rows.cacheable or rows.packed or first_read is not None
                                   or int(rows.read.min()) < prefix.length):  # read.min(): a host sync
            prefix = None
        return self.lm.forward_at(rows.ids, rows.mask, rows.read, positions=rows.positions, prefix=prefix,
                                  hooks=hooks, first_read=first_read, probe=self.bound.probe)

    def read_at(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Which tokens are present ``[b, L]`` (bool) and where the first target token is read ``[b]``: under
        remove, at the last token still present (BOS always is); under replace every token is present."""
        L = keep.shape[1]
        present = keep > 0 if self.operator.name in ("remove", "edit") else torch.ones_like(keep, dtype=torch.bool)
        last_kept = (present * torch.arange(L, device=self.device)).amax(1)  # [b]
        probe = self.bound.probe
        if probe is not None:  # the last kept token at or before the probe's position
            at = probe.position % L
            last_kept = (present[:, : at + 1] * torch.arange(at + 1, device=self.device)).amax(1)  # [b]
        return present, last_kept

    def rows(self, keep: torch.Tensor) -> list[Rows]:
        """The forwards (one per continuation, or one packed) for token keep flags ``[b, L]`` of 0/1."""
        if self.operator.name == "edit":
            return self._edit_rows(keep)
        ids, attn = self.operator.apply(self.prompt_ids, keep.long())  # [b, L]
        present, last_kept = self.read_at(keep)
        b, L = ids.shape
        if self._packs:  # every continuation in one forward, as a prefix tree
            full_ids = torch.cat([ids, self._tree_nodes.expand(b, -1)], dim=1)  # [b, L + nodes]
            tree, tree_pos = tree_mask(present, self._layout, self.model.config, self.model.dtype)
            read = torch.cat([last_kept[:, None], self._tree_reads.expand(b, -1)], dim=1)  # [b, R]
            return [Rows(full_ids, tree, read, tree_pos, packed=True)]
        rows = []
        for cont in self.bound.continuations:
            tail = torch.tensor(cont[:-1], device=self.device, dtype=ids.dtype)  # teacher-forced part
            full_ids = torch.cat([ids, tail.expand(b, -1)], dim=1)  # [b, L + k - 1]
            after = torch.arange(L, L + len(tail), device=self.device).expand(b, -1)
            read = torch.cat([last_kept[:, None], after], dim=1)  # [b, max(k, 1)]
            mask = torch.cat([attn, torch.ones_like(tail).expand(b, -1)], dim=1)  # [b, L + k - 1]
            positions: torch.Tensor | None = None
            if self._compacts(full_ids.shape[1]):  # the same values, plain causal attention
                full_ids, positions, read = compact_rows(full_ids, mask, read)
                mask = torch.ones_like(full_ids)
            rows.append(Rows(full_ids, mask, read, positions))
        return rows

    def _edit_rows(self, keep: torch.Tensor) -> list[Rows]:
        """Rows of the edited, re-tokenised texts (the ``edit`` operator) for token keep flags ``[b, L]``.

        One continuation: each row is its edited prompt and the teacher-forced tail, padded on the right
        (plain causal attention: nothing real sees the padding). Several: the edited prompts padded on the
        left (hidden keys) with position ids counted from each row's first real token, then the prefix tree."""
        assert self.edits is not None
        masks = keep[:, self._unit_first]  # [b, n]
        seqs = self.edits.ids(masks.cpu())
        lens = torch.tensor([len(s) for s in seqs], device=self.device)  # [b]
        b, width = len(seqs), int(lens.max())
        pad = self.lm.tokenizer.pad_token_id or 0
        P = self.prefix_len
        head = self.prompt_ids[:P].tolist()
        cacheable = P >= 2 and all(s[:P] == head for s in seqs)
        last = self._edited_read(lens)  # [b]
        if self._packs:
            ids = pad_sequence([torch.tensor(s) for s in seqs], batch_first=True, padding_value=pad,
                               padding_side="left").to(self.device)  # [b, width]
            present = torch.arange(width, device=self.device)[None] >= (width - lens)[:, None]  # [b, width]
            full_ids = torch.cat([ids, self._tree_nodes.expand(b, -1)], dim=1)  # [b, width + nodes]
            mask, pos = tree_mask(present, self._layout, self.model.config, self.model.dtype)
            shift = (width - lens)[:, None]  # [b, 1]
            positions = (pos[None] - shift).clamp(min=0)  # [b, T]: each row's real tokens from 0
            reads = torch.tensor(self._layout.reads[1:], device=self.device, dtype=torch.long)  # [R - 1]
            read = torch.cat([(last + width - lens)[:, None], (width + reads).expand(b, -1)], dim=1)  # [b, R]
            return [Rows(full_ids, mask, read, positions, packed=True, cacheable=False)]
        rows = []
        for cont in self.bound.continuations:
            tail = list(cont[:-1])  # teacher-forced part
            ids = pad_sequence([torch.tensor(s + tail) for s in seqs], batch_first=True,
                               padding_value=pad).to(self.device)  # [b, width + k - 1]
            after = lens[:, None] + torch.arange(len(tail), device=self.device)[None]  # [b, k - 1]
            read = torch.cat([last[:, None], after], dim=1)  # [b, max(k, 1)]
            rows.append(Rows(ids, torch.ones_like(ids), read, None, cacheable=cacheable))
        return rows

    def _edited_read(self, lens: torch.Tensor) -> torch.Tensor:
        """Where each edited row ``[b]`` of ``lens`` tokens is first read: its last token, or a probe's position
        counted from the row's end (a negative position: as on any prompt sent) or its start (a position before
        the first unit, which no edit moves)."""
        probe = self.bound.probe
        if probe is None:
            return lens - 1
        if probe.position < 0:
            return (lens + probe.position).clamp(min=0)
        if probe.position < self.prefix_len:
            return torch.full_like(lens, probe.position)
        raise InputError(f"a probe read at position {probe.position}, inside the edited text, has no fixed place "
                         "in an edited prompt; use a position counted from the end, or mask='remove'")

    def finish(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """Target values ``[b]`` from the logits ``[b, r, V]`` of each of :meth:`rows`'s forwards."""
        if not self._packs:
            return self.bound.combine(logits)
        (packed,) = logits  # [b, R, V]: the prefix tree's distinct read positions
        if self.bound.from_logprobs is None:
            return self.bound.combine([packed[:, s] for s in self._tree_slots])  # [b, k_c, V] each
        logp = torch.log_softmax(packed, dim=-1)  # [b, R, V], float32
        # token j of continuation c is read at slot s[j]: picked directly, [b, k_c], no [b, k_c, V] copies
        return self.bound.from_logprobs([logp[:, s, t] for s, t in zip(self._tree_slots, self._tree_tokens)])

    def values(self, keep: torch.Tensor) -> torch.Tensor:
        """Target values ``[b]`` for token keep flags ``[b, L]`` of 0/1."""
        return self.finish([self.forward(r) for r in self.rows(keep)])

    def _soft_values(self, keep: torch.Tensor) -> torch.Tensor:
        """Relaxed target values ``[b]`` for keep levels ``[b, L]`` in [0, 1]: the relaxation acts on embeddings
        (replace) or attention (remove), never on the ids. Several continuations under ``remove`` go through
        one packed forward (the prefix tree, soft key biases on the prompt's keys)."""
        b, L = keep.shape
        ids = self.prompt_ids.unsqueeze(0).expand(b, -1)  # [b, L]
        _, last_kept = self.read_at(keep)
        probe = self.bound.probe
        at = L - 1 if probe is None else probe.position % L
        upto = torch.cat([keep[:, : at + 1], torch.zeros_like(keep[:, at + 1:])], 1)  # [b, L]
        if self._packs and self.operator.name != "replace":
            full_ids = torch.cat([ids, self._tree_nodes.expand(b, -1)], dim=1)  # [b, L + nodes]
            mask, positions = tree_mask(keep, self._layout, self.model.config, self.model.dtype)
            read = torch.cat([last_kept[:, None], self._tree_reads.expand(b, -1)], dim=1)  # [b, R]
            packed_first = soft_read_weights(torch.cat([upto, keep.new_zeros(b, len(self._layout.tokens))], dim=1))
            return self.finish([self.forward(Rows(full_ids, mask, read, positions, packed=True),
                                             first_read=packed_first)])
        logits = []
        for cont in self.bound.continuations:
            tail = torch.tensor(cont[:-1], device=self.device, dtype=ids.dtype)  # teacher-forced part
            full_ids = torch.cat([ids, tail.expand(b, -1)], dim=1)  # [b, L + k - 1]
            full_keep = torch.cat([keep, torch.ones(b, len(tail), dtype=keep.dtype, device=self.device)], dim=1)
            after = torch.arange(L, L + len(tail), device=self.device).expand(b, -1)
            read = torch.cat([last_kept[:, None], after], dim=1)  # [b, max(k, 1)]
            hooks: list[tuple[Any, str, Any]] = []
            first: torch.Tensor | None = None
            soft_mask: Any  # [b, T] ones, or a prepared 4-D additive mask
            if self.operator.name == "replace":
                hooks = [(self.lm.embedding, "forward",
                          embedding_interpolation(full_keep, self._baseline_embedding()))]
                soft_mask = torch.ones_like(full_ids)
            else:
                soft_mask = soft_attention_mask(full_keep, self.model.config, self.model.dtype)
                first = soft_read_weights(torch.cat([upto, torch.zeros_like(full_keep[:, L:])], dim=1))
            soft_rows = Rows(full_ids, soft_mask, read, None, cacheable=False)  # soft masks: no row is the prefix's
            logits.append(self.forward(soft_rows, hooks, first))  # [b, k, V]
        return self.bound.combine(logits)

    def _compacts(self, T: int) -> bool:
        """Whether ``remove`` rows of ``T`` tokens go through :func:`~diffusiongemma.masking.compact_rows`:
        unless turned off (``compact = False``), or the model's attention window is shorter than the row
        (a sliding window counts fed positions), or other hooks on the model (an attached patch, say) may
        read the fed positions, or the first token is a unit (a row could then keep nothing to read)."""
        window = getattr(self.model.config, "sliding_window", None)
        return (self.compact and self.operator.name == "remove" and self._first_always_kept
                and (not window or T <= window) and hook_count(self.model) == 0)

    @property
    def _packs(self) -> bool:
        """Several continuations go through one packed forward (see :mod:`diffusiongemma.packing`)."""
        return len(self.bound.continuations) > 1

    def _baseline_embedding(self) -> torch.Tensor:
        """The baseline token's embedding ``[d]`` as the embedding module outputs it (scaling included)."""
        with torch.no_grad():
            baseline = self.operator.baseline_id
            assert baseline is not None  # mask="replace" always has one (masking.mask_operator)
            return self.lm.embedding(torch.tensor([[baseline]], device=self.device))[0, 0]

    def _check_baseline_embedding(self) -> None:
        with torch.no_grad():
            typical = self.lm.embedding(self.prompt_ids[None])[0].norm(dim=-1).median()
        if self._baseline_embedding().norm() < 1e-3 * typical:
            raise InputError(
                f"the baseline token {self.operator.baseline_id} has a (near) zero embedding; interpolating "
                "towards it is degenerate under RMSNorm, so gradients would be meaningless. Choose another "
                "baseline token (e.g. baseline=' the') or mask='remove'")

    def row_shape(self) -> tuple[int, int]:
        """Tokens fed and positions read per row."""
        reads = [max(len(c), 1) for c in self.bound.continuations]
        tails = len(self._layout.tokens) if self._packs else max(reads) - 1
        return len(self.prompt_ids) + tails, len(self._layout.reads) if self._packs else max(reads)

    def rows_per_forward(self, backward: bool = False, checkpointed: bool = True) -> int:
        """Rows per forward: the user's ``batch_size``, else as many as the free memory holds for this
        prompt's length and read positions (V-wide logits at each); with a backward pass, with or without the
        decoder layers checkpointed."""
        if self.batch_size:
            return self.batch_size
        key = (backward, checkpointed)
        if key not in self._auto:
            seq_len, reads = self.row_shape()
            self._auto[key] = self.lm.rows_per_forward(seq_len, reads, backward=backward, checkpointed=checkpointed)
        return self._auto[key]

    @torch.no_grad()
    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """Target values ``[B]`` (float64, CPU) for unit masks ``[B, n]`` of 0/1."""
        masks = masks.to(self.device).long()
        step = self.rows_per_forward()
        values = [self.values(keep_matrix(self.token_unit, masks[lo: lo + step])).double()
                  for lo in range(0, masks.shape[0], step)]  # stays on the device: one host copy per call
        return check_finite(torch.cat(values).cpu())

    def value_and_grad(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Values ``[B]`` and gradients ``[B, n]`` of the relaxed target at soft masks ``[B, n]`` in [0, 1]
        (one forward and one backward per chunk of rows)."""
        masks = masks.to(self.device, self.model.dtype)
        if self.operator.name == "replace":
            self._check_baseline_embedding()
        values, grads = [], []
        step = self.rows_per_forward(backward=True)
        for lo in range(0, masks.shape[0], step):
            m = masks[lo: lo + step].clone().requires_grad_(True)  # [b, n]
            with torch.enable_grad(), checkpointed(self.lm.layers):  # one layer's activations at a time
                v = self._soft_values(keep_matrix(self.token_unit, m))  # [b]
                (g,) = torch.autograd.grad(v.sum(), m)  # rows are independent: row r's gradient is g[r]
            values.append(v.detach().double().cpu())
            grads.append(g.double().cpu())
        return check_finite(torch.cat(values)), check_finite(torch.cat(grads))

