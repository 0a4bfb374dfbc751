"""The audit-diff page: one self-contained file, no scripts, every text escaped.

Examples:
    >>> import tempfile
    >>> from diffusiongemma.audit.diff import diff_stores
    >>> from diffusiongemma.audit.store import AuditStore
    >>> from diffusiongemma.audit.example import example_store
    >>> d = diff_stores(AuditStore(example_store(), readonly=True), AuditStore(example_store(), readonly=True))
    >>> write_audit_diff(d, tempfile.mkdtemp() + "/diff.html").name
    'diff.html'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .html import ENV

__all__ = ["write_audit_diff"]


def write_audit_diff(diff: Any, path: str | Path) -> Path:
    """Write the page of an :class:`~diffusiongemma.audit.diff.AuditDiff` to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ENV.get_template("audit_diff.html.j2").render(d=diff.to_dict()), encoding="utf-8")
    return path
