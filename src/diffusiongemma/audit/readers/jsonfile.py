"""One JSON document read for a reader: its data, or the one :class:`Problem` that says why it is not the
tool's file (not JSON; JSON of another shape).

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_text("[1, 2]")
    >>> data, problem = json_document(p, "harmbench", lambda d: isinstance(d, dict), "a HarmBench file")
    >>> data, problem.message
    (None, 'not a HarmBench file: its JSON has another shape')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

from ...jsontext import NotJSON, loads
from ..items import Problem

__all__ = ["json_document", "json_lines"]


def json_document(path: Path, source: str, fits: Callable[[Any], bool], what: str,
                  shape: str = "its JSON has another shape") -> tuple[Any, Problem | None]:
    """``(data, None)`` when ``path`` holds JSON that ``fits``; else ``(None, problem)``."""
    try:
        data = loads(Path(path).read_text(encoding="utf-8", errors="replace"))
    except NotJSON as e:
        return None, Problem(0, e.lineno, f"not {what}: {e}", source)
    if not fits(data):
        return None, Problem(0, 1, f"not {what}: {shape}", source)
    return data, None


def json_lines(path: Path, source: str, item: Callable[[Any, int, int, str], Any]) -> Iterator[Any]:
    """Every non-blank line of a JSON Lines file: ``item(record, index, line_no, raw_line)``, or a
    :class:`Problem` for a line that is not JSON (indices count both; line numbers from 1).

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
        >>> _ = p.write_text('{"a": 1}\\n\\nnot json\\n')
        >>> [type(x).__name__ if isinstance(x, Problem) else x for x in json_lines(p, "jsonl", lambda r, i, n, raw: (i, n, r))]
        [(0, 1, {'a': 1}), 'Problem']
    """
    index = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except NotJSON as e:
                yield Problem(index, line_no, f"not JSON: {e}" if source != "jsonl" else str(e), source, line[:500])
            else:
                yield item(record, index, line_no, line)
            index += 1
