"""Coarse to fine: a tree of units (chat turns → sentences → words → tokens) and the staged diffusion over it.

A spec such as ``"sentences>words"`` or ``"roles>sentences>words"`` names the levels from coarse to fine. The
finest kind's units are the leaves, played in one leaf game; a coarser node is the group of its leaves, masked
together. The budget goes first to the coarsest level (a game of few units: the roots), then stage by stage into the
nodes that carry the mass (largest |score| until ``MASS`` of the total): those are replaced by their children and
the game over the new cut of the tree is estimated again. Values are consistent across levels, as in Owen's
coalition value: a child's estimate from the finer stage is conditioned on its parent's, a node keeps its first
estimate, and at the end every family is made to sum to its parent, parents first (the children's means shifted in
proportion to their variances, the parent's standard error shared among them): a node's score is the sum of its
children's, a node known exactly stays exact, and the efficiency constraint holds.

Examples:
    >>> import numpy as np
    >>> from diffusiongemma.estimators.exact import ValueTable
    >>> tree = UnitTree.from_groups(4, [[[0, 1], [2, 3]]])  # two parents of two leaves each
    >>> z = (np.arange(16)[:, None] >> np.arange(4)) & 1
    >>> r = run_tree(ValueTable(4, z @ np.array([1.0, 2.0, 3.0, 4.0])), tree, "exact", budget=64)
    >>> r.scores.tolist(), [round(r.tree.nodes[k].score, 6) for k in r.tree.roots]
    ([1.0, 2.0, 3.0, 4.0], [3.0, 7.0])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .engine import EngineResult, run
from .errors import InputError
from .units import Unit, build_units

__all__ = ["UnitTree", "Node", "GroupedGame", "TreeResult", "run_tree", "parse_tree_spec", "leaf_kind", "build_tree",
           "plan_units", "MASS", "FLAT_WORDS"]

MASS = 0.8  # a stage refines the nodes holding this share of the total |score| (the largest first)
FLAT_WORDS = 300  # units="auto": words up to this many, a tree above (sentences, or chat turns, then words); on B7's
# role-play jailbreaks of 189 and 210 words flat words beat sentences>words at 64 and 128 evaluations (LDS 0.69–0.72 vs
# 0.50–0.63 on average), so the tree starts where DAN-style templates do


def plan_units(rendered: Any) -> str:
    """The unit spec ``units="auto"`` picks for a rendered prompt: its words while there are at most
    ``FLAT_WORDS``, else sentences then words, under the chat turns when there are several.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> from diffusiongemma.prompts import render_prompt
        >>> tok = example_model().tokenizer
        >>> plan_units(render_prompt("Why is the sky blue?", tok)), plan_units(render_prompt("Why? " * 301, tok))
        ('words', 'sentences>words')
    """
    if len(build_units(rendered, "words")) <= FLAT_WORDS:
        return "words"
    turns = len(build_units(rendered, "roles"))
    return "roles>sentences>words" if turns > 1 else "sentences>words"


def parse_tree_spec(spec: Any) -> list[str] | None:
    """The kinds of a tree spec from coarse to fine, or None for a flat spec.

    Examples:
        >>> parse_tree_spec("roles>sentences>words"), parse_tree_spec("words")
        (['roles', 'sentences', 'words'], None)
    """
    if not isinstance(spec, str) or ">" not in spec:
        return None
    kinds = [k.strip() for k in spec.split(">")]
    if any(not k or k.startswith("spans") for k in kinds):
        raise InputError(f"cannot read the unit tree {spec!r}; write kinds from coarse to fine, e.g. sentences>words")
    return kinds


def leaf_kind(spec: Any) -> Any:
    """The unit kind the leaf game is played on: a tree's finest kind, words for ``"auto"``, else the spec itself.

    Examples:
        >>> leaf_kind("sentences>words"), leaf_kind("auto"), leaf_kind("tokens")
        ('words', 'words', 'tokens')
    """
    kinds = parse_tree_spec(spec)
    return kinds[-1] if kinds else "words" if spec == "auto" else spec


@dataclass
class Node:
    """A node of the unit tree: the leaves it groups, its children (node indices), its estimate."""

    level: int
    leaves: tuple[int, ...]
    children: list[int] = field(default_factory=list)
    unit: Unit | None = None
    score: float = 0.0
    stderr: float = float("inf")
    expanded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "leaves": list(self.leaves), "children": self.children,
                "text": self.unit.text if self.unit else None, "start": self.unit.start if self.unit else None,
                "end": self.unit.end if self.unit else None, "score": self.score,
                "stderr": self.stderr if np.isfinite(self.stderr) else None, "expanded": self.expanded}


@dataclass
class UnitTree:
    """Nodes (roots first, parents before children) over ``n`` leaves; ``roots`` are the coarsest nodes."""

    n: int
    nodes: list[Node]
    roots: list[int]
    kinds: list[str] = field(default_factory=list)

    @classmethod
    def from_groups(cls, n: int, levels: list[list[list[int]]], units: list[Unit] | None = None,
                    kinds: list[str] | None = None) -> "UnitTree":
        """A tree from leaf groups per level, coarse to fine (each level a partition of ``range(n)``; the leaves
        themselves are the last level). A node with one child is merged with it."""
        nodes: list[Node] = []

        def make(leaves: tuple[int, ...], depth: int) -> int:
            finer = next((lv for lv in levels[depth + 1:] if any(len(set(g) & set(leaves)) < len(leaves)
                                                                for g in lv if set(g) & set(leaves))), None)
            k = len(nodes)
            nodes.append(Node(depth, leaves, unit=_merge(units, leaves) if units else None))
            if finer is not None:
                parts = [tuple(sorted(set(g) & set(leaves))) for g in finer if set(g) & set(leaves)]
            elif len(leaves) > 1:
                parts = [(i,) for i in leaves]
            else:
                return k
            nodes[k].children = [make(p, depth + 1) for p in sorted(parts)]
            return k

        roots = [make(tuple(sorted(g)), 0) for g in levels[0]] if levels else [make((i,), 0) for i in range(n)]
        return cls(n, nodes, roots, kinds or [])


def _merge(units: list[Unit], leaves: tuple[int, ...]) -> Unit:
    parts = [units[i] for i in leaves]
    if len(parts) == 1:
        return parts[0]
    start, end = min(u.start for u in parts), max(u.end for u in parts)
    text = f"{parts[0].text} … {parts[-1].text}" if len(parts) > 2 else " ".join(u.text for u in parts)
    return Unit(text, start, end, tuple(sorted(p for u in parts for p in u.positions)), parts[0].role)


def build_tree(rendered: Any, kinds: list[str], leaves: list[Unit] | None = None) -> tuple[list[Unit], UnitTree]:
    """The leaves (units of the finest kind) and the tree over them: each leaf belongs, at every coarser level,
    to the unit holding its first token. ``leaves``: the finest kind's units when already built (a game's).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> from diffusiongemma.prompts import render_prompt
        >>> leaves, tree = build_tree(render_prompt("One two. Three.", example_model().tokenizer), ["sentences", "words"])
        >>> [tree.nodes[r].unit.text for r in tree.roots], [u.text for u in leaves]
        (['One two.', 'Three.'], ['One', 'two.', 'Three.'])
    """
    leaves = leaves if leaves is not None else build_units(rendered, kinds[-1])
    levels = []
    for kind in kinds[:-1]:
        coarse = build_units(rendered, kind)
        owner = {p: k for k, u in enumerate(coarse) for p in u.positions}
        groups: dict[int, list[int]] = {}
        for i, leaf in enumerate(leaves):
            k = owner.get(leaf.positions[0])
            if k is None:  # a leaf the coarser kind does not cover: the coarse unit starting before it
                k = max([j for j, u in enumerate(coarse) if u.start <= leaf.start] or [0])
            groups.setdefault(k, []).append(i)
        levels.append([groups[k] for k in sorted(groups)])
    tree = UnitTree.from_groups(len(leaves), levels, leaves, kinds)
    for node in tree.nodes:  # text of a coarse node: the rendered text it spans
        u = node.unit
        if len(node.leaves) > 1 and u is not None:
            node.unit = Unit(rendered.text[u.start:u.end], u.start, u.end, u.positions, u.role)
    return leaves, tree


class GroupedGame:
    """A game over groups of another game's units (a cut of the unit tree): a group kept keeps all its units.

    Examples:
        >>> import numpy as np
        >>> from diffusiongemma.estimators.exact import ValueTable
        >>> g = GroupedGame(ValueTable(3, np.arange(8.0)), [(0, 1), (2,)])
        >>> g(np.array([[1, 0], [0, 1]])).tolist()  # leaf masks 110 and 001: table rows 3 and 4
        [3.0, 4.0]
    """

    def __init__(self, game: Any, groups: list[tuple[int, ...]], units: list[Unit] | None = None) -> None:
        self.game, self.groups = game, [tuple(g) for g in groups]
        self.owner = np.empty(game.n, dtype=int)
        for k, g in enumerate(self.groups):
            self.owner[list(g)] = k
        self.units = units if units is not None else getattr(game, "units", None)
        self.n = len(self.groups)

    def __getattr__(self, key: str) -> Any:  # rendered, lm, bound, operator, text …: the leaf game's
        return getattr(self.__dict__["game"], key)

    def leaf_masks(self, masks: Any) -> np.ndarray:
        m = np.atleast_2d(np.asarray(masks))
        if m.shape[1] != self.n:
            raise InputError(f"masks must have shape [batch, {self.n}], got {m.shape}")
        return m[:, self.owner]  # [batch, leaves]

    def __call__(self, masks: Any) -> np.ndarray:
        return np.asarray(self.game(self.leaf_masks(masks)), dtype=float)

    def gradient(self, masks: Any) -> tuple[np.ndarray, np.ndarray]:
        values, grads = self.game.gradient(self.leaf_masks(masks).astype(float))
        out = np.zeros((len(grads), self.n))
        np.add.at(out.T, self.owner, np.asarray(grads).T)  # a group's gradient: the sum over its leaves
        return values, out


@dataclass
class TreeResult(EngineResult):
    """The engine's result for the final cut of the tree (``scores`` per unit of ``groups``), and the tree."""

    tree: UnitTree | None = None
    groups: list[int] | None = None  # node index of each final unit


def _stage_budget(left: int, stages_left: int, first: bool, n0: int) -> int:
    if stages_left <= 1:
        return left
    if first:  # enough for the coarse game's estimator, a quarter to a half of the budget (8 at least)
        return int(max(min(max(left // 4, 3 * (n0 + 6) + 2), left // 2), min(left, 8)))
    return left // stages_left


def _condition(mu: np.ndarray, var: np.ndarray, total: float, total_var: float) -> tuple[np.ndarray, np.ndarray]:
    """Children ``mu, var`` conditioned on a noisy observation of their sum (``total`` ± ``total_var``)."""
    var = np.minimum(var, 1e12)
    denom = var.sum() + total_var
    if denom <= 0:
        return mu + (total - mu.sum()) / len(mu), var
    return mu + var * (total - mu.sum()) / denom, np.maximum(var - var ** 2 / denom, 0.0)


def run_tree(game: Any, tree: UnitTree, estimator: Any = "shapley", *, schedule: Any = "shapley", budget: int = 256,
             seed: int = 0, tolerance: float | None = None,
             progress: Callable[[int, int], Any] | None = None) -> TreeResult:
    """Estimate the leaves' (or folded nodes') values coarse to fine (see the module docstring); ``game`` is the
    leaf game. Each stage is one engine run on the game over the current cut of the tree."""
    t0 = time.perf_counter()
    nodes = tree.nodes
    frontier = list(tree.roots)
    while len(frontier) == 1 and nodes[frontier[0]].children:  # one root: nothing to split at that level
        nodes[frontier[0]].expanded = True
        frontier = list(nodes[frontier[0]].children)
    depth = 1 + max(n.level for n in nodes) - min(nodes[k].level for k in frontier)
    left, used, names = budget, 0, []
    first: EngineResult | None = None
    for stage in range(depth):
        expand: set[int] = set()
        if stage > 0:
            expand = _select(nodes, frontier)
            if not expand:
                break
            frontier = [c for k in frontier for c in (nodes[k].children if k in expand else [k])]
            for k in expand:
                nodes[k].expanded = True
        b = _stage_budget(left, depth - stage, stage == 0, len(frontier))
        if stage > 0 and b < 8:
            break
        r = run(GroupedGame(game, [nodes[k].leaves for k in frontier]), estimator, schedule=schedule, budget=b,
                seed=seed + stage, tolerance=tolerance, progress=progress)
        names.append(r.estimator)
        left -= r.evaluations
        used += r.evaluations
        first = first or r
        _combine(nodes, frontier, r, expand)
    if first is None:  # the first stage always runs (depth ≥ 1); said, should that ever change
        raise RuntimeError("the unit tree ran no stage")
    total = first.v_full - first.v_empty
    _reconcile(nodes)
    scores = np.array([nodes[k].score for k in frontier])
    var = np.array([nodes[k].stderr ** 2 for k in frontier])
    scores, var = _condition(scores, var, total, 0.0)  # efficiency over the final cut, exactly
    for k, s, v in zip(frontier, scores, var):
        nodes[k].score, nodes[k].stderr = float(s), float(np.sqrt(v))
    _sum_up(nodes, tree.roots, set(frontier))
    return TreeResult(scores, np.sqrt(var), first.v_full, first.v_empty, used, time.perf_counter() - t0,
                      first.stopped, "tree(" + ">".join(names) + ")", first.schedule, None, tree=tree,
                      groups=list(frontier))


def _reconcile(nodes: list[Node]) -> None:
    """Parents first, each expanded node's children made to sum to its score: their means shifted in proportion to
    their variances, their variances those given the sum, plus their share of the parent's own (so the family's sum
    has the parent's variance, 0 for a parent known exactly). A later stage's estimate of children whose parent was
    itself only estimated (a noisy sum) no longer moves the parent, which would break its own family's sum."""
    for node in nodes:  # roots first, parents before children
        if not (node.expanded and node.children):
            continue
        kids = node.children
        mu = np.array([nodes[c].score for c in kids])
        var = np.minimum(np.array([nodes[c].stderr ** 2 for c in kids]), 1e12)
        parent_var = min(node.stderr ** 2, 1e12) if np.isfinite(node.stderr) else 1e12
        S = var.sum()
        share = var / S if S > 0 else np.full(len(kids), 1.0 / len(kids))
        mu = mu + share * (node.score - mu.sum())
        var = (var - var * share if S > 0 else np.zeros(len(kids))) + share ** 2 * parent_var
        for c, m, v in zip(kids, mu, var):
            nodes[c].score, nodes[c].stderr = float(m), float(np.sqrt(max(v, 0.0)))


def _select(nodes: list[Node], frontier: list[int]) -> set[int]:
    """The frontier nodes with children that hold ``MASS`` of the total |score|, largest first."""
    mass = np.array([abs(nodes[k].score) for k in frontier])
    if mass.sum() <= 0:
        return set()
    chosen, held = set(), 0.0
    for j in np.argsort(-mass, kind="stable"):
        if held >= MASS * mass.sum():
            break
        held += mass[j]
        if nodes[frontier[j]].children:
            chosen.add(frontier[j])
    return chosen


def _combine(nodes: list[Node], frontier: list[int], r: EngineResult, new: set[int]) -> None:
    """Fold a stage's estimates into the tree: children of the nodes just expanded (``new``) conditioned on their
    parent's estimate; other nodes keep their earlier estimate (this stage's is taken only for a node that has
    none, as every node at the first stage). :func:`_reconcile` makes every family sum to its parent at the end."""
    var = np.where(np.isfinite(r.stderr), r.stderr ** 2, 1e12)
    index = {k: j for j, k in enumerate(frontier)}
    parent = {c: p for p, node in enumerate(nodes) for c in node.children}
    families: dict[int, list[int]] = {}
    for k in frontier:
        if parent.get(k) in new:
            families.setdefault(parent[k], []).append(k)
        elif not np.isfinite(nodes[k].stderr):  # first estimate
            nodes[k].score, nodes[k].stderr = float(r.scores[index[k]]), float(np.sqrt(var[index[k]]))
        # else: a node estimated at an earlier stage keeps that estimate. Its siblings were conditioned on their
        # parent together with it; moving it alone (as a precision-weighted mean with this stage's figure once did)
        # broke their sum, and the parent, rebuilt from the sum with the conditioned variance, then showed a
        # changed score with the first stage's certainty (the escalation demo in docs/context.md: exact 31.24, shown 27.6 ± 0).
    for p, kids in families.items():
        j = [index[k] for k in kids]
        mu, v = _condition(r.scores[j], var[j], nodes[p].score, nodes[p].stderr ** 2)
        for k, s_k, v_k in zip(kids, mu, v):
            nodes[k].score, nodes[k].stderr = float(s_k), float(np.sqrt(v_k))


def _sum_up(nodes: list[Node], roots: list[int], frontier: set[int]) -> None:
    """Every node above the final cut: the sum of its children's scores (its own score after :func:`_reconcile`, up
    to rounding and the final efficiency step); its standard error stays its own."""

    def visit(k: int) -> float:
        if k in frontier or not nodes[k].children:
            return nodes[k].score
        nodes[k].score = float(sum(visit(c) for c in nodes[k].children))
        return nodes[k].score

    for r in roots:
        visit(r)
