"""Two audits of the same items compared (``diffusiongemma audit-diff A.db B.db``): which decisions flipped
between the two models (or runs), and for each flipped item what changed in its cause.

Items are paired by content (:func:`content_key`: the prompt, and the reply when the log gave one), so two
logs in another order, or with items added, still pair. For a flipped item the words whose contribution
moved most come from the two stored maps: ``Δ = φ_B − φ_A`` per unit with ``s.e. = √(s.e._A² + s.e._B²)``,
resolved after Holm's correction over the item's units (:mod:`diffusiongemma.significance`); a move whose
interval includes zero is listed as not resolved, never as a finding. Components are compared where both
audits stored them among their strongest. :func:`confirm_flips` then checks the moves on the real prompt
(:mod:`diffusiongemma.audit.confirm_diff`).

Examples:
    >>> a = [{"key": "0", "status": "done", "prompt": "hi", "response_given": 0, "refused": 1, "meta": {}}]
    >>> b = [{"key": "5", "status": "done", "prompt": "hi", "response_given": 0, "refused": 0, "meta": {}}]
    >>> [(x["key"], y["key"]) for x, y in pair_rows(a, b)[0]]
    [('0', '5')]
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..significance import resolve
from .store import AuditStore

__all__ = ["AuditDiff", "content_key", "pair_rows", "unit_moves", "component_moves", "diff_stores"]

TOP_MOVES = 8  # moved units and components listed per flipped item


def content_key(row: dict[str, Any]) -> str:
    """What pairs an item across two audits: SHA-256 of its prompt (its whole conversation, for a logged chat)
    and, when the log gave it, its reply.

    Examples:
        >>> generated = content_key({"prompt": "hi", "response_given": 0, "response": "Hello!"})
        >>> generated == content_key({"prompt": "hi", "response_given": 0, "response": "Hi."})  # models' own replies
        True
        >>> generated == content_key({"prompt": "hi", "response_given": 1, "response": "Hello!"})  # a logged reply
        False
    """
    reply = row.get("response") if row.get("response_given") else None
    conversation = (row.get("meta") or {}).get("conversation")  # a logged chat: all of it, tool turns included
    parts = [row.get("prompt"), reply] + ([conversation] if conversation is not None else [])
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def pair_rows(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]
              ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of A and B with the same content, in A's order (a content met twice pairs in order of
    occurrence); then A's and B's rows without a partner.

    Examples:
        >>> a = [{'prompt': 'x', 'k': 'a1'}, {'prompt': 'y', 'k': 'a2'}]
        >>> b = [{'prompt': 'z', 'k': 'b1'}, {'prompt': 'x', 'k': 'b2'}]
        >>> pairs, only_a, only_b = pair_rows(a, b)
        >>> [(p['k'], q['k']) for p, q in pairs], [r['k'] for r in only_a], [r['k'] for r in only_b]
        ([('a1', 'b2')], ['a2'], ['b1'])
    """
    queue: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows_b:
        queue[content_key(r)].append(r)
    pairs, only_a = [], []
    for r in rows_a:
        q = queue.get(content_key(r))
        if q:
            pairs.append((r, q.pop(0)))
        else:
            only_a.append(r)
    only_b = [r for q in queue.values() for r in q]
    return pairs, only_a, only_b


def _map(result: dict[str, Any] | None) -> tuple[list[tuple[str, int, int]], np.ndarray, np.ndarray, int] | None:
    if not result:
        return None
    units = [(u["text"], int(u["start"]), int(u["end"])) for u in result["units"]]
    se = np.array([np.inf if x is None else x for x in result["stderr"]], dtype=float)
    return units, np.asarray(result["scores"], dtype=float), se, int(result.get("evaluations") or 0)


def unit_moves(result_a: dict[str, Any] | None, result_b: dict[str, Any] | None, k: int = TOP_MOVES
               ) -> list[dict[str, Any]]:
    """The ``k`` units whose score moved most from A's map to B's (same prompt, same units), each with
    ``delta``, ``stderr``, ``resolved`` (Holm over all the item's units) and both scores. Empty when either
    map is missing or the two cut the prompt differently.

    Examples:
        >>> r = lambda s, e: {"units": [{"text": w, "start": i, "end": i + 1} for i, w in enumerate("abc")],
        ...                   "scores": s, "stderr": e, "evaluations": 64}
        >>> [(m["unit"], m["delta"], m["resolved"]) for m in unit_moves(r([2.0, 0.1, 0.0], [0.1] * 3),
        ...                                                            r([0.2, 0.1, 0.05], [0.1] * 3), k=2)]
        [('a', -1.8, True), ('c', 0.05, False)]
    """
    a, b = _map(result_a), _map(result_b)
    if a is None or b is None or a[0] != b[0]:
        return []
    delta = b[1] - a[1]
    se = np.sqrt(a[2] ** 2 + b[2] ** 2)
    ok = resolve(delta, se, evaluations=min(a[3], b[3]) or None).resolved
    order = np.argsort(-np.abs(delta), kind="stable")[:k]
    return [{"unit": a[0][i][0], "index": int(i), "score_a": round(float(a[1][i]), 5),
             "score_b": round(float(b[1][i]), 5), "delta": round(float(delta[i]), 5),
             "stderr": round(float(se[i]), 5) if np.isfinite(se[i]) else None, "resolved": bool(ok[i])}
            for i in order]


def component_moves(top_a: list[list[Any]] | None, top_b: list[list[Any]] | None, k: int = TOP_MOVES, *,
                    ranking_only: bool = False) -> list[dict[str, Any]]:
    """Components among the strongest of both audits (stored ``[label, score, stderr, resolved]``), by how far
    their score moved; a move is resolved when it is beyond 1.96 standard errors and both scores were stored —
    never when either map ranks without resolving (``ranking_only``: a gradient component map, whose errors test
    nothing; :mod:`diffusiongemma.significance`). A component in only one audit's list is kept with the other
    score unknown (``None``).

    Examples:
        >>> [(m["component"], m["delta"], m["resolved"]) for m in component_moves(
        ...     [["L3.H1@last", 1.0, 0.1, 1], ["L2.mlp@last", 0.3, 0.1, 1]], [["L3.H1@last", 0.2, 0.1, 1]])]
        [('L3.H1@last', -0.8, True), ('L2.mlp@last', None, False)]
    """
    a = {c[0]: c for c in top_a or []}
    b = {c[0]: c for c in top_b or []}
    out = []
    for name in list(a) + [n for n in b if n not in a]:
        x, y = a.get(name), b.get(name)
        if x is not None and y is not None:
            se = float(np.hypot(x[2] or 0.0, y[2] or 0.0))
            d = round(float(y[1]) - float(x[1]), 5)
            out.append({"component": name, "score_a": x[1], "score_b": y[1], "delta": d, "stderr": round(se, 5),
                        "resolved": not ranking_only and se > 0 and abs(d) > 1.96 * se})
        else:
            out.append({"component": name, "score_a": None if x is None else x[1],
                        "score_b": None if y is None else y[1], "delta": None, "stderr": None, "resolved": False})
    out.sort(key=lambda m: -abs(m["delta"]) if m["delta"] is not None else 0.0)
    return out[:k]


def _component_method(row: dict[str, Any]) -> str | None:
    """The method of a stored item's component map (its decision's ``components_settings``), if recorded."""
    decision = (row.get("result") or {}).get("decision") or {}
    return (decision.get("components_settings") or {}).get("method")


def _group(row: dict[str, Any]) -> tuple[str, str]:
    meta = row.get("meta") or {}
    category = meta.get("category") or meta.get("harm_category") or meta.get("probe") or row.get("label") or "–"
    source = meta.get("source") or meta.get("plugin") or row.get("source") or "–"
    return str(category), str(source)


@dataclass
class AuditDiff:
    """What changed between audit A and audit B of the same items."""

    a: dict[str, Any]  # store path, model, patch, settings of each side
    b: dict[str, Any]
    counts: dict[str, int]
    flips: list[dict[str, Any]] = field(default_factory=list)
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    score_shift: dict[str, float | None] = field(default_factory=dict)
    confirmed_with: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "counts": self.counts, "flips": self.flips,
                "by_category": self.by_category, "by_source": self.by_source, "score_shift": self.score_shift,
                "confirmed_with": self.confirmed_with}


def _side(store: AuditStore) -> dict[str, Any]:
    meta = store.meta()
    ident, prov = meta.get("identity") or {}, meta.get("provenance") or {}
    return {"store": str(store.path), "model": ident.get("model"), "patch": (prov.get("patch") or {}).get("path"),
            "patch_sha256": ident.get("patch_sha256"), "adapter_sha256": prov.get("adapter_sha256"),
            "weights_sha256": prov.get("weights_sha256"), "settings": ident.get("settings"),
            "input_sha256": ident.get("input_sha256")}


def diff_stores(store_a: AuditStore, store_b: AuditStore) -> AuditDiff:
    """Pair the two stores' items and compare every pair both audited (see the module's text).

    Examples:
        >>> from diffusiongemma.audit.example import example_store
        >>> a = example_store()  # compared with itself: every item paired, nothing flipped
        >>> d = diff_stores(AuditStore(a, readonly=True), AuditStore(a, readonly=True))
        >>> d.counts["lost_refusal"], d.counts["gained_refusal"]  # (on safety vs hardened stores: (0, 7))
        (0, 0)
    """
    from ..api import method_resolves  # a stored map's method: gradient ones resolve nothing

    rows_a, rows_b = list(store_a.rows(full=True)), list(store_b.rows(full=True))
    pairs, only_a, only_b = pair_rows(rows_a, rows_b)
    counts = {"paired": len(pairs), "only_a": len(only_a), "only_b": len(only_b), "compared": 0,
              "both_refused": 0, "both_complied": 0, "lost_refusal": 0, "gained_refusal": 0, "not_compared": 0}
    by_cat: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "refused_a": 0, "refused_b": 0, "lost": 0,
                                                              "gained": 0})
    by_src: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "refused_a": 0, "refused_b": 0, "lost": 0,
                                                              "gained": 0})
    flips, shifts = [], []
    for ra, rb in pairs:
        if ra["status"] != "done" or rb["status"] != "done":
            counts["not_compared"] += 1
            continue
        counts["compared"] += 1
        fa, fb = bool(ra["refused"]), bool(rb["refused"])
        kind = ("both_refused" if fb else "lost_refusal") if fa else ("gained_refusal" if fb else "both_complied")
        counts[kind] += 1
        if ra["refusal_score"] is not None and rb["refusal_score"] is not None:
            shifts.append(rb["refusal_score"] - ra["refusal_score"])
        category, source = _group(ra)
        for table, name in ((by_cat, category), (by_src, source)):
            t = table[name]
            t["n"] += 1
            t["refused_a"] += int(fa)
            t["refused_b"] += int(fb)
            t["lost"] += int(kind == "lost_refusal")
            t["gained"] += int(kind == "gained_refusal")
        if kind in ("lost_refusal", "gained_refusal"):
            flips.append({
                "kind": kind, "key_a": ra["key"], "key_b": rb["key"], "line_a": ra["line"], "prompt": ra["prompt"],
                "category": category, "source": source, "reply_a": ra["response"], "reply_b": rb["response"],
                "score_a": ra["refusal_score"], "score_b": rb["refusal_score"],
                "flip_set_a": ra["flip_set"], "flip_confirmed_a": ra["flip_confirmed"],
                "flip_set_b": rb["flip_set"], "flip_confirmed_b": rb["flip_confirmed"],
                "unit_moves": unit_moves(ra["result"], rb["result"]),
                "component_moves": component_moves(ra["top_components"], rb["top_components"],
                                                   ranking_only=not (method_resolves(_component_method(ra))
                                                                     and method_resolves(_component_method(rb)))),
                "confirmation": None})
    s = np.asarray(shifts, dtype=float)
    shift = {"mean": round(float(s.mean()), 4) if len(s) else None,
             "stderr": round(float(s.std(ddof=1) / np.sqrt(len(s))), 4) if len(s) > 1 else None, "n": len(s)}
    return AuditDiff(_side(store_a), _side(store_b), counts, flips, dict(sorted(by_cat.items())),
                     dict(sorted(by_src.items())), shift)
