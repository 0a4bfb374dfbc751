"""A flipped item's moved words checked on the real prompt, the way an auditor would redo it by hand.

For each flip of an :class:`~diffusiongemma.audit.diff.AuditDiff`, the (up to 3) resolved units whose
contribution moved most in the flip's direction (a lost refusal: units whose push towards refusing fell; a
gained one: rose) are deleted from the prompt's text; the edited text is re-tokenised and sent to both
models, and each model's refusal score is measured with and without them. The maps predicted that removing
them changes B's score by ``Σ Δ`` more than A's (``predicted``); the real edit measures
``(B's drop) − (A's drop)`` (``real``). The move is *confirmed* when the two agree in sign and the real move
is at least half the predicted one; the figures are kept either way, so a reader can judge. What is confirmed is
the move of the score on the real edited text; no reply is regenerated, so this does not claim that the edit
brings the other model's decision back.

Examples:
    >>> moves = [{"index": 2, "delta": -1.5, "resolved": True}, {"index": 0, "delta": 0.1, "resolved": False},
    ...          {"index": 1, "delta": 0.9, "resolved": True}]
    >>> moved_set(moves, "lost_refusal"), moved_set(moves, "gained_refusal")
    ([2], [1])
    >>> move_confirmed(predicted=-1.5, real=-1.1), move_confirmed(predicted=-1.5, real=0.4)
    (True, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DiffusionGemmaError
from .diff import AuditDiff

__all__ = ["moved_set", "move_confirmed", "confirm_flip", "confirm_flips"]

MOVED = 3  # resolved moved units deleted together per flipped item
ENOUGH = 0.5  # the real move must reach this share of the predicted one


def moved_set(moves: list[dict[str, Any]], kind: str, k: int = MOVED) -> list[int]:
    """Indices of the ``k`` strongest resolved moves in the flip's direction (the maps' findings: unresolved
    moves are never edited; moves the other way do not explain the flip).

    Examples:
        >>> moves = [{'index': 3, 'resolved': True, 'delta': -0.5}, {'index': 1, 'resolved': False, 'delta': -2.0},
        ...          {'index': 4, 'resolved': True, 'delta': 0.3}]
        >>> moved_set(moves, 'lost_refusal'), moved_set(moves, 'gained_refusal')
        ([3], [4])
    """
    sign = -1.0 if kind == "lost_refusal" else 1.0
    return [m["index"] for m in moves if m["resolved"] and m["delta"] * sign > 0][:k]


def move_confirmed(predicted: float, real: float) -> bool:
    """Same sign, and the real move at least :data:`ENOUGH` of the predicted one."""
    return predicted * real > 0 and abs(real) >= ENOUGH * abs(predicted)


def _scores(lm: Any, prompt: str, spans: list[tuple[int, int]], drop: list[int], system: str | None,
            text: str) -> tuple[float, float, Any]:
    """The refusal score of the prompt and of its text with the units ``drop`` deleted, each sent as a new
    request; and the edited request."""
    from ..confirm import edited_request, sendable, value_of
    from ..game import Game
    from ..refusal import RefusalScore

    game = Game(prompt, RefusalScore(), model=lm, chat=True, system=system, units=spans)
    if game.rendered.text != text:
        raise ValueError("the prompt renders differently from the audited one")
    keep = np.ones(game.n, dtype=int)
    keep[drop] = 0
    request = sendable(edited_request(game, keep))
    if request is None:
        raise ValueError("deleting the moved units leaves nothing to send")
    original = sendable(edited_request(game, np.ones(game.n, dtype=int)))
    assert original is not None
    return value_of(lm, original, game.bound), value_of(lm, request, game.bound), request


def confirm_flip(flip: dict[str, Any], result_a: dict[str, Any], lm_a: Any, lm_b: Any, system: str | None
                 ) -> dict[str, Any]:
    """The real-edit check of one flipped item (see the module's text)."""
    drop = moved_set(flip["unit_moves"], flip["kind"])
    if not drop:
        return {"state": "no resolved move in the flip's direction", "confirmed": False}
    spans = [(int(u["start"]), int(u["end"])) for u in result_a["units"]]
    try:
        a_full, a_edit, request = _scores(lm_a, flip["prompt"], spans, drop, system, result_a["text"])
        b_full, b_edit, _ = _scores(lm_b, flip["prompt"], spans, drop, system, result_a["text"])
    except (ValueError, DiffusionGemmaError) as exc:
        return {"state": f"not checked: {exc}", "confirmed": False}
    by_index = {m["index"]: m for m in flip["unit_moves"]}
    predicted = float(sum(by_index[i]["delta"] for i in drop))
    real = (b_full - b_edit) - (a_full - a_edit)
    ok = move_confirmed(predicted, real)
    return {"state": "confirmed" if ok else "not confirmed", "confirmed": ok,
            "units": [by_index[i]["unit"] for i in drop], "edited_request": request,
            "score_a": round(a_full, 4), "score_a_edited": round(a_edit, 4),
            "score_b": round(b_full, 4), "score_b_edited": round(b_edit, 4),
            "predicted": round(predicted, 4), "real": round(float(real), 4)}


def confirm_flips(diff: AuditDiff, results_a: dict[str, dict[str, Any] | None], lm_a: Any, lm_b: Any,
                  system: str | None = None) -> AuditDiff:
    """Every flip of ``diff`` checked on the real prompt (``results_a``: A's stored maps by key); the diff is
    changed in place and returned.

    Examples:
        >>> from diffusiongemma.audit.diff import diff_stores
        >>> from diffusiongemma.audit.example import example_store
        >>> from diffusiongemma.audit.store import AuditStore
        >>> from diffusiongemma.models.tiny import example_model
        >>> store = AuditStore(example_store(), readonly=True)
        >>> d = confirm_flips(diff_stores(store, store), {}, example_model(), example_model())
        >>> d.flips, d.confirmed_with["a"]  # no flip to check; A's and B's models recorded
        ([], 'tiny-random-gemma')
    """
    for flip in diff.flips:
        result = results_a.get(flip["key_a"])
        flip["confirmation"] = (confirm_flip(flip, result, lm_a, lm_b, system) if result
                                else {"state": "not checked: no stored map", "confirmed": False})
    diff.confirmed_with = {"a": lm_a.provenance.get("model"), "b": lm_b.provenance.get("model"),
                           "b_patch": (lm_b.provenance.get("patch") or {}).get("path")}
    return diff
