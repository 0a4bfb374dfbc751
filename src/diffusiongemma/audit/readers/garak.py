"""garak ``*.report.jsonl``: one item per generated output of every attempt.

garak writes each attempt twice (status 1: answered, status 2: answered and judged); the last one of a
``uuid`` wins. Two layouts exist: before 0.13 ``prompt`` is a string and ``outputs`` a list of strings;
since then ``prompt`` is a conversation ``{"turns": [{"role", "content": {"text"}}]}`` and ``outputs`` a
list of messages ``{"text": ...}`` (or ``null`` for a failed generation). The label of an output is
``hit`` when any detector scored it ≥ the run's threshold (0.5 unless the setup says otherwise), else
``pass``; unjudged outputs have none.

Examples:
    >>> from pathlib import Path
    >>> p = Path(__file__).parents[4] / "tests/data/tool_formats/garak/quack.report.jsonl"
    >>> items = list(read_garak(p))  # in a source checkout: garak's own test report
    >>> len(items) > 0 and all(isinstance(x, (AuditItem, Problem)) for x in items)
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem
from ...jsontext import NotJSON, loads
from .jsonfile import json_lines

__all__ = ["read_garak", "is_garak"]


def is_garak(first_line: str) -> bool:
    """Whether a JSONL file's first line is a garak report's header.

    Examples:
        >>> is_garak('{"entry_type": "start_run setup", "_config.version": "0.9.0"}'), is_garak('{"prompt": "Hi"}')
        (True, False)
    """
    try:
        return loads(first_line).get("entry_type") in ("start_run setup", "init", "attempt")
    except (NotJSON, AttributeError):
        return False


def _text(x: Any) -> str | None:
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, dict):
        if isinstance(x.get("turns"), list):  # a Conversation: the last user turn is the prompt
            turns = [t for t in x["turns"] if isinstance(t, dict)]
            users = [t for t in turns if t.get("role") == "user"] or turns
            return _text(users[-1].get("content")) if users else None
        return x["text"] if isinstance(x.get("text"), str) else None
    return None


def _number(value: Any, default: float) -> float:
    """A numeric field of a garak entry, or ``default`` where it is missing or not a number."""
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def read_garak(path: Path) -> Iterator[AuditItem | Problem]:
    """Items of a garak report, in the order of the attempts' first appearance."""
    attempts: dict[str, tuple[int, dict[str, Any]]] = {}
    problems: list[tuple[int, str, str]] = []
    threshold = 0.5
    for x in json_lines(path, "garak", lambda record, _index, line_no, raw: (line_no, record, raw)):
        if isinstance(x, Problem):
            problems.append((x.line, x.message, x.raw))
            continue
        line_no, entry, raw = x
        if not isinstance(entry, dict):
            problems.append((line_no, f"expected a JSON object, got {type(entry).__name__}", raw[:500]))
            continue
        kind = entry.get("entry_type")
        if kind == "start_run setup":
            threshold = _number(entry.get("run.eval_threshold"), threshold)
        if kind != "attempt":
            continue
        uid = str(entry.get("uuid") or f"line{line_no}")
        first_line = attempts[uid][0] if uid in attempts else line_no
        if uid not in attempts or _number(entry.get("status"), 0) >= _number(attempts[uid][1].get("status"), 0):
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
        outputs = outputs if isinstance(outputs, list) else [outputs]
        scores = entry.get("detector_results")
        scores = scores if isinstance(scores, dict) else {}
        for k, out in enumerate(outputs):
            judged = [float(s[k]) for s in scores.values()
                      if isinstance(s, list) and k < len(s) and isinstance(s[k], (int, float))]
            label = None if not judged else ("hit" if max(judged) >= threshold else "pass")
            meta = {"probe": entry.get("probe_classname"), "goal": entry.get("goal"), "uuid": uid,
                    "output_index": k, "detector_results": {d: (s[k] if isinstance(s, list) and k < len(s) else None)
                                                            for d, s in scores.items()}}
            yield AuditItem(index, line_no, prompt, "garak", _text(out), label, meta)
            index += 1
