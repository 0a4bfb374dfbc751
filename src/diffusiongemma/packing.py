"""Many continuations of one masked prompt in a single forward: the prompt once, then the continuations'
teacher-forced tokens as a prefix tree — continuations that open alike ("I cannot", "I can't", "I'm sorry")
share the nodes of their common prefix — and a 4-D attention mask in which every node sees the (masked)
prompt and its own ancestors only, never another branch. A node's position is the prompt's length plus its
depth, so each continuation is computed exactly as if it were alone.

A target with many openings (the refusal score teacher-forces 27, 59 read positions) then costs one pass
per mask, and the LM head and the softmax run only at the distinct read positions (17 for those 27).

Examples:
    >>> import torch
    >>> layout = tree_layout([[7, 8, 9], [7, 5], [4]])  # share the node of token 7
    >>> layout.tokens, layout.parents, layout.depths
    ([7, 8], [-1, 0], [0, 1])
    >>> layout.reads, layout.slots  # read at the prompt's end (-1) and after nodes 0 and 1
    ([-1, 0, 1], [[0, 1, 2], [0, 1], [0]])
    >>> mask, pos = tree_mask(torch.tensor([[1, 0, 1]]), layout, None, torch.float32)  # prompt token 1 removed
    >>> pos.tolist()  # the prompt's 0, 1, 2, then each node at 3 + its depth
    [0, 1, 2, 3, 4]
    >>> (mask[0, 0, 4] == 0).tolist()  # node 1 sees prompt tokens 0 and 2, its parent and itself
    [True, False, True, True, True]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .relaxation import key_bias

__all__ = ["TreeLayout", "tree_layout", "tree_mask"]


@dataclass(frozen=True)
class TreeLayout:
    """The prefix tree of teacher-forced continuations.

    ``tokens[i]``, ``parents[i]`` (-1: the prompt) and ``depths[i]`` describe fed node i (a parent always comes
    before its children); ``reads`` lists the distinct read positions (-1: the prompt's last kept token, i: node
    i); ``slots[c][j]`` is the index in ``reads`` where token j of continuation c is read."""

    tokens: list[int]
    parents: list[int]
    depths: list[int]
    reads: list[int]
    slots: list[list[int]]


def tree_layout(continuations: list[list[int]]) -> TreeLayout:
    """Nodes for every proper prefix of the continuations, shared where they agree: the first continuation's
    chain first, then the rest by depth (so the positions fed after the prompt count up along the first
    continuation only, as a hook reading "the prompt's positions" expects)."""
    node_of: dict[tuple[int, ...], int] = {}
    order: list[tuple[int, ...]] = []

    def add(prefix: tuple[int, ...]) -> None:
        if prefix not in node_of:
            node_of[prefix] = len(order)
            order.append(prefix)

    if continuations:
        for j in range(1, len(continuations[0])):
            add(tuple(continuations[0][:j]))
    for depth in range(1, max((len(c) for c in continuations), default=0)):
        for c in continuations[1:]:
            if depth < len(c):
                add(tuple(c[:depth]))
    parents = [node_of[p[:-1]] if len(p) > 1 else -1 for p in order]
    read_nodes = sorted({node_of[tuple(c[:j])] for c in continuations for j in range(1, len(c))})
    reads = [-1] + read_nodes
    index = {r: k for k, r in enumerate(reads)}
    slots = [[0] + [index[node_of[tuple(c[:j])]] for j in range(1, len(c))] for c in continuations]
    return TreeLayout([p[-1] for p in order], parents, [len(p) - 1 for p in order], reads, slots)


def _allowed(L: int, parents: list[int], depths: list[int], device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean structure ``[T, T]`` (query, key) and positions ``[T]`` for a prompt of L tokens and the nodes."""
    N = len(parents)
    T = L + N
    allowed = torch.zeros(T, T, dtype=torch.bool)
    allowed[:L, :L] = torch.ones(L, L, dtype=torch.bool).tril()
    allowed[L:, :L] = True  # every node sees the prompt
    for i, p in enumerate(parents):  # and its ancestors and itself
        if p >= 0:
            allowed[L + i, L:] = allowed[L + p, L:]
        allowed[L + i, L + i] = True
    pos = torch.cat([torch.arange(L), L + torch.tensor(depths, dtype=torch.long)]) if N else torch.arange(L)
    return allowed.to(device), pos.to(device)


def tree_mask(keep: torch.Tensor, layout: TreeLayout, config: Any, dtype: torch.dtype
              ) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor]:
    """The additive 4-D mask ``[B, 1, T, T]`` (a dict by attention type for sliding-window models) and the
    position ids ``[T]`` for prompt keep flags ``[B, L]`` followed by the layout's nodes. Flags of 0/1 (bool,
    integer) make a removed prompt token a hole for every query; float keep levels in [0, 1] give each prompt
    key the bias ``log k`` (the ``remove`` relaxation of :mod:`diffusiongemma.relaxation`), differentiably.

    Examples:
        >>> layout = tree_layout([[7, 8], [4]])
        >>> mask, _ = tree_mask(torch.tensor([[1.0, 0.5]]), layout, None, torch.float32)
        >>> round(float(mask[0, 0, 2, 1]), 4)  # the node sees prompt token 1 at half weight: log ½
        -0.6931
    """
    b, L = keep.shape
    allowed, pos = _allowed(L, layout.parents, layout.depths, keep.device)
    T = allowed.shape[0]
    neg = torch.finfo(dtype).min
    keys = torch.cat([key_bias(keep, dtype), torch.zeros(b, T - L, dtype=dtype, device=keep.device)], dim=1)  # [B, T]

    def build(window: int | None) -> torch.Tensor:
        ok = allowed
        if window is not None:
            ok = ok & (pos[:, None] - pos[None, :] < window)
        return torch.where(ok[None], keys[:, None, :],
                           torch.full((), neg, dtype=dtype, device=keep.device))[:, None]  # [B, 1, T, T]

    layer_types = getattr(config, "layer_types", None)
    if not layer_types:
        return build(None), pos
    window = getattr(config, "sliding_window", None)
    return {kind: build(window if "sliding" in kind else None) for kind in set(layer_types)}, pos
