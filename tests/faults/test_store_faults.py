"""Faults at the audit store: disk full, a file that is not a store, two audits on one store, a kill while
holding it. Each is one sentence (StoreError), and what was stored before stays intact (integrity_check)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest

from diffusiongemma.audit.store import AuditStore
from diffusiongemma.errors import StoreError


def _row(i: int, size: int = 10) -> dict:
    return {"key": str(i), "line": i + 1, "status": "done", "prompt": "x" * size, "result": {"i": i}}


def _intact(path) -> list[str]:
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return [r[0] for r in con.execute("SELECT key FROM items ORDER BY CAST(key AS INTEGER)")]


def test_disk_full_is_one_sentence_and_keeps_the_rows_stored_before(tmp_path):
    path = tmp_path / "a.db"
    store = AuditStore(path)
    store.bind({"input_sha256": "x"})
    for i in range(3):
        assert store.put(_row(i))
    pages = store.con.execute("PRAGMA page_count").fetchone()[0]
    store.con.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
    with pytest.raises(StoreError, match=r"could not write to the audit store .*a\.db: database or disk is full"):
        for i in range(3, 50):
            store.put(_row(i, size=20_000))
    store.close()
    kept = _intact(path)
    assert kept[:3] == ["0", "1", "2"] and len(kept) < 50
    again = AuditStore(path)  # the disk has room again: the same store takes the rest
    for i in range(len(kept), 50):
        assert again.put(_row(i, size=20_000))
    again.close()
    assert _intact(path) == [str(i) for i in range(50)]


def test_a_file_that_is_not_sqlite_is_not_written_to(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is not an audit store"):
        AuditStore(path)
    assert path.read_bytes() == before


def test_a_store_in_a_place_that_cannot_be_a_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="could not open the audit store"):
        AuditStore(blocker / "sub" / "a.db")


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "a.db"
    first = AuditStore(path)
    first.lock()
    second = AuditStore(path)
    with pytest.raises(StoreError, match="being written by another audit"):
        second.lock()
    first.close()
    second.lock()
    second.close()


def test_a_killed_writer_releases_the_store(tmp_path):
    path = tmp_path / "a.db"
    code = ("import os, signal, sys; from diffusiongemma.audit.store import AuditStore\n"
            f"s = AuditStore({str(path)!r}); s.lock(); print('locked', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "locked" in proc.stdout
    store = AuditStore(path)
    store.lock()  # the kernel dropped the dead process's lock
    store.close()
    assert _intact(path) == []


def test_a_store_killed_before_its_schema_landed_is_resumed_as_new(tmp_path):
    """A kill between creating the file and writing the schema leaves an empty file, or an SQLite file with no
    tables: the rerun starts it as a new store (the kill test above met this on its first kill)."""
    from diffusiongemma.audit.store import check_store, stored_keys

    empty, bare = tmp_path / "empty.db", tmp_path / "bare.db"
    empty.write_bytes(b"")
    con = sqlite3.connect(bare)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    for path in (empty, bare):
        assert stored_keys(path) == set()
        check_store(path)
        store = AuditStore(path)
        store.bind({"input_sha256": "x"})
        assert store.put(_row(0))
        store.close()
        assert _intact(path) == ["0"]


def _as_another_user(fn, *args):
    """Run ``fn(*args)`` in a forked child that is not root when this process is (root ignores file
    permissions, so a read-only store would be writable to it); returns what the child returns or raised."""
    import multiprocessing
    import os

    def child(queue, *a):
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)  # nobody
            queue.put(("ok", fn(*a)))
        except BaseException as exc:  # noqa: BLE001 - carried back to the test
            queue.put((type(exc).__name__, str(exc)))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue, *args))
    proc.start()
    got = queue.get(timeout=120)
    proc.join(timeout=30)
    return got


def _audit_into(log, path, tiny_lm):
    from diffusiongemma.audit.runner import AuditSettings, run_audit

    store = AuditStore(path)
    try:
        store.lock()
        return run_audit(log, store, tiny_lm, AuditSettings(budget=8, components=None, max_new_tokens=3,
                                                            triggers=False, faithfulness=False))
    finally:
        store.close()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_is_one_sentence_and_stays_intact(tiny_lm, what):
    """A store the user may not write (the file, or its folder: WAL needs files beside it) gives a StoreError
    naming it, and its rows are untouched (integrity_check)."""
    import json
    import os
    import shutil
    import tempfile

    folder = tempfile.mkdtemp()  # not under pytest's 0700 tmp: the other user must reach it
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "a.db")
        store = AuditStore(path)
        store.bind({"input_sha256": "x"})
        assert store.put(_row(0))
        store.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        for extra in ("-wal", "-shm"):
            if os.path.exists(path + extra):
                os.remove(path + extra)
        log = os.path.join(folder, "log.jsonl")
        with open(log, "w") as fh:
            fh.write(json.dumps({"prompt": "Tell me about cats"}) + "\n")
        os.chmod(path, 0o444 if what == "file" else 0o644)
        os.chmod(log, 0o644)
        if what == "folder":
            os.chown(path, 65534, 65534) if os.geteuid() == 0 else None
            os.chmod(folder, 0o555)
        kind, message = _as_another_user(_audit_into, log, path, tiny_lm)
        assert kind == "StoreError", (kind, message)
        assert "a.db" in message and "\n" not in message
        assert re.search(r"could not open the audit store .*a\.db: it is read-only here .*make the file and its "
                         r"folder writable or choose another --store", message), message
        os.chmod(folder, 0o755)
        assert _intact(path) == ["0"]
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)
