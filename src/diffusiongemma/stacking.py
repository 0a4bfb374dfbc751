"""Several prompts' masks in one forward: each prompt's masked rows (see
:meth:`~diffusiongemma.evaluation.PromptEvaluator.rows`) padded to the longest and stacked, so an
accelerator sees one large batch during a batch audit instead of one small batch per prompt.

Where every stacked prompt starts with the same cached prefix (the chat template's opening, a system
prompt), its KV cache is computed once and serves every row. Padding never changes a value: padded tokens come after every real token of their row, so under causal
attention no real token sees them (a prepared 4-D mask hides them outright), they take fresh position ids,
and their logits are never read. Each prompt's logits go back to its own evaluator, which turns them into
its target's values as it would alone.

Examples:
    >>> import torch
    >>> a = Rows(torch.tensor([[5, 6, 7]]), torch.ones(1, 3), torch.tensor([[2]]), None)
    >>> b = Rows(torch.tensor([[8, 9]]), torch.ones(1, 2), torch.tensor([[1]]), None)
    >>> both = stack_rows([a, b])
    >>> both.ids.tolist(), both.positions.tolist(), both.read.tolist()
    ([[5, 6, 7], [8, 9, 0]], [[0, 1, 2], [0, 1, 2]], [[2], [1]])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from .validation import check_finite

__all__ = ["Rows", "stack_rows", "evaluate_together"]


@dataclass
class Rows:
    """One forward's masked rows before the model: what is fed and where the target is read."""

    ids: torch.Tensor  # [b, T]
    mask: Any  # [b, T] 0/1, or an additive [b, 1, T, T] (a dict of them by attention type) when packed
    read: torch.Tensor  # [b, r]
    positions: torch.Tensor | None  # [T] or [b, T]; None: 0..T-1
    packed: bool = False  # a prepared 4-D mask
    cacheable: bool = True  # every row starts with its evaluator's cached prefix (edited rows may not)

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])


def _pad_right(x: torch.Tensor, T: int, value: float | int) -> torch.Tensor:
    """``[b, t]`` → ``[b, T]`` with ``value`` after the end."""
    return torch.cat([x, x.new_full((x.shape[0], T - x.shape[1]), value)], dim=1)


def _pad_square(mask: torch.Tensor, T: int) -> torch.Tensor:
    """An additive ``[b, 1, t, t]`` mask → ``[b, 1, T, T]``: padded keys hidden from every query, each padded
    query seeing only itself (no row without a key)."""
    b, _, t, _ = mask.shape
    neg = torch.finfo(mask.dtype).min
    out = mask.new_full((b, 1, T, T), neg)
    out[:, :, :t, :t] = mask
    pad = torch.arange(t, T, device=mask.device)
    out[:, :, pad, pad] = 0
    return out


def stack_rows(parts: list[Rows]) -> Rows:
    """The parts' rows in one batch, padded on the right to the longest row and the most read positions
    (a padded read repeats the row's last one). All parts are packed (4-D masks) or none is."""
    T = max(p.ids.shape[1] for p in parts)
    r = max(p.read.shape[1] for p in parts)
    ids: list[torch.Tensor] = []
    reads: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    masks: list[Any] = []  # [b, T] tensors, or dicts of them (packed rows with several masks)
    for p in parts:
        b, t = p.ids.shape
        pos = torch.arange(t, device=p.ids.device) if p.positions is None else p.positions
        pos = pos.expand(b, -1)  # [b, t]
        fresh = torch.arange(t, T, device=p.ids.device).expand(b, -1)  # positions no real token has
        positions.append(torch.cat([pos, fresh], dim=1))
        ids.append(_pad_right(p.ids, T, 0))
        reads.append(torch.cat([p.read, p.read[:, -1:].expand(-1, r - p.read.shape[1])], dim=1))
        if p.packed:
            masks.append({k: _pad_square(m, T) for k, m in p.mask.items()} if isinstance(p.mask, dict)
                         else _pad_square(p.mask, T))
        else:  # padding after a causal row is never seen: mark it present, so full rows stay plain causal
            masks.append(_pad_right(p.mask, T, 1))
    if isinstance(masks[0], dict):
        mask: Any = {k: torch.cat([m[k] for m in masks]) for k in masks[0]}
    else:
        mask = torch.cat(masks)
    return Rows(torch.cat(ids), mask, torch.cat(reads), torch.cat(positions), packed=parts[0].packed,
                cacheable=all(p.cacheable for p in parts))


def _segments(sizes: list[int], chunk: int) -> list[list[tuple[int, int, int]]]:
    """Forwards of at most ``chunk`` rows over consecutive parts: each a list of (part, lo, hi)."""
    out: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    room = chunk
    for i, size in enumerate(sizes):
        lo = 0
        while lo < size:
            take = min(room, size - lo)
            cur.append((i, lo, lo + take))
            lo, room = lo + take, room - take
            if room == 0:
                out.append(cur)
                cur, room = [], chunk
    if cur:
        out.append(cur)
    return out


def _can_stack(evaluators: list[Any]) -> bool:
    """Whether these prompt evaluators can share forwards: one model, targets read at the LM head (a
    direction probe stops the forward at its own layer)."""
    first = evaluators[0]
    return all(ev.model is first.model and ev.bound.probe is None for ev in evaluators)


def _shared_prefix_lead(evaluators: list[Any]) -> int | None:
    """The index of an evaluator whose cached prefix (the tokens before its first unit, see
    :attr:`~diffusiongemma.evaluation.PromptEvaluator.prefix`) every other prompt starts with, so one copy
    of its KV cache serves every stacked row (a long system prompt is computed once); None if there is none."""
    lead = min(range(len(evaluators)), key=lambda i: evaluators[i].prefix_len)
    P = evaluators[lead].prefix_len
    head = evaluators[lead].prompt_ids[:P]
    if P < 2 or not all(ev.prefix_len >= P and torch.equal(ev.prompt_ids[:P], head) for ev in evaluators):
        return None
    return lead


def _rows_per_forward(evaluators: list[Any]) -> int:
    """The users' smallest ``batch_size``, else what fits the longest row with the most read positions."""
    fixed = [ev.batch_size for ev in evaluators if ev.batch_size]
    if fixed:
        return min(fixed)
    shapes = [ev.row_shape() for ev in evaluators]
    return evaluators[0].lm.rows_per_forward(max(s for s, _ in shapes), max(r for _, r in shapes))


@torch.no_grad()
def evaluate_together(evaluators: list[Any], masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Target values (float64, CPU; ``[B_i]`` each) of several prompts' evaluators for their unit masks
    (``[B_i, n_i]`` each), their rows stacked in shared forwards (the values each evaluator gives alone, up
    to floating-point rounding). Evaluators that cannot stack (:func:`_can_stack`) go one by one.

    Examples:
        >>> from diffusiongemma import Game
        >>> from diffusiongemma.models.tiny import example_model
        >>> lm = example_model()
        >>> a, b = Game("Paris is the capital of", " France", model=lm), Game("Rome is in", " Italy", model=lm)
        >>> va, vb = evaluate_together([a.evaluator, b.evaluator], [torch.ones(2, a.n), torch.ones(1, b.n)])
        >>> va.shape, vb.shape, bool(torch.allclose(vb, b.evaluator(torch.ones(1, b.n)).double(), atol=1e-4))
        (torch.Size([2]), torch.Size([1]), True)
    """
    from .masking import keep_matrix

    if len(evaluators) < 2 or not _can_stack(evaluators):
        return [ev(m) for ev, m in zip(evaluators, masks)]
    device = evaluators[0].device
    masks = [m.to(device).long() for m in masks]
    values: list[list[torch.Tensor]] = [[] for _ in evaluators]
    lead = _shared_prefix_lead(evaluators)  # one prefix cache for every stacked row, where they share one
    for segment in _segments([len(m) for m in masks], _rows_per_forward(evaluators)):
        parts = []  # (evaluator index, its Rows)
        for i, lo, hi in segment:
            ev = evaluators[i]
            (rows,) = ev.rows(keep_matrix(ev.token_unit, masks[i][lo:hi]))
            parts.append((i, rows))
        for packed in (False, True):  # 2-D masks and prepared 4-D ones go through separate forwards
            group = [(i, rows) for i, rows in parts if rows.packed == packed]
            if not group:
                continue
            stacked = stack_rows([rows for _, rows in group])
            cached = lead is not None and not packed and stacked.cacheable
            runner = evaluators[lead] if cached else evaluators[group[0][0]]  # type: ignore[index]
            logits = runner.forward(replace(stacked, cacheable=cached))  # [B, r, V]; a shared prefix from its cache
            at = 0
            for i, rows in group:
                part = logits[at: at + rows.rows, : rows.read.shape[1]]  # [b, r_i, V]
                values[i].append(evaluators[i].finish([part]).double())
                at += rows.rows
    return [check_finite(torch.cat(v).cpu()) if v else torch.zeros(0, dtype=torch.float64) for v in values]
