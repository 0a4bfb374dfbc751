"""The audit summary page and one page per audited item (self-contained, no scripts, every text escaped).

Examples:
    >>> import tempfile
    >>> from diffusiongemma.audit.store import AuditStore
    >>> from diffusiongemma.audit.example import example_store
    >>> out = write_audit_report(AuditStore(example_store(), readonly=True), tempfile.mkdtemp() + "/audit.html")
    >>> out.read_text().startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..report.html import ENV

__all__ = ["write_audit_report"]

_REPORT_TEMPLATES = {"verify-safety": "safety.html.j2", "harden": "harden.html.j2"}


def write_audit_report(store: Any, path: str | Path) -> Path:
    """Write ``path`` (the summary) and ``<stem>_items/<key>.html`` for every audited item; returns ``path``."""
    from ..attribution import Attribution
    from .summary import summarize

    path = Path(path)
    pages = path.parent / f"{path.stem}_items"
    pages.mkdir(parents=True, exist_ok=True)
    summary = summarize(store)
    links: dict[str, str] = {}
    for row in store.rows(status="done", full=True):
        if row["result"]:
            page = pages / f"item-{int(row['key']):06d}.html"
            Attribution.from_dict(row["result"]).to_html(page)
            links[row["key"]] = f"{pages.name}/{page.name}"
    reports = []
    for rep in store.reports(full=True):  # verify-safety and harden results kept in the same store
        page = pages / f"report-{rep['id']:04d}.html"
        page.write_text(ENV.get_template(_REPORT_TEMPLATES[rep["kind"]]).render(r=rep["report"]), encoding="utf-8")
        reports.append({**{k: v for k, v in rep.items() if k != "report"}, "link": f"{pages.name}/{page.name}"})
    meta = store.meta()
    html = ENV.get_template("audit.html.j2").render(s=summary, links=links, meta=meta, store=store.path.name,
                                                     reports=reports)
    path.write_text(html, encoding="utf-8")
    return path
