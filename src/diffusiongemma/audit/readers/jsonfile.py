"""One JSON document read for a reader: its data, or the one :class:`Problem` that says why it is not the
tool's file (not JSON; JSON of another shape).

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_text("[1, 2]")
    >>> data, problem = json_document(p, "harmbench", lambda d: isinstance(d, dict), "a HarmBench file")
    >>> data, problem.message
    (None, 'not a HarmBench file: its JSON has another shape')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...jsontext import NotJSON, loads
from ..items import Problem

__all__ = ["json_document"]


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
