"""PyRIT's SQLite memory (``pyrit.db`` of ``SQLiteMemory``): one item per user turn that got an answer.

The table ``PromptMemoryEntries`` holds every message piece: ``conversation_id``, ``sequence``, ``role`` and
the text — ``converted_value`` (what was sent, after PyRIT's converters; ``original_value`` before them),
or ``converted_prompt_text``/``original_prompt_text`` in PyRIT before 0.5. Each user piece is paired with
the assistant piece that follows it in its conversation; the item's prompt is the converted text (what
the model saw), the original is kept in ``meta``. Scores (``ScoreEntries``) attached to the answer give the
label: ``true``/``false`` of the first true/false scorer, with its category. The file is opened read-only.

Examples:
    >>> from pathlib import Path
    >>> list(read_pyrit(Path("/nonexistent.db")))[0].message[:22]
    'cannot open PyRIT memo'
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem

__all__ = ["read_pyrit", "is_pyrit"]

TABLE = "PromptMemoryEntries"


def is_pyrit(path: Path) -> bool:
    """Whether ``path`` is an SQLite file with PyRIT's memory table."""
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return False
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute("SELECT 1 FROM sqlite_master WHERE name=?", (TABLE,)).fetchone() is not None
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return False


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}


def _labels(con: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    if "ScoreEntries" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}:
        return {}
    cols = _columns(con, "ScoreEntries")
    if not {"prompt_request_response_id", "score_value"} <= cols:
        return {}
    out: dict[str, tuple[str, str]] = {}
    category = "score_category" if "score_category" in cols else "''"
    kind = "score_type" if "score_type" in cols else "'true_false'"
    for rid, value, cat, typ in con.execute(
            f"SELECT prompt_request_response_id, score_value, {category}, {kind} FROM ScoreEntries ORDER BY rowid"):
        if rid is not None and typ == "true_false" and str(rid) not in out:
            out[str(rid)] = (str(value).lower(), str(cat or ""))
    return out


def _order(row: tuple[Any, ...]) -> tuple[int, float, str]:
    """A turn's place in its conversation: by sequence number, then timestamp, whatever types the columns
    hold (a missing or non-numeric sequence sorts last)."""
    seq = row[2]
    number = isinstance(seq, (int, float)) and not isinstance(seq, bool)
    return (0 if number else 1, float(seq) if number else 0.0, str(row[7] or ""))


def read_pyrit(path: Path) -> Iterator[AuditItem | Problem]:
    """User turns and their answers, conversation by conversation, in time order."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        cols = _columns(con, TABLE)
    except sqlite3.Error as e:
        yield Problem(0, 0, f"cannot open PyRIT memory {path}: {e}", "pyrit")
        return
    if not cols:
        yield Problem(0, 0, f"{path} has no {TABLE} table: not a PyRIT memory database", "pyrit")
        return
    new = "converted_value" in cols
    sent, orig = ("converted_value", "original_value") if new else ("converted_prompt_text", "original_prompt_text")
    rows = con.execute(f'SELECT id, conversation_id, sequence, role, {sent}, {orig}, '
                       f'{"original_value_data_type" if new else "original_prompt_data_type"}, timestamp '
                       f'FROM "{TABLE}" ORDER BY timestamp, rowid').fetchall()
    labels = _labels(con)
    con.close()
    conversations: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        conversations[row[1]].append(row)
    index = 0
    for conv_id, pieces in conversations.items():
        pieces.sort(key=_order)
        for i, (_pid, _, seq, role, text, original, dtype, _ts) in enumerate(pieces):
            if role != "user":
                continue
            if dtype not in (None, "text") or not isinstance(text, (str, type(None))):
                yield Problem(index, seq, f"conversation {conv_id} turn {seq} is {dtype}, not text", "pyrit")
                index += 1
                continue
            answer = next((p for p in pieces[i + 1:] if p[3] == "assistant"), None)
            label = labels.get(str(answer[0])) if answer else None
            meta = {"conversation_id": conv_id, "sequence": seq, "original_prompt": original}
            if label:
                meta["score_category"] = label[1]
            yield AuditItem(index, seq, text or "", "pyrit", answer[4] if answer else None,
                            label[0] if label else None, meta)
            index += 1
