"""promptfoo ``promptfoo eval -o results.json``: one item per result row.

The file is ``{"evalId", "results": {"version": 3, "results": [row, ...], ...}, "config", ...}`` (version 2
files keep the rows at ``results.results`` too; a bare list of rows is read as well). A row's prompt is
``prompt.raw`` — when that is a chat (a JSON list of ``{"role", "content"}``) the last user message — its
response ``response.output``, its label ``pass``/``fail`` from ``success`` (``error`` when the provider
failed: ``failureReason`` 2), and its red-team plugin and strategy are kept from ``testCase.metadata``.

Examples:
    >>> _prompt_text('[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]')
    'Hi'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem
from ...jsontext import NotJSON, loads

__all__ = ["read_promptfoo", "is_promptfoo"]


def is_promptfoo(data: Any) -> bool:
    """Whether parsed JSON looks like a promptfoo output file.

    Examples:
        >>> is_promptfoo({'evalId': 'e1', 'results': {'version': 3, 'results': []}}), is_promptfoo({'results': []})
        (True, False)
    """
    return isinstance(data, dict) and isinstance(data.get("results"), dict) and "results" in data["results"]


def _prompt_text(raw: str) -> str:
    if not isinstance(raw, str):
        return raw
    try:
        chat = loads(raw)
    except NotJSON:
        return raw
    if isinstance(chat, list) and chat and all(isinstance(m, dict) and "content" in m for m in chat):
        users = [m for m in chat if m.get("role") == "user"] or chat
        content = users[-1]["content"]
        if isinstance(content, list):  # content parts
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content)
    return raw


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a hostile or truncated file's field of another type)."""
    return value if isinstance(value, dict) else {}


def _output(response: Any) -> str | None:
    if not isinstance(response, dict):
        return None
    out = response.get("output")
    if out is None or isinstance(out, str):
        return out
    return json.dumps(out)


def read_promptfoo(path: Path) -> Iterator[AuditItem | Problem]:
    """Items of a promptfoo JSON output (row numbers from 1 as ``line``)."""
    try:
        data = loads(Path(path).read_text(encoding="utf-8", errors="replace"))
    except NotJSON as e:
        yield Problem(0, e.lineno, f"{e}; a promptfoo output is one JSON document", "promptfoo")
        return
    rows = data if isinstance(data, list) else _dict(_dict(data).get("results")).get("results")
    if not isinstance(rows, list):
        yield Problem(0, 1, "no results.results list: not a promptfoo output file", "promptfoo")
        return
    for index, row in enumerate(rows):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        raw = prompt.get("raw") if isinstance(prompt, dict) else prompt
        if not isinstance(raw, str):
            yield Problem(index, index + 1, "result row without prompt.raw text", "promptfoo", json.dumps(row)[:500])
            continue
        meta_case = _dict(_dict(row.get("testCase")).get("metadata"))
        # failureReason 2 is a provider error; 1 a failed assertion (whose text promptfoo also puts in "error")
        failed_call = row.get("failureReason") == 2 or bool(_dict(row.get("response")).get("error"))
        label = "error" if failed_call else (None if row.get("success") is None else ("pass" if row["success"] else "fail"))
        meta = {"provider": (row.get("provider") or {}).get("id") if isinstance(row.get("provider"), dict)
                else row.get("provider"),
                "vars": row.get("vars"), "plugin": meta_case.get("pluginId"), "strategy": meta_case.get("strategyId"),
                "reason": _dict(row.get("gradingResult")).get("reason"), "score": row.get("score")}
        yield AuditItem(index, index + 1, _prompt_text(raw), "promptfoo", _output(row.get("response")), label,
                        {k: v for k, v in meta.items() if v not in (None, {}, "")})
