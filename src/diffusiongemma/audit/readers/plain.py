"""Plain logs: JSON Lines and CSV, one prompt per record (optional response and label).

A record's prompt is the first of the fields ``prompt``, ``text``, ``input``, ``goal``, ``question``,
``jailbroken_prompt`` (what StrongREJECT's pipeline sent), ``forbidden_prompt`` (its request); its response the first of ``response``, ``output``, ``completion``,
``reply``; its label ``label``, ``verdict`` or ``score`` (StrongREJECT's 0–1 grade, kept as given). A line that is not a JSON object, or has no prompt field, is a :class:`Problem`.

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> _ = p.write_text('{"prompt": "hi", "response": "hello"}\\nnot json\\n')
    >>> [type(x).__name__ for x in read_jsonl(p)]
    ['AuditItem', 'Problem']
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem
from .jsonfile import json_lines

__all__ = ["read_jsonl", "read_csv", "item_from_record"]

PROMPT_FIELDS = ("prompt", "text", "input", "goal", "question", "jailbroken_prompt", "forbidden_prompt")
RESPONSE_FIELDS = ("response", "output", "completion", "reply")
LABEL_FIELDS = ("label", "verdict", "score")


def _first(record: dict[str, Any], names: tuple[str, ...], *, empty: bool = False) -> str | None:
    """The first of ``names`` the record has a value for (an empty one too, with ``empty``)."""
    for name in names:
        if record.get(name) is not None and (empty or record[name] != ""):
            return name
    return None


def item_from_record(record: Any, index: int, line: int, source: str) -> AuditItem | Problem:
    """One JSON/CSV record as an item, or the reason it is not one.

    Examples:
        >>> item = item_from_record({'prompt': 'Hi', 'response': 'Hello', 'id': 7}, 0, 1, 'jsonl')
        >>> item.prompt, item.response, item.meta
        ('Hi', 'Hello', {'id': 7})
        >>> item_from_record(['Hi'], 0, 1, 'jsonl').message
        'expected a JSON object, got list'
    """
    if not isinstance(record, dict):
        return Problem(index, line, f"expected a JSON object, got {type(record).__name__}", source)
    used = [_first(record, PROMPT_FIELDS, empty=True), _first(record, RESPONSE_FIELDS),
            _first(record, LABEL_FIELDS)]  # an empty prompt is the audit's to report
    prompt, response, label = (None if k is None else record[k] for k in used)
    if not isinstance(prompt, str):
        return Problem(index, line, f"no prompt: the record needs one of the fields {', '.join(PROMPT_FIELDS)} "
                       "holding text", source, json.dumps(record)[:500])
    meta = {k: v for k, v in record.items() if k not in used}  # the other fields, kept (a base request too)
    return AuditItem(index, line, prompt, source, None if response is None else str(response),
                     None if label is None else str(label), meta)


def read_jsonl(path: Path) -> Iterator[AuditItem | Problem]:
    """Every non-blank line of a JSON Lines file (line numbers from 1)."""
    return json_lines(path, "jsonl", lambda record, index, line_no, _raw: item_from_record(record, index, line_no,
                                                                                         "jsonl"))


def read_csv(path: Path) -> Iterator[AuditItem | Problem]:
    """Every row of a CSV file with a header (line numbers count the header as line 1)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not set(reader.fieldnames) & set(PROMPT_FIELDS):
            yield Problem(0, 1, f"the CSV header needs a prompt column (one of {', '.join(PROMPT_FIELDS)}); "
                          f"it has {', '.join(reader.fieldnames or [])}", "csv")
            return
        for index, row in enumerate(reader):
            if None in row:  # more cells than header columns
                yield Problem(index, reader.line_num, f"{len(row[None])} cell(s) more than the header has", "csv",
                              json.dumps(row, default=str)[:500])
                continue
            yield item_from_record({k: v for k, v in row.items() if v is not None}, index, reader.line_num, "csv")
