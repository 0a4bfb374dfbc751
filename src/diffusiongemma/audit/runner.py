"""Audit one item, and a whole input into a store: the loop ``diffusiongemma audit`` runs.

Each item goes through :func:`~diffusiongemma.refusal.explain_refusal` (the decision on the logged reply,
or on the model's own when the log has none; the refusal score's token map; the top components; the
confirmed minimal flip set; the deletion check) and lands in the store as one row. Items whose prompt is
empty or too long, records the reader could not parse, and model failures become error rows with the
reason; the audit goes on. Items go in groups of 16 (:func:`audit_group`): their missing replies are
generated in one batch and their maps' masks share forwards, so an accelerator sees large batches; each
row is what the item gets alone.

Examples:
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

import numpy as np

from ..errors import DiffusionGemmaError, InputError, StoreError
from ..refusal.options import RefusalOptions
from .items import AuditItem, Problem
from .readers import detect_format, read_items
from .store import AuditStore

__all__ = ["AuditSettings", "audit_item", "run_audit", "pending_items", "file_sha256", "audit_group", "identity",
           "keep_provenance"]


@dataclass(frozen=True)
class AuditSettings:
    """What every item of an audit gets (part of the store's identity: a resume must use the same)."""

    units: str = "auto"
    method: str = "shapley"
    budget: int = 64
    components: str | None = "heads+mlps"
    component_budget: int = 24
    triggers: bool = True
    faithfulness: bool = True
    max_new_tokens: int = 32
    system: str | None = None
    seed: int = 0

    def validate(self) -> None:
        """Every setting checked before anything is written, so a bad one stores nothing (one sentence).

        Examples:
            >>> AuditSettings(budget=-1).validate()
            Traceback (most recent call last):
            ...
            diffusiongemma.errors.InputError: --budget must be a whole number of model evaluations of at least 2, got -1
            >>> AuditSettings(budget=4).validate()
            Traceback (most recent call last):
            ...
            diffusiongemma.errors.InputError: --budget 4 is too small for method shapley: an item of two or more units needs at least 6 model evaluations
        """
        from ..hierarchy import leaf_kind, parse_tree_spec
        from ..units import parse_unit_spec

        for name, value, least in (("budget", self.budget, 2), ("component-budget", self.component_budget, 1),
                                   ("max-new-tokens", self.max_new_tokens, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                what = "tokens" if name == "max-new-tokens" else "model evaluations"
                raise InputError(f"--{name} must be a whole number of {what} of at least {least}, got {value!r}")
        from ..api import METHODS
        from ..estimators import get_estimator
        from ..schedules import schedule_from_name

        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        estimator, schedule = METHODS[self.method]
        least = get_estimator(estimator).min_budget(2, schedule_from_name(schedule)) + 2
        if estimator != "exact" and self.budget < least:  # else every item of two or more units is an error row
            raise InputError(f"--budget {self.budget} is too small for method {self.method}: an item of two or "
                             f"more units needs at least {least} model evaluations")
        if self.units != "auto":
            for kind in parse_tree_spec(self.units) or [leaf_kind(self.units)]:
                parse_unit_spec(kind)
        if self.components:
            from ..components.sites import parse_component_spec

            parse_component_spec(self.components)

    def refusal_options(self, model: Any = None) -> RefusalOptions:
        """The options every item's :func:`~diffusiongemma.refusal.explain_refusals` gets (on ``model``).

        Examples:
            >>> o = AuditSettings(budget=32, components=None).refusal_options()
            >>> o.map.run.budget, o.components.components, o.components.component_budget, o.max_new_tokens
            (32, None, 24, 32)
        """
        return RefusalOptions.from_keywords(**asdict(self), **({"model": model} if model is not None else {}))

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


def _top(attr: Any, k: int = 8) -> list[list[Any]]:
    """The ``k`` strongest units as ``[text, score, stderr, resolved]`` (resolved: 1 when the unit is a finding
    after Holm's correction over the map's units, see :mod:`diffusiongemma.significance`)."""
    ok = attr.significance.resolved
    order = np.argsort(-np.abs(attr.scores), kind="stable")[:k]
    return [[attr.units[i].text, round(float(attr.scores[i]), 5), round(float(attr.stderr[i]), 5), int(ok[i])]
            for i in order]


def audit_item(lm: Any, item: AuditItem, settings: AuditSettings, reply: str | None = None) -> dict[str, Any]:
    """One item's row for the store (``status`` ``done``, or ``error`` with the reason). ``reply``: the model's
    own reply, generated beforehand for an item the log gives none.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> row = audit_item(example_model(), AuditItem(0, 1, "How do I make a bomb?", "jsonl",
        ...                  response="I'm sorry, I can't."), AuditSettings(budget=8, components=None))
        >>> row["status"], row["refused"]  # the detector on the logged reply
        ('done', 1)
    """
    return audit_group(lm, [item], settings, {item.key: reply} if reply is not None else None)[0]


def audit_group(lm: Any, items: list[AuditItem], settings: AuditSettings, replies: dict[str, str] | None = None,
                on_row: Callable[[dict[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
    """The rows of several items, audited together: their replies generated in one batch (where the log
    gives none) and their maps' masks evaluated in shared forwards
    (:func:`~diffusiongemma.refusal.explain_refusals`); each row is what the item gets alone. ``on_row``
    sees each row as soon as it is complete. A row's ``seconds`` is the wall time since the group's previous
    row (the group's shared work, replies and maps, counts to its first). ``replies``: replies generated
    beforehand, by item key.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> rows = audit_group(example_model(), [AuditItem(0, 1, "How do I make a bomb?", "jsonl"),
        ...                    AuditItem(1, 2, "", "jsonl")], AuditSettings(budget=8, components=None, max_new_tokens=4))
        >>> [r["status"] for r in rows]  # the empty prompt is an error row; the rest goes on
        ['done', 'error']
    """
    from ..refusal import explain_refusals

    clock = [time.perf_counter()]
    rows: list[dict[str, Any] | None] = [None] * len(items)

    def emit(k: int, result: Any) -> None:
        now = time.perf_counter()
        x = items[k]
        base = {"key": x.key, "line": x.line, "source": x.source, "prompt": x.prompt, "label": x.label,
                "meta": x.meta if x.messages is None else {**x.meta, "conversation": x.messages},
                "response_given": int(x.response is not None)}
        row = rows[k] = _row(base, x, result, now - clock[0])
        clock[0] = now
        if on_row is not None:
            on_row(row)

    live = [k for k, x in enumerate(items) if x.prompt.strip()]
    for k, x in enumerate(items):
        if not x.prompt.strip():
            emit(k, InputError("empty prompt: nothing to explain"))
    given = replies or {}
    try:
        explain_refusals(
            [items[k].request for k in live], responses=[items[k].response for k in live],
            options=settings.refusal_options(lm),
            generated_replies=[given.get(items[k].key) if items[k].response is None else None for k in live],
            on_result=lambda j, result: emit(live[j], result))
    except StoreError:  # the store cannot take rows: stop (what was stored stays), not an error row per item
        raise
    except Exception as e:  # noqa: BLE001 - a failure of the whole group (bad settings, say): every item's row
        for k in live:
            if rows[k] is None:
                emit(k, e)
    return rows  # type: ignore[return-value]


def _row(base: dict[str, Any], item: AuditItem, result: Any, seconds: float) -> dict[str, Any]:
    """An item's row from its attribution, or its error row (too long for the context, no units, NaN ...)."""
    if isinstance(result, Exception):
        error = str(result) if isinstance(result, DiffusionGemmaError) else f"{type(result).__name__}: {result}"
        return {**base, "status": "error", "response": item.response, "error": error, "seconds": seconds}
    attr = result
    d = attr.decision or {}
    flip = (attr.triggers or {}).get("necessary")
    return {
        **base, "status": "done", "response": d.get("reply"), "refused": int(bool(d.get("refused"))),
        "refusal_score": float(attr.v_full), "top_units": _top(attr),
        "top_components": [[c["unit"], round(c["score"], 5), round(c["stderr"], 5), int(bool(c.get("resolved")))]
                           for c in d.get("components", [])],
        "flip_set": [attr.units[i].text for i in flip.units] if flip else None,
        "flip_confirmed": None if flip is None else int(flip.confirmed),
        "deletion_auc": attr.faithfulness.deletion_auc if attr.faithfulness else None,
        "result": attr.to_dict(), "seconds": seconds,
    }


GROUP = 16  # items audited together: replies generated in one batch, maps' masks in shared forwards
WINDOW = 4 * GROUP  # pending items read at once and split into groups of like length
SPREAD = 2.0  # a group's longest item is at most this many times its shortest (in words)


def pending_items(path: Path, fmt: str | None, done: set[str]) -> Iterable[AuditItem | Problem]:
    """The input's records whose key is not stored yet, in input order."""
    return (x for x in read_items(path, fmt) if x.key not in done)


def identity(path: Path, fmt: str, model_name: str, settings: AuditSettings,
             patch_sha256: str | None = None) -> dict[str, Any]:
    """What a store must match to be resumed: the input's bytes, its format, the model (and its hardening
    patch, when one is applied) and the settings."""
    ident = {"input_sha256": file_sha256(path), "format": fmt, "model": model_name, "settings": asdict(settings)}
    if patch_sha256:
        ident["patch_sha256"] = patch_sha256
    return ident


def keep_provenance(store: AuditStore, provenance: dict[str, Any]) -> None:
    """Record in the store what the audit ran on (weights, adapter, patch, tokenizer and chat-template hashes,
    library versions), for the evidence bundle (:mod:`diffusiongemma.audit.bundle`)."""
    from ..models.provenance import library_versions

    store.set_meta("provenance", {**provenance, "versions": library_versions()})


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
    store.bind(identity(path, fmt, lm.name, settings, (lm.provenance.get("patch") or {}).get("sha256")))
    keep_provenance(store, lm.provenance)
    store.set_meta("grouping", {"backend": "local", "window": WINDOW, "group": GROUP, "spread": SPREAD})
    store.set_meta("input_path", str(path))
    counts = {"done": 0, "error": 0, "skipped": 0}
    done = store.done_keys()
    counts["skipped"] = len(done)
    records = iter(read_items(path, fmt))

    def left() -> int | None:
        return None if limit is None else limit - counts["done"] - counts["error"]

    def keep(row: dict[str, Any]) -> None:  # each new row stored as soon as it is complete
        if row["key"] in done or left() == 0:
            return  # a member of a resumed group that was stored before, or past the limit
        store.put(row)
        done.add(row["key"])
        counts[row["status"]] += 1
        if on_row:
            on_row(row)

    # Groups are a function of the input alone (windows of WINDOW records, split by length), so a resumed
    # audit stacks exactly the items an uninterrupted one would: a group with a pending member runs whole
    # (its stored members' rows are not stored again) and every row is bit-identical to the uninterrupted run.
    while (remaining := left()) is None or remaining > 0:
        window = [x for _, x in zip(range(WINDOW), records)]
        if not window:
            break
        for x in window:
            if isinstance(x, Problem):
                keep(problem_row(x))
        for items in length_groups([x for x in window if isinstance(x, AuditItem)]):
            if any(x.key not in done for x in items) and left() != 0:
                audit_group(lm, items, settings, on_row=keep)
    return counts


def length_groups(items: list[AuditItem], size: int = GROUP, spread: float = SPREAD) -> list[list[AuditItem]]:
    """Groups of at most ``size`` items of like length (words), so one long item does not slow short ones that
    share its forwards: items sorted by length, a new group wherever an item is more than ``spread`` times
    the group's shortest. A row's value depends on its group only at float rounding (stacked forwards of other
    widths); :func:`run_audit` makes the groups a function of the input, so a resume gives the same rows.

    Examples:
        >>> items = [AuditItem(i, i + 1, " ".join(["w"] * n), "jsonl") for i, n in enumerate([3, 300, 4, 5])]
        >>> [[x.key for x in g] for g in length_groups(items)]
        [['0', '2', '3'], ['1']]
    """
    groups: list[list[AuditItem]] = []
    shortest = 0
    for x in sorted(items, key=lambda x: x.words):
        n = x.words
        if not groups or len(groups[-1]) >= size or n > spread * shortest:
            groups.append([])
            shortest = n
        groups[-1].append(x)
    return groups
