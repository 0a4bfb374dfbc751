"""garak ``*.report.jsonl``: one item per generated output of every attempt.

garak writes each attempt twice (status 1: answered, status 2: answered and judged); the last one of a
``uuid`` wins. Two layouts exist: before 0.13 ``prompt`` is a string and ``outputs`` a list of strings;
since then ``prompt`` is a conversation ``{"turns": [{"role", "content": {"text"}}]}`` and ``outputs`` a
list of messages ``{"text": ...}`` (or ``null`` for a failed generation). The label of an output is
``hit`` when any detector scored it ≥ the run's threshold (0.5 unless the setup says otherwise), else
``pass``; unjudged outputs have none.

Example:
    >>> from pathlib import Path
    >>> p = Path(__file__).parents[4] / "tests/data/tool_formats/garak/quack.report.jsonl"
    >>> items = list(read_garak(p))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem

__all__ = ["read_garak", "is_garak"]


def is_garak(first_line: str) -> bool:
    """Whether a JSONL file's first line is a garak report's header."""
    try:
        return json.loads(first_line).get("entry_type") in ("start_run setup", "init", "attempt")
    except (json.JSONDecodeError, AttributeError):
        return False


def _text(x: Any) -> str | None:
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, dict):
        if "turns" in x:  # a Conversation: the last user turn is the prompt
            users = [t for t in x["turns"] if t.get("role") == "user"] or x["turns"]
            return _text(users[-1].get("content")) if users else None
        return x.get("text")
    return None


def read_garak(path: Path) -> Iterator[AuditItem | Problem]:
    """Items of a garak report, in the order of the attempts' first appearance."""
    attempts: dict[str, tuple[int, dict[str, Any]]] = {}
    problems: list[tuple[int, str, str]] = []
    threshold = 0.5
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append((line_no, f"not JSON ({e.msg})", line[:500]))
                continue
            kind = entry.get("entry_type")
            if kind == "start_run setup":
                threshold = float(entry.get("run.eval_threshold") or threshold)
            if kind != "attempt":
                continue
            uid = entry.get("uuid") or f"line{line_no}"
            first_line = attempts[uid][0] if uid in attempts else line_no
            if uid not in attempts or int(entry.get("status", 0)) >= int(attempts[uid][1].get("status", 0)):
                attempts[uid] = (first_line, entry)
    index = 0
    for line_no, message, raw in problems:
        yield Problem(index, line_no, message, "garak", raw)
        index += 1
    for uid, (line_no, entry) in attempts.items():
        prompt = _text(entry.get("prompt"))
        if not isinstance(prompt, str):
            yield Problem(index, line_no, f"attempt {uid} has no prompt text", "garak")
            index += 1
            continue
        outputs = entry.get("outputs") or [None]
        scores = entry.get("detector_results") or {}
        for k, out in enumerate(outputs):
            judged = [s[k] for s in scores.values() if isinstance(s, list) and k < len(s) and s[k] is not None]
            label = None if not judged else ("hit" if max(judged) >= threshold else "pass")
            meta = {"probe": entry.get("probe_classname"), "goal": entry.get("goal"), "uuid": uid,
                    "output_index": k, "detector_results": {d: (s[k] if isinstance(s, list) and k < len(s) else None)
                                                            for d, s in scores.items()}}
            yield AuditItem(index, line_no, prompt, "garak", _text(out), label, meta)
            index += 1
