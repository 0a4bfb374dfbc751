"""Audit one item, and a whole input into a store: the loop ``diffusiongemma audit`` runs.

Each item goes through :func:`~diffusiongemma.refusal.explain_refusal` (the decision on the logged reply,
or on the model's own when the log has none; the refusal score's token map; the top components; the
confirmed minimal flip set; the deletion check) and lands in the store as one row. Items whose prompt is
empty or too long, records the reader could not parse, and model failures become error rows with the
reason; the audit goes on.

Example:
    >>> settings = AuditSettings(budget=32, components=None)
    >>> settings.evaluations_per_item(n_units=10)  # 32 map + 20 flip-set search + 4 deletion check + 4 reply
    60
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import DiffusionGemmaError
from .items import AuditItem, Problem
from .readers import detect_format, read_items
from .store import AuditStore

__all__ = ["AuditSettings", "audit_item", "run_audit", "pending_items", "file_sha256", "generate_group_replies"]


@dataclass(frozen=True)
class AuditSettings:
    """What every item of an audit gets (part of the store's identity: a resume must use the same)."""

    units: str = "words"
    method: str = "shapley"
    budget: int = 64
    components: str | None = "heads+mlps"
    component_budget: int = 24
    triggers: bool = True
    faithfulness: bool = True
    max_new_tokens: int = 32
    system: str | None = None
    seed: int = 0

    def evaluations_per_item(self, n_units: int) -> int:
        """A planning estimate of model evaluations per item (map + checks + components + the reply)."""
        checks = (2 * n_units if self.triggers else 0) + (4 if self.faithfulness else 0)
        comps = 3 * self.component_budget if self.components else 0
        return self.budget + checks + comps + 4


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _top(units: list[tuple[Any, float, float]]) -> list[list[Any]]:
    return [[u.text if hasattr(u, "text") else str(u), round(float(s), 5), round(float(e), 5)] for u, s, e in units]


def audit_item(lm: Any, item: AuditItem, settings: AuditSettings, reply: str | None = None) -> dict[str, Any]:
    """One item's row for the store (``status`` ``done``, or ``error`` with the reason). ``reply``: the model's
    own reply, generated beforehand for an item the log gives none (see :func:`generate_group_replies`).

    Example:
        >>> row = audit_item(load_model("gemma-270m-safety"), AuditItem(0, 1, "How do I make a bomb?", "jsonl"),
        ...                  AuditSettings(budget=32))  # doctest: +SKIP
        >>> row["refused"]  # doctest: +SKIP
        True
    """
    from ..refusal import explain_refusal

    base = {"key": item.key, "line": item.line, "source": item.source, "prompt": item.prompt,
            "label": item.label, "meta": item.meta, "response_given": int(item.response is not None)}
    t0 = time.perf_counter()
    if not item.prompt.strip():
        return {**base, "status": "error", "response": item.response, "error": "empty prompt: nothing to explain"}
    try:
        attr = explain_refusal(item.prompt, response=item.response, model=lm, units=settings.units,
                               method=settings.method, budget=settings.budget, seed=settings.seed,
                               system=settings.system, max_new_tokens=settings.max_new_tokens,
                               triggers=settings.triggers, faithfulness=settings.faithfulness,
                               components=settings.components, component_budget=settings.component_budget,
                               generated_reply=None if item.response is not None else reply)
    except DiffusionGemmaError as e:  # too long for the context, no units, NaN from the model, ...
        return {**base, "status": "error", "response": item.response, "error": str(e),
                "seconds": time.perf_counter() - t0}
    except Exception as e:  # one item's failure must not end a batch audit: recorded, the rest goes on
        return {**base, "status": "error", "response": item.response, "error": f"{type(e).__name__}: {e}",
                "seconds": time.perf_counter() - t0}
    d = attr.decision or {}
    flip = (attr.triggers or {}).get("necessary")
    return {
        **base, "status": "done", "response": d.get("reply"), "refused": int(bool(d.get("refused"))),
        "refusal_score": float(attr.v_full), "top_units": _top(attr.top(8)),
        "top_components": [[c["unit"], round(c["score"], 5), round(c["stderr"], 5)] for c in d.get("components", [])],
        "flip_set": [attr.units[i].text for i in flip.units] if flip else None,
        "flip_confirmed": None if flip is None else int(flip.confirmed),
        "deletion_auc": attr.faithfulness.deletion_auc if attr.faithfulness else None,
        "result": attr.to_dict(), "seconds": time.perf_counter() - t0,
    }


REPLY_GROUP = 16  # items whose replies are generated in one batch


def generate_group_replies(lm: Any, items: list[AuditItem | Problem], settings: AuditSettings) -> dict[str, str]:
    """The model's greedy replies for the items of a group that the log gives none, generated in one batch
    (equal to one at a time, several times faster: on 2 CPU cores 16 replies of 32 tokens take 7.6 s
    instead of 36 s). Keyed by item key; empty if the batch fails, so that each item then generates its
    own reply and a failure stays that item's error row.

    Example:
        >>> generate_group_replies(lm, [AuditItem(0, 1, "How do I make a bomb?", "jsonl")], AuditSettings())  # doctest: +SKIP
        {'...': "I'm sorry, but I can't help with that."}
    """
    from ..generation import generate_replies

    todo = [x for x in items if isinstance(x, AuditItem) and x.response is None and x.prompt.strip()]
    if len(todo) < 2:
        return {}
    try:
        replies = generate_replies(lm, [x.prompt for x in todo], max_new_tokens=settings.max_new_tokens,
                                   system=settings.system, batch_size=REPLY_GROUP)
    except Exception:  # noqa: BLE001 - e.g. one prompt longer than the context: each item reports its own
        return {}
    return {x.key: r for x, r in zip(todo, replies)}


def pending_items(path: Path, fmt: str | None, done: set[str]) -> Iterable[AuditItem | Problem]:
    """The input's records whose key is not stored yet, in input order."""
    return (x for x in read_items(path, fmt) if x.key not in done)


def identity(path: Path, fmt: str, model_name: str, settings: AuditSettings) -> dict[str, Any]:
    """What a store must match to be resumed: the input's bytes, its format, the model and the settings."""
    return {"input_sha256": file_sha256(path), "format": fmt, "model": model_name, "settings": asdict(settings)}


def problem_row(p: Problem) -> dict[str, Any]:
    return {"key": p.key, "line": p.line, "status": "error", "source": p.source, "error": p.message,
            "meta": {"raw": p.raw} if p.raw else None}


def run_audit(path: str | Path, store: AuditStore, lm: Any, settings: AuditSettings, *, fmt: str | None = None,
              limit: int | None = None, on_row: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, int]:
    """Audit every pending record of ``path`` into ``store`` (one process, one model). Returns counts.

    ``limit``: stop after that many new rows (for a sample). ``on_row`` sees each stored row (progress).
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    store.bind(identity(path, fmt, lm.name, settings))
    counts = {"done": 0, "error": 0, "skipped": 0}
    done = store.done_keys()
    counts["skipped"] = len(done)
    pending = iter(pending_items(path, fmt, done))
    while limit is None or counts["done"] + counts["error"] < limit:
        room = REPLY_GROUP if limit is None else min(REPLY_GROUP, limit - counts["done"] - counts["error"])
        group = [x for _, x in zip(range(room), pending)]
        if not group:
            break
        replies = generate_group_replies(lm, group, settings)
        for x in group:
            row = problem_row(x) if isinstance(x, Problem) else audit_item(lm, x, settings, replies.get(x.key))
            store.put(row)
            counts[row["status"]] += 1
            if on_row:
                on_row(row)
    return counts
