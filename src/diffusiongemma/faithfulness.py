"""The reverse process as a check: deletion and insertion curves, comprehensiveness and sufficiency.

Units are removed (deletion) or inserted into the fully masked prompt (insertion) in attribution order,
largest score first, and the target is measured by running the model. Values are normalised so that the
clean prompt is 1 and the fully masked one is 0: a faithful map makes the deletion curve fall fast (low
area) and the insertion curve rise fast (high area). ERASER's comprehensiveness (1 − normalised value after
deleting the top q of units; higher is better) and sufficiency (1 − normalised value keeping only the top
q; lower is better) are read at fixed fractions q (the top ⌈q·n⌉ units).

Examples:
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

__all__ = ["Faithfulness", "faithfulness", "TriggerSet", "minimal_trigger_set"]


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


TRIGGER_STATES = {
    "confirmed": "the edited text, re-tokenised and sent again, moves the value past the threshold (and, in the "
                 "refusal workflows, the regenerated reply is judged as the set claims); for a set of model "
                 "components in the refusal workflows: the reply regenerated with them taken out is judged as the "
                 "set claims",
    "score only": "the edited text (or the components' intervention) moves the refusal score past the threshold, "
                  "but the regenerated reply is not judged as the set claims",
    "masked only": "the set moves the value past the threshold under the mask, not when the edited text is sent",
    "intervention": "a set of model components: the intervention itself is the check (no reply regenerated)",
    "not found": "no set within the search moves the value past the threshold",
}


@dataclass
class TriggerSet:
    """The smallest set of units found that flips the decision (``kind="necessary"``: removing it) or that
    alone reproduces it (``kind="sufficient"``: keeping only it).

    ``masked`` says whether the set does so under the game's mask; ``confirmed`` only whether it does so on the
    real thing (``state == "confirmed"``, see :data:`TRIGGER_STATES`): the edited text sent again
    (``edited_prompt``, its value ``value_edited``) and, in the refusal workflows, the regenerated ``reply``."""

    kind: str
    units: list[int]  # unit indices, in attribution order
    value_clean: float  # v(all kept)
    value_after: float  # v with the set removed (necessary) or with only the set kept (sufficient), under the mask
    threshold: float
    confirmed: bool  # confirmed on the real thing (state "confirmed")
    evaluations: int
    masked: bool = False  # the model's value under the mask is on the other side (necessary) / same side
    state: str = "not found"  # one of TRIGGER_STATES
    edited_prompt: Any = None  # the request sent again: plain text, or the chat's messages
    value_edited: float | None = None  # the value on the edited text, rendered and tokenised afresh
    reply: str | None = None  # the regenerated reply to the edited prompt (refusal workflows)
    reply_agrees: bool | None = None  # the reply is judged as the set claims (flipped / kept)

    def passes(self, value: float) -> bool:
        """Whether ``value`` is on the side this set claims: across the threshold from the clean value
        (necessary), or on its side (sufficient).

        Examples:
            >>> TriggerSet("necessary", [1], 2.0, -1.0, 0.0, False, 5).passes(-0.5)
            True
        """
        side = 1.0 if self.value_clean > self.threshold else -1.0
        return side * (value - self.threshold) <= 0 if self.kind == "necessary" else side * (value - self.threshold) > 0

    def mask(self, n: int) -> np.ndarray:
        """The unit mask ``[n]`` (0/1) this set stands for: all but the set (necessary), only the set (sufficient).

        Examples:
            >>> TriggerSet("necessary", [1], 2.0, -1.0, 0.0, True, 5).mask(3).tolist()
            [1, 0, 1]
        """
        m = np.ones(n, np.int8) if self.kind == "necessary" else np.zeros(n, np.int8)
        m[list(self.units)] = 0 if self.kind == "necessary" else 1
        return m

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def minimal_trigger_set(game: Any, scores: np.ndarray, *, kind: str = "necessary", threshold: float = 0.0,
                        beam: int = 3, pool: int = 12, max_evaluations: int = 400) -> TriggerSet:
    """Search along the attribution order, with a small beam, for the smallest set of units that flips the
    decision ``v > threshold`` when removed (``necessary``) or that alone keeps it (``sufficient``).

    Candidates are the ``pool`` units that push hardest towards the clean decision; each level adds one
    candidate to each of the ``beam`` best sets (all expansions in one batch) and keeps the sets that moved the
    target furthest. Every value is a model run under the game's mask (``masked=True``: a set found); whether
    the set holds on the real edited text is :func:`diffusiongemma.confirm.confirm_on_text`'s to say.

    Examples:
        >>> class Or:  # the decision needs unit 1 or unit 3: removing both is necessary, either one suffices
        ...     n = 5
        ...     def __call__(self, m): return 4.0 * np.maximum(np.asarray(m)[:, 1], np.asarray(m)[:, 3]) - 2
        >>> scores = np.array([0.0, 2.0, 0.1, 2.0, -0.1])
        >>> minimal_trigger_set(Or(), scores, kind="necessary").units
        [1, 3]
        >>> minimal_trigger_set(Or(), scores, kind="sufficient").units
        [1]
    """
    if kind not in ("necessary", "sufficient"):
        raise InputError(f"kind must be 'necessary' or 'sufficient', got {kind!r}")
    n = int(game.n)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (n,):
        raise InputError(f"scores must have shape [{n}], got {scores.shape}")
    ends = np.asarray(game(np.stack([np.ones(n, np.int8), np.zeros(n, np.int8)])), dtype=float)
    clean, empty = float(ends[0]), float(ends[1])
    side = 1.0 if clean > threshold else -1.0  # the clean decision
    used = 2
    if kind == "sufficient" and side * (empty - threshold) > 0:  # nothing needed: the empty prompt decides alike
        return TriggerSet(kind, [], clean, empty, threshold, False, used, masked=True, state="masked only")
    toward = side * scores  # > 0: the unit supports the clean decision
    candidates = [int(i) for i in np.argsort(-toward, kind="stable")[: min(pool, n)]]

    def mask_of(units: tuple[int, ...]) -> np.ndarray:
        m = np.ones(n, np.int8) if kind == "necessary" else np.zeros(n, np.int8)
        m[list(units)] = 0 if kind == "necessary" else 1
        return m

    def done(value: float) -> bool:  # necessary: decision flipped; sufficient: decision kept
        return side * (value - threshold) <= 0 if kind == "necessary" else side * (value - threshold) > 0

    frontier: list[tuple[int, ...]] = [()]
    best: tuple[tuple[int, ...], float] = ((), clean if kind == "necessary" else empty)
    while frontier and used < max_evaluations:
        expansions = list(dict.fromkeys(tuple(sorted(s + (c,))) for s in frontier for c in candidates if c not in s))
        expansions = expansions[: max_evaluations - used]
        if not expansions:
            break
        values = np.asarray(game(np.stack([mask_of(s) for s in expansions])), dtype=float)
        used += len(expansions)
        hits = [(s, v) for s, v in zip(expansions, values) if done(v)]
        if hits:  # the smallest size reached: the strongest of them
            s, v = max(hits, key=lambda h: -side * h[1] if kind == "necessary" else side * h[1])
            order = [u for u in candidates if u in s]
            return TriggerSet(kind, order, clean, float(v), threshold, False, used, masked=True,
                              state="masked only")
        # keep the sets that moved the target furthest: down for necessary, up for sufficient
        key = (lambda v: side * v) if kind == "necessary" else (lambda v: -side * v)
        ranked = sorted(zip(expansions, values), key=lambda sv: key(sv[1]))
        frontier = [s for s, _ in ranked[:beam]]
        best = (ranked[0][0], float(ranked[0][1]))
    return TriggerSet(kind, [u for u in candidates if u in best[0]], clean, best[1], threshold, False, used)
