"""The reverse process as a check: deletion and insertion curves, comprehensiveness and sufficiency.

Units are removed (deletion) or inserted into the fully masked prompt (insertion) in attribution order,
largest score first, and the target is measured by running the model. Values are normalised so that the
clean prompt is 1 and the fully masked one is 0: a faithful map makes the deletion curve fall fast (low
area) and the insertion curve rise fast (high area). ERASER's comprehensiveness (1 − normalised value after
deleting the top q of units; higher is better) and sufficiency (1 − normalised value keeping only the top
q; lower is better) are read at fixed fractions q (the top ⌈q·n⌉ units).

Example:
    >>> import numpy as np
    >>> class Additive:
    ...     n = 4
    ...     def __call__(self, m): return np.asarray(m, float) @ np.array([4.0, 3.0, 2.0, 1.0])
    >>> f = faithfulness(Additive(), np.array([4.0, 3.0, 2.0, 1.0]))
    >>> f.deletion.tolist(), round(f.deletion_auc, 4)
    ([1.0, 0.6, 0.3, 0.1, 0.0], 0.375)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["Faithfulness", "faithfulness"]


@dataclass
class Faithfulness:
    """Curves and scores of one attribution map on one game."""

    fractions: np.ndarray  # [k] fraction of units removed / inserted
    deletion: np.ndarray  # [k] normalised target after deleting the top fraction
    insertion: np.ndarray  # [k] normalised target with only the top fraction kept
    deletion_auc: float
    insertion_auc: float
    comprehensiveness: dict[str, float]  # at "10%", "20%", "50%"
    sufficiency: dict[str, float]
    evaluations: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("fractions", "deletion", "insertion"):
            d[key] = [float(x) for x in d[key]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Faithfulness":
        return cls(**{**d, **{k: np.asarray(d[k], float) for k in ("fractions", "deletion", "insertion")}})


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def faithfulness(game: Any, scores: np.ndarray, *, steps: int | None = None,
                 quantiles: tuple[float, ...] = (0.1, 0.2, 0.5)) -> Faithfulness:
    """Deletion/insertion curves of ``scores`` on ``game`` (one batched call of ~2·steps masks).

    ``steps`` points along the order (default: every unit up to 20 units, else 20 evenly spaced counts).
    """
    n = int(game.n)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (n,):
        raise InputError(f"scores must have shape [{n}], got {scores.shape}")
    order = np.argsort(-scores, kind="stable")  # largest contribution first
    counts = np.unique(np.concatenate([np.round(np.linspace(0, n, (steps or min(n, 20)) + 1)),
                                       np.ceil(np.array(quantiles) * n - 1e-9)]).astype(int))  # [k]
    top = np.zeros((len(counts), n), dtype=np.int8)  # top[j] marks the first counts[j] units of the order
    for j, c in enumerate(counts):
        top[j, order[:c]] = 1
    values = np.asarray(game(np.concatenate([1 - top, top])), dtype=float)  # [2k]: deletion, insertion
    deleted, inserted = values[: len(counts)], values[len(counts):]
    clean, empty = deleted[0], inserted[0]  # nothing deleted / nothing inserted
    span = clean - empty
    if abs(span) < 1e-12:
        raise InputError("the target does not change between the clean and the fully masked prompt; "
                         "deletion and insertion curves are undefined")
    dnorm, inorm = (deleted - empty) / span, (inserted - empty) / span
    fractions = counts / n
    at = {f"{round(q * 100)}%": int(np.flatnonzero(counts == int(np.ceil(q * n - 1e-9)))[0]) for q in quantiles}
    return Faithfulness(
        fractions=fractions, deletion=dnorm, insertion=inorm,
        deletion_auc=_auc(fractions, dnorm), insertion_auc=_auc(fractions, inorm),
        comprehensiveness={k: float(1 - dnorm[j]) for k, j in at.items()},
        sufficiency={k: float(1 - inorm[j]) for k, j in at.items()},
        evaluations=len(values),
    )
