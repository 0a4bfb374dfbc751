"""Backups: pairs of units that cover for each other, found and confirmed by running the model.

A unit with a backup barely matters when removed alone — the backup does its work — so single-unit
patching misses both, and a Shapley map built from few samples rarely ranks them high. What gives such a
unit away is the gap between its Shapley value and its single-removal effect ("drop"): Shapley averages
over contexts where the backup is often absent, the drop sees only the context where it is present. The
search takes the ``top`` units with the largest gap ``s·(φ_i − drop_i)`` (``s`` the sign of the total effect
v(all) − v(none)), removes each together with every other unit, and scores every pair by the interaction
at the full coalition (the discrete second difference of the game there):

    redundancy(i, j) = drop_ij − drop_i − drop_j,   drop_S = v(all) − v(all without S)

Positive (in the direction of the total effect): removing both does more than the two removals apart —
each covers for the other. Every figure is a model run, so a reported pair is a checked fact, not an
estimate. Cost: ``n`` single removals plus ``top·(n − 1)`` pair removals (one batch each).

Examples:
    >>> import numpy as np
    >>> class Backup:  # units 1 and 3 each suffice for the same +4; unit 0 adds 1 on its own
    ...     n = 5
    ...     def __call__(self, m):
    ...         m = np.asarray(m)
    ...         return 4.0 * np.maximum(m[:, 1], m[:, 3]) + m[:, 0]
    >>> phi = np.array([1.0, 2.0, 0.0, 2.0, 0.0])  # exact Shapley values of that game
    >>> b = find_backups(Backup(), phi, top=2)
    >>> [(p.units, p.drop_both, p.redundancy) for p in b.pairs if p.redundant]
    [((1, 3), 4.0, 4.0)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["BackupPair", "Backups", "find_backups"]


@dataclass
class BackupPair:
    """One pair of units removed together: their drops alone and together, all model runs."""

    units: tuple[int, int]
    drop_i: float  # v(all) − v(all without i)
    drop_j: float
    drop_both: float  # v(all) − v(all without i and j)
    redundancy: float  # s · (drop_both − drop_i − drop_j): > 0, each covers for the other
    redundant: bool  # the pair passes the rule below


@dataclass
class Backups:
    """The pairs found, strongest redundancy first, and what the search cost and assumed."""

    pairs: list[BackupPair]
    candidates: list[int]  # units searched for a partner, largest Shapley-minus-drop gap first
    evaluations: int
    min_effect: float  # a pair is redundant when s·drop_both ≥ this ...
    alone_share: float  # ... and each s·drop alone is at most this share of s·drop_both
    singles: list[float] = field(default_factory=list)  # drop_i of every unit [n]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Backups":
        pairs = [BackupPair(**{**p, "units": tuple(p["units"])}) for p in d["pairs"]]
        return cls(**{**d, "pairs": pairs})


def find_backups(game: Any, scores: np.ndarray, *, top: int = 8, keep: int = 10, min_effect: float | None = None,
                 alone_share: float = 0.2) -> Backups:
    """Search the ``top`` units with the largest Shapley-minus-drop gap for a partner that covers for them.

    ``scores [n]`` is a Shapley map of ``game``. Returns the ``keep`` pairs with the largest redundancy. A pair
    is flagged ``redundant`` when removing both moves the target by at least ``min_effect`` (default a tenth
    of |v(all) − v(none)|) towards v(none) and each removal alone by at most ``alone_share`` of that.
    """
    n = int(game.n)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (n,):
        raise InputError(f"scores must have shape [{n}], got {scores.shape}")
    if n < 2 or top < 1:
        raise InputError("a backup search needs at least 2 units and top ≥ 1")
    singles = np.ones((n + 2, n), np.int8)  # [n + 2, n]: all kept, none kept, then each unit removed
    singles[1] = 0
    singles[np.arange(2, n + 2), np.arange(n)] = 0
    values = np.asarray(game(singles), dtype=float)
    full, empty = float(values[0]), float(values[1])
    sign = 1.0 if full >= empty else -1.0
    drop = full - values[2:]  # [n]
    threshold = 0.1 * abs(full - empty) if min_effect is None else float(min_effect)
    gap = sign * (scores - drop)
    candidates = [int(i) for i in np.argsort(-gap, kind="stable")[: min(top, n)]]
    pairs: dict[tuple[int, int], BackupPair] = {}
    used = n + 2
    for i in candidates:
        others = [j for j in range(n) if j != i and (min(i, j), max(i, j)) not in pairs]
        if not others:
            continue
        masks = np.ones((len(others), n), np.int8)  # [k, n]
        masks[:, i] = 0
        masks[np.arange(len(others)), others] = 0
        both = full - np.asarray(game(masks), dtype=float)  # [k]
        used += len(others)
        for j, d in zip(others, both):
            a, b = (i, j) if i < j else (j, i)
            red = sign * (float(d) - drop[a] - drop[b])
            ok = sign * d >= threshold and max(sign * drop[a], sign * drop[b]) <= alone_share * sign * d
            pairs[(a, b)] = BackupPair((a, b), float(drop[a]), float(drop[b]), float(d), float(red), bool(ok))
    ranked = sorted(pairs.values(), key=lambda p: (-p.redundant, -p.redundancy))[:keep]
    return Backups(ranked, candidates, used, threshold, alone_share, [float(x) for x in drop])
