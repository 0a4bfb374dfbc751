"""Readers of the inputs an audit takes: plain JSONL/CSV logs and red-team tools' result files.

:func:`read_items` picks the reader from the file: a garak report (``*.report.jsonl`` or a JSONL whose first
line is a garak header), a promptfoo output (JSON with ``results.results``), a PyRIT memory (SQLite with
``PromptMemoryEntries``), a JailbreakBench artifact (JSON with ``parameters`` and ``jailbreaks``), HarmBench
completions or results (JSON mapping behavior ids to ``test_case`` records), an Inspect log (``.eval``, or JSON
with an ``eval`` header), an OpenAI chat-completions log (JSONL whose records hold ``messages``), OpenTelemetry span JSON (OTLP/JSON
or the SDK's span lines), BIPIA's context/question JSONL, else JSON Lines
or CSV by extension (StrongREJECT's ``forbidden_prompt``/``response``/``score`` columns included). Each reader yields
:class:`~diffusiongemma.audit.items.AuditItem` and, for records it cannot read,
:class:`~diffusiongemma.audit.items.Problem` — never an exception for one bad record.

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("prompt,label\\nHow do I bake bread?,benign\\n")
    >>> detect_format(p), [i.prompt for i in read_items(p)]
    ('csv', ['How do I bake bread?'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ...errors import InputError
from ..items import AuditItem, Problem
from .bipia import is_bipia, read_bipia
from .garak import is_garak, read_garak
from .harmbench import is_harmbench, read_harmbench
from .inspect_log import is_inspect_json, read_inspect
from .jailbreakbench import is_jailbreakbench, read_jailbreakbench
from ...jsontext import NotJSON, loads
from .openai_chat import is_openai_chat, read_openai_chat
from .otel import is_otel, read_otel
from .plain import read_csv, read_jsonl
from .promptfoo import is_promptfoo, read_promptfoo
from .pyrit import is_pyrit, read_pyrit

__all__ = ["FORMATS", "detect_format", "read_items"]

FORMATS = {"jsonl": read_jsonl, "csv": read_csv, "garak": read_garak, "promptfoo": read_promptfoo,
           "pyrit": read_pyrit, "jailbreakbench": read_jailbreakbench, "harmbench": read_harmbench,
           "openai": read_openai_chat, "inspect": read_inspect, "otel": read_otel, "bipia": read_bipia}


def detect_format(path: Path) -> str:
    """The reader for ``path`` (see the module docstring); :class:`InputError` when none fits."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if is_pyrit(path):
        return "pyrit"
    if path.suffix == ".eval":  # Inspect's zip log
        return "inspect"
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    if path.name.endswith(".report.jsonl") or is_garak(first):
        return "garak"
    if path.suffix == ".json":
        try:
            data = loads(path.read_text(encoding="utf-8", errors="replace"))
        except NotJSON:
            data = None
        if is_inspect_json(data):
            return "inspect"
        if is_otel(data):
            return "otel"
        if is_jailbreakbench(data):
            return "jailbreakbench"
        if is_harmbench(data):
            return "harmbench"
        if is_promptfoo(data) or isinstance(data, list):
            return "promptfoo"
    if path.suffix in (".jsonl", ".ndjson") or first.lstrip().startswith("{"):
        try:
            record = loads(first)
        except NotJSON:
            record = None
        return "openai" if is_openai_chat(record) else "otel" if is_otel(record) else \
            "bipia" if is_bipia(record) else "jsonl"
    if path.suffix in (".csv", ".tsv") or "," in first:
        return "csv"
    raise InputError(f"cannot tell the format of {path}: expected JSONL, CSV, a garak report, a promptfoo "
                     "output, a PyRIT memory database, a JailbreakBench artifact, a HarmBench completions file, an Inspect "
                     "log, an OpenAI chat log or OpenTelemetry spans "
                     "(or pass --format)")


def read_items(path: Path, fmt: str | None = None) -> Iterator[AuditItem | Problem]:
    """The items (and problems) of ``path`` in a stable order, so an audit can resume by index."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt](Path(path))
