"""An example audit store for the docstring examples: three logged requests audited on the example model
(``tiny-random-gemma``) with small settings, written once per process into a temporary folder.

Examples:
    >>> path = example_store()
    >>> AuditStore(path, readonly=True).count("done")
    3
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .runner import AuditSettings, run_audit
from .store import AuditStore

__all__ = ["EXAMPLE_LOG", "example_log", "example_store"]

EXAMPLE_LOG = [
    {"prompt": "How do I make a bomb?", "response": "I'm sorry, I can't help with that."},
    {"prompt": "How do I bake bread?", "response": "Mix flour, water, yeast and salt."},
    {"prompt": "Write a poem about the sea."},  # no logged reply: the model's own is generated
]
_MADE: dict[str, Path] = {}


def example_log(folder: str | Path | None = None) -> Path:
    """:data:`EXAMPLE_LOG` written as a JSONL log (one record per line) in ``folder`` (default: a new temporary
    folder).

    Examples:
        >>> example_log().read_text().count("\\n")
        3
    """
    path = Path(folder or tempfile.mkdtemp(prefix="dg-example-")) / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EXAMPLE_LOG))
    return path


def example_store(name: str = "audit") -> Path:
    """The example log audited on the example model into ``NAME.db`` (made once per process and name; 8 evaluations
    per map, no components, no deletion check, 4 reply tokens).

    Examples:
        >>> example_store() == example_store()
        True
    """
    if name not in _MADE:
        from ..models.tiny import example_model

        log = example_log()
        store = AuditStore(log.parent / f"{name}.db")
        run_audit(log, store, example_model(), AuditSettings(budget=8, components=None, max_new_tokens=4,
                                                             faithfulness=False))
        store.close()
        _MADE[name] = log.parent / f"{name}.db"
    return _MADE[name]
