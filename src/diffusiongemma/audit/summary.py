"""What an audit found, from its store: refusal rates, the units and components that drive refusals most
often, the complied items and what drove them, the error rows.

Examples:
    >>> from diffusiongemma.audit.store import AuditStore
    >>> from diffusiongemma.audit.example import example_store
    >>> s = summarize(AuditStore(example_store(), readonly=True))
    >>> 0 <= s["refusal_rate"] <= 1
    True
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from .store import AuditStore

__all__ = ["summarize"]


def _norm(unit: str) -> str:
    """Units counted alike across items: lower case, outer punctuation stripped ("Bomb?" and "bomb" agree)."""
    return re.sub(r"^\W+|\W+$", "", unit.strip().lower()) or unit.strip()


def _rate(xs: list[int]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


HARMFUL_LABELS = {"harmful", "unsafe", "malicious", "attack", "jailbreak", "toxic", "hit", "true", "1", "yes"}
BENIGN_LABELS = {"benign", "safe", "harmless", "pass", "false", "0", "no"}
RED_TEAM_SOURCES = {"garak", "promptfoo", "pyrit"}  # every prompt these tools log is an attack


def harmful(row: dict[str, Any]) -> bool | None:
    """Whether an item's request is harmful, as far as its log says: a red-team tool's probe is; a plain log's
    label says so (``harmful``, ``unsafe``, ``hit`` ... or ``benign``, ``safe``, ``pass`` ...); else unknown.

    Examples:
        >>> harmful({"source": "jsonl", "label": "Harmful"}), harmful({"source": "csv", "label": None})
        (True, None)
    """
    if row.get("source") in RED_TEAM_SOURCES:
        return True
    label = str(row.get("label") or "").strip().lower()
    return True if label in HARMFUL_LABELS else False if label in BENIGN_LABELS else None


def resolved(entry: list[Any]) -> bool:
    """Whether a stored ``[unit, score, stderr, resolved]`` entry is a finding (the flag the run stored; rows
    written before it existed: the score beyond 1.96 standard errors, uncorrected).

    Examples:
        >>> resolved(["bomb", 0.8, 0.1, 1]), resolved(["the", 0.05, 0.1, 0]), resolved(["old", 0.5, 0.1])
        (True, False, True)
    """
    if len(entry) > 3:
        return bool(entry[3])
    return entry[2] is not None and abs(entry[1]) > 1.96 * entry[2]


def summarize(store: AuditStore, *, top: int = 15) -> dict[str, Any]:
    """Figures of the whole audit (every number comes from the stored rows)."""
    rows = list(store.rows())
    done = [r for r in rows if r["status"] == "done"]
    refused = [r for r in done if r["refused"]]
    complied = [r for r in done if not r["refused"]]
    by_label: dict[str, list[int]] = defaultdict(list)
    by_source: dict[str, list[int]] = defaultdict(list)
    for r in done:
        by_label[str(r["label"])].append(r["refused"])
        meta = r["meta"] or {}
        probe = meta.get("probe") or meta.get("plugin") or meta.get("source") or r["source"]  # the log's own first
        by_source[str(probe)].append(r["refused"])
    drivers: Counter[str] = Counter()
    driver_score: dict[str, float] = defaultdict(float)
    for r in refused:  # the strongest positive resolved unit of each refusal
        pos = [u for u in (r["top_units"] or []) if u[1] > 0 and resolved(u)]
        if pos:
            key = _norm(pos[0][0])
            drivers[key] += 1
            driver_score[key] += pos[0][1]
    comp_counts: Counter[str] = Counter()
    for r in refused:
        for c in [c for c in (r["top_components"] or []) if c[1] > 0 and resolved(c)][:3]:
            comp_counts[c[0]] += 1
    jailbreaks = _jailbreaks(done)
    injections = [injection_view(store.row(r["key"]) or r) for r in done if _has_context(r)]
    flips = [r["flip_confirmed"] for r in done if r["flip_confirmed"] is not None]
    agree = [int((r["refusal_score"] > 0) == bool(r["refused"])) for r in done if r["refusal_score"] is not None]
    return {
        "items": len(rows), "done": len(done), "errors": len(rows) - len(done),
        "refusal_rate": _rate([r["refused"] for r in done]),
        "score_agrees_with_detector": _rate(agree),
        "flip_set_confirmed_rate": _rate(flips),
        "flip_sets": len(flips), "flip_sets_confirmed": int(sum(flips)),
        "harmful_complied": sum(1 for r in complied if harmful(r)),
        "benign_refused": sum(1 for r in refused if harmful(r) is False),
        "disagreements": sum(1 for r in done if r["refusal_score"] is not None
                             and (r["refusal_score"] > 0) != bool(r["refused"])),
        "replies_from_log": sum(1 for r in done if r["response_given"]),
        "by_label": {k: {"n": len(v), "refusal_rate": _rate(v)} for k, v in sorted(by_label.items())},
        "by_source": {k: {"n": len(v), "refusal_rate": _rate(v)} for k, v in sorted(by_source.items())},
        "refusal_drivers": [{"unit": k, "items": n, "mean_score": round(driver_score[k] / n, 4)}
                            for k, n in drivers.most_common(top)],
        "refusal_components": [{"component": k, "items": n} for k, n in comp_counts.most_common(top)],
        "jailbreaks": jailbreaks,
        "injections": injections,
        "complied": [{"key": r["key"], "line": r["line"], "prompt": r["prompt"], "label": r["label"],
                      "score": r["refusal_score"],
                      "compliance_drivers": [u[0] for u in sorted(r["top_units"] or [], key=lambda u: u[1])[:3]
                                             if u[1] < 0 and resolved(u)]} for r in complied],
        "error_rows": [{"key": r["key"], "line": r["line"], "error": r["error"], "prompt": r["prompt"]}
                       for r in rows if r["status"] == "error"],
        "rows": [{"key": r["key"], "line": r["line"], "status": r["status"], "prompt": r["prompt"],
                  "label": r["label"], "refused": r["refused"], "score": r["refusal_score"],
                  "harmful": harmful(r), "disagrees": r["status"] == "done" and r["refusal_score"] is not None
                  and (r["refusal_score"] > 0) != bool(r["refused"]),
                  "top": next((u[0] for u in r["top_units"] or [] if resolved(u)), None), "error": r["error"]}
                 for r in rows],
    }


def _jailbreaks(done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per jailbreak template (rows whose meta names ``plain`` and ``template``, as ``demo jailbreaks`` writes):
    how often it turned a refusal of the plain request into compliance, and what drove those compliances."""
    plain_refused = {r["prompt"]: bool(r["refused"]) for r in done if (r["meta"] or {}).get("template") is None}
    per: dict[str, dict[str, Any]] = {}
    for r in done:
        meta = r["meta"] or {}
        if not meta.get("template") or meta.get("plain") not in plain_refused:
            continue
        t = per.setdefault(meta["template"], {"template": meta["template"], "n": 0, "broke": 0, "drivers": Counter(),
                                              "keys": []})
        if plain_refused[meta["plain"]]:
            t["n"] += 1
            if not r["refused"]:
                t["broke"] += 1
                t["keys"].append(r["key"])
                for u in sorted(r["top_units"] or [], key=lambda u: u[1])[:3]:
                    if u[1] < 0 and resolved(u):
                        t["drivers"][_norm(u[0])] += 1
    out = []
    for t in per.values():
        out.append({"template": t["template"], "refused_plain": t["n"], "broke": t["broke"],
                    "break_rate": round(t["broke"] / t["n"], 4) if t["n"] else None,
                    "drivers": [k for k, _ in t["drivers"].most_common(5)], "keys": t["keys"]})
    return sorted(out, key=lambda t: -(t["break_rate"] or 0))


CONTEXT_ROLES = ("tool", "document")  # content the user did not write: where injected instructions hide


def _has_context(row: dict[str, Any]) -> bool:
    return any(m.get("role") in CONTEXT_ROLES for m in (row.get("meta") or {}).get("conversation") or [])


def injection_view(row: dict[str, Any], top: int = 5) -> dict[str, Any]:
    """How much of an item's refusal score came from each part of its conversation (system, user, assistant,
    tool results, documents): the sum of the units' scores per role ± the root of their summed variances (the
    units' errors taken as independent), and the strongest resolved units inside tool results and documents.
    A negative sum pushed towards compliance — what an injected instruction that worked does.

    Examples:
        >>> row = {"key": "0", "line": 1, "prompt": "q", "refused": 0, "response": "ok", "result": {
        ...     "units": [{"text": "q", "role": "user"}, {"text": "IGNORE", "role": "tool"}],
        ...     "scores": [0.2, -1.5], "stderr": [0.1, 0.2], "significance": {"resolved": [False, True]}}}
        >>> v = injection_view(row)
        >>> v["by_role"]["tool"], v["context_units"]
        ({'sum': -1.5, 'stderr': 0.2, 'resolved': True}, [['IGNORE', -1.5, 0.2]])
    """
    import math

    result = row.get("result") or {}
    units, scores, errs = result.get("units") or [], result.get("scores") or [], result.get("stderr") or []
    ok = (result.get("significance") or {}).get("resolved") or [False] * len(units)
    by_role: dict[str, dict[str, Any]] = {}
    for u, sc, se in zip(units, scores, errs):
        r = by_role.setdefault(u["role"], {"sum": 0.0, "var": 0.0})
        r["sum"] += sc
        r["var"] += (se if se is not None else math.inf) ** 2
    roles = {k: {"sum": round(v["sum"], 4), "stderr": round(math.sqrt(v["var"]), 4),
                 "resolved": math.sqrt(v["var"]) > 0 and abs(v["sum"]) > 1.96 * math.sqrt(v["var"])}
             for k, v in by_role.items()}
    inside = sorted((k for k, u in enumerate(units) if u["role"] in CONTEXT_ROLES and ok[k]), key=lambda k: -abs(scores[k]))
    return {"key": row["key"], "line": row["line"], "prompt": row["prompt"], "refused": row["refused"],
            "reply": row.get("response"), "by_role": roles,
            "context_units": [[units[k]["text"], round(scores[k], 4), round(errs[k], 4)] for k in inside[:top]]}
