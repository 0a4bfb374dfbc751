"""The audit store: one SQLite file (standard library, WAL), one row per input item, written as it finishes.

Rows are keyed by the item's position in the input, and each is committed on its own: an audit killed at
any moment (Ctrl-C, ``kill -9``) loses at most the item it was computing, and rerunning the same command
skips every stored key — nothing lost, nothing twice. The store remembers which input, model and settings
it belongs to and refuses to mix in another audit. One audit writes a store at a time (:meth:`AuditStore.lock`,
an advisory lock the kernel drops when the process dies); a write that fails (disk full, read-only file
system) is one sentence, :class:`~diffusiongemma.errors.StoreError`, and the rows committed before it stay.

Examples:
    >>> import tempfile, pathlib
    >>> store = AuditStore(pathlib.Path(tempfile.mkdtemp()) / "audit.db")
    >>> store.bind({"input_sha256": "abc", "model": "m"})
    >>> store.put_error("0", line=1, message="not JSON", source="jsonl")
    True
    >>> store.done_keys(), store.count()
    ({'0'}, 1)
    >>> store.close()
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError, StoreError

__all__ = ["AuditStore", "SCHEMA_VERSION", "check_store", "keep_report", "stored_keys"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,          -- position in the input (items and unreadable records alike)
    line INTEGER,                  -- line / row / attempt number in the input
    status TEXT NOT NULL CHECK (status IN ('done', 'error')),
    source TEXT,                   -- reader: jsonl, csv, garak, promptfoo, pyrit
    prompt TEXT,
    response TEXT,                 -- the judged reply (logged, or generated when the log had none)
    response_given INTEGER,        -- 1: the reply came from the log
    label TEXT,                    -- the log's own verdict, as given
    refused INTEGER,               -- the detector's decision on the reply
    refusal_score REAL,            -- log p(refusal openings) - log p(compliance openings)
    top_units TEXT,                -- JSON [[unit, score, stderr], ...] strongest first
    top_components TEXT,           -- JSON [[component, score, stderr], ...]
    flip_set TEXT,                 -- JSON list of units whose removal flips the decision
    flip_confirmed INTEGER,
    deletion_auc REAL,
    error TEXT,
    meta TEXT,                     -- JSON: what the reader kept (probe, plugin, conversation, ...)
    result TEXT,                   -- JSON: the full Attribution
    seconds REAL,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS reports (  -- verify-safety and harden results, whole reports beside the items
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,            -- verify-safety, harden
    model TEXT,
    verdict TEXT,
    summary TEXT,                  -- JSON: the headline figures
    report TEXT,                   -- JSON: the full report
    created TEXT
);
"""
_COLUMNS = ("key", "line", "status", "source", "prompt", "response", "response_given", "label", "refused",
            "refusal_score", "top_units", "top_components", "flip_set", "flip_confirmed", "deletion_auc",
            "error", "meta", "result", "seconds", "finished_at")


class AuditStore:
    """An audit's SQLite file. Open it, :meth:`bind` it to an audit, then :meth:`put` rows.

    Only one process writes (the audit's driver); readers may open the file at any time (WAL).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise InputError(f"audit store not found: {self.path}")
            self.con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:  # a file that is not SQLite, or SQLite without an audit in it: one sentence, not a traceback
                tables = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as exc:
                self.con.close()
                raise InputError(f"{self.path} is not an audit store (not an SQLite file: {exc})") from exc
            if "items" not in tables:
                self.con.close()
                raise InputError(f"{self.path} is an SQLite file but holds no audit (no items table)")
        else:
            with self._writing("open"):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.con = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit transactions
                self.con.execute("PRAGMA journal_mode=WAL")
                self.con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a crash
                self.con.executescript(_SCHEMA)
        self.con.row_factory = sqlite3.Row
        self._lock_fd: int | None = None

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn SQLite's and the file system's write failures into one sentence that names the store."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(f"{self.path} is not an audit store (not an SQLite file); choose another --store") from exc
            if "readonly" in str(exc):  # the file, or its folder (WAL keeps files beside it), is not writable
                raise StoreError(f"could not {what} the audit store {self.path}: it is read-only here ({exc}); "
                                 "make the file and its folder writable or choose another --store") from exc
            raise StoreError(f"could not {what} the audit store {self.path}: {exc}; free disk space or choose a "
                             "writable --store, then rerun the same command (rows already stored are kept)") from exc
        except OSError as exc:
            raise StoreError(f"could not {what} the audit store {self.path}: {exc.strerror or exc}; choose a "
                             "writable --store") from exc

    def lock(self) -> None:
        """Claim the store for this process's audit, or raise :class:`StoreError` if another audit holds it.
        The lock lasts until :meth:`close` or the process's end (a ``kill -9`` included).

        Examples:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.db"
            >>> first, second = AuditStore(path), AuditStore(path)
            >>> first.lock()
            >>> second.lock()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            diffusiongemma.errors.StoreError: ...a.db is being written by another audit...
            >>> first.close(); second.lock(); second.close()
        """
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.path} is being written by another audit; wait for it to finish (then rerun "
                             "to resume), or use another --store") from None
        self._lock_fd = fd

    # -- the audit this store belongs to -------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.con.execute("SELECT key, value FROM meta")}

    def bind(self, identity: dict[str, Any]) -> None:
        """Record what this audit is (input hash, model, settings), or check a resumed one is the same."""
        held = self.meta()
        if "identity" in held and held["identity"] != identity:
            diff = sorted(k for k in set(held["identity"]) | set(identity)
                          if held["identity"].get(k) != identity.get(k))
            raise InputError(f"{self.path} holds another audit (it differs in: {', '.join(diff)}); resume with "
                             "the same input and settings, or use a new --store")
        if "identity" not in held:
            with self._writing("write to"), self.con:
                self.con.execute("BEGIN")
                self.con.execute("INSERT INTO meta VALUES ('identity', ?)", (json.dumps(identity),))
                self.con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self.con.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)",
                                 (json.dumps(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),))

    def set_meta(self, key: str, value: Any) -> None:
        with self._writing("write to"):
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- rows ----------------------------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT key FROM items")}

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self.con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        return self.con.execute("SELECT COUNT(*) FROM items WHERE status = ?", (status,)).fetchone()[0]

    def put(self, row: dict[str, Any]) -> bool:
        """Store one finished item (one transaction). ``False`` when its key was already stored."""
        values = {c: row.get(c) for c in _COLUMNS}
        for c in ("top_units", "top_components", "flip_set", "meta", "result"):
            if values[c] is not None and not isinstance(values[c], str):
                values[c] = json.dumps(values[c])
        values["finished_at"] = values["finished_at"] or time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        with self._writing("write to"):
            cur = self.con.execute(f"INSERT OR IGNORE INTO items ({', '.join(_COLUMNS)}) "
                                   f"VALUES ({', '.join('?' for _ in _COLUMNS)})", [values[c] for c in _COLUMNS])
        return cur.rowcount == 1

    def put_error(self, key: str, *, line: int | None, message: str, source: str = "", prompt: str | None = None,
                  response: str | None = None, label: str | None = None, meta: Any = None) -> bool:
        """Record an item that could not be audited (unreadable record, bad prompt, model failure)."""
        return self.put({"key": key, "line": line, "status": "error", "source": source, "prompt": prompt,
                         "response": response, "label": label, "error": message, "meta": meta})

    def rows(self, *, status: str | None = None, full: bool = False) -> Iterator[dict[str, Any]]:
        """Stored rows in input order, JSON columns decoded (``result`` only when ``full``)."""
        cols = [c for c in _COLUMNS if full or c != "result"]
        sql = f"SELECT {', '.join(cols)} FROM items" + (" WHERE status = ?" if status else "") + \
            " ORDER BY CAST(key AS INTEGER)"
        for r in self.con.execute(sql, (status,) if status else ()):
            yield _decoded(r)

    def row(self, key: str) -> dict[str, Any] | None:
        """One stored row with its full result, or ``None``."""
        r = self.con.execute(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE key = ?", (key,)).fetchone()
        return None if r is None else _decoded(r)

    # -- whole reports (verify-safety, harden) ---------------------------------------------------------
    def put_report(self, kind: str, *, model: str, verdict: str, summary: dict[str, Any], report: dict[str, Any]) -> int:
        """Store a verify-safety or harden report (one transaction); returns its id.

        Examples:
            >>> import tempfile, pathlib
            >>> store = AuditStore(pathlib.Path(tempfile.mkdtemp()) / "a.db")
            >>> store.put_report("harden", model="m", verdict="hardened", summary={"x": 1}, report={})
            1
            >>> [(r["kind"], r["verdict"], r["summary"]) for r in store.reports()]
            [('harden', 'hardened', {'x': 1})]
        """
        with self._writing("write to"):
            cur = self.con.execute(
                "INSERT INTO reports (kind, model, verdict, summary, report, created) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, model, verdict, json.dumps(summary, default=float), json.dumps(report, default=float),
                 time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())))
        return int(cur.lastrowid or 0)  # an INSERT always sets it

    def reports(self, kind: str | None = None, *, full: bool = False) -> list[dict[str, Any]]:
        """Stored reports, oldest first, JSON decoded (the full ``report`` only when ``full``)."""
        if not self.con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reports'").fetchone():
            return []  # a store written before reports existed, opened read-only
        cols = "id, kind, model, verdict, summary, created" + (", report" if full else "")
        sql = f"SELECT {cols} FROM reports" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        out = []
        for r in self.con.execute(sql, (kind,) if kind else ()):
            row = dict(r)
            for c in ("summary", "report"):
                if row.get(c) is not None:
                    row[c] = json.loads(row[c])
            out.append(row)
        return out

    def close(self) -> None:
        self.con.close()
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock
            self._lock_fd = None


def _decoded(r: sqlite3.Row) -> dict[str, Any]:
    row = dict(r)
    for c in ("top_units", "top_components", "flip_set", "meta", "result"):
        if row.get(c) is not None:
            row[c] = json.loads(row[c])
    return row


def stored_keys(path: str | Path) -> set[str]:
    """The item keys a store at ``path`` holds, read without writing: none for a missing file, an empty one or
    an SQLite file without tables (a store whose creation was killed before its schema landed); an
    :class:`InputError` for a file that is not an audit store.

    Examples:
        >>> import tempfile, pathlib
        >>> empty = pathlib.Path(tempfile.mkdtemp()) / "a.db"
        >>> _ = empty.write_bytes(b"")
        >>> stored_keys(empty)
        set()
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            tables = con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError:
        tables = None  # not SQLite: the read-only open below says so
    if tables == 0:
        return set()
    store = AuditStore(path, readonly=True)
    try:
        return store.done_keys()
    finally:
        store.close()


def check_store(path: str | Path) -> None:
    """Refuse, before any work, a store path a report could not be kept in: an existing file that is not an
    audit store, or a place whose folder cannot be made. Writes nothing.

    Examples:
        >>> import tempfile, pathlib
        >>> notes = pathlib.Path(tempfile.mkdtemp()) / "notes.db"
        >>> _ = notes.write_text("my notes, " * 100)
        >>> check_store(notes)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.StoreError: ...notes.db is not an audit store (not an SQLite file: ...); choose another --store
    """
    path = Path(path)
    if path.exists():
        try:
            stored_keys(path)
        except InputError as exc:
            raise StoreError(f"{exc}; choose another --store") from None
        return
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise StoreError(f"could not open the audit store {path}: {folder} is a file, not a folder; choose a "
                         "writable --store")


def keep_report(path: str | Path, kind: str, *, model: str, verdict: str, summary: dict[str, Any],
                report: dict[str, Any]) -> int:
    """Open (or create) the store at ``path``, add one report, close it; returns the report's id."""
    store = AuditStore(path)
    try:
        return store.put_report(kind, model=model, verdict=verdict, summary=summary, report=report)
    finally:
        store.close()
