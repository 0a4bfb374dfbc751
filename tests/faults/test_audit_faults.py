"""Faults during an audit on the tiny model: NaN logits for one item mid-run, the store filling up, two audits
started on one store. The faulty item is an error row and the rest go on; a store fault stops the audit
with one sentence and keeps every row stored before it."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from diffusiongemma.audit.runner import AuditSettings, run_audit
from diffusiongemma.audit.store import AuditStore
from diffusiongemma.errors import StoreError
from diffusiongemma.models.hooks import scoped_hooks

PROMPTS = ["Tell me about cats", "How do I bake bread at home", "The zebra stripes explained", "Name three rivers",
           "Why is the sky blue"]
SETTINGS = AuditSettings(budget=8, components=None, max_new_tokens=3, triggers=False, faithfulness=False)


def _log(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


def _nan_where(lm, word: str):
    """A hook on the embeddings that makes every row holding ``word``'s token NaN: the model's real forward
    then yields NaN logits for that item only, wherever it sits in a stacked batch."""
    (token,) = lm.tokenizer(word, add_special_tokens=False)["input_ids"]
    embed = lm.model.get_input_embeddings()

    def hook(module, inputs, output):
        bad = (inputs[0] == token).any(dim=1)  # [B]
        return torch.where(bad[:, None, None], torch.full_like(output, float("nan")), output)

    return [(embed, "forward", hook)]


def test_nan_logits_for_one_item_mid_run_make_only_that_item_an_error_row(tiny_lm, tmp_path):
    store = AuditStore(tmp_path / "a.db")
    with scoped_hooks(_nan_where(tiny_lm, " zebra")):
        counts = run_audit(_log(tmp_path), store, tiny_lm, SETTINGS)
    rows = {r["prompt"]: r for r in store.rows()}
    store.close()
    assert counts["done"] == 4 and counts["error"] == 1
    bad = rows["The zebra stripes explained"]
    assert bad["status"] == "error" and "non-finite" in bad["error"]
    assert all(r["status"] == "done" and r["refusal_score"] is not None
               for p, r in rows.items() if p != "The zebra stripes explained")


def test_the_store_filling_up_mid_audit_stops_it_with_one_sentence_and_resume_completes(tiny_lm, tmp_path):
    path = tmp_path / "a.db"
    store = AuditStore(path)  # the schema's pages exist; the disk "fills" two pages later
    pages = store.con.execute("PRAGMA page_count").fetchone()[0]
    store.con.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(StoreError, match="database or disk is full"):
        run_audit(_log(tmp_path), store, tiny_lm, SETTINGS)
    store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert before < len(PROMPTS)
    again = AuditStore(path)  # room again: the same command resumes
    run_audit(_log(tmp_path), again, tiny_lm, SETTINGS)
    keys = [r["key"] for r in again.rows()]
    again.close()
    assert keys == [str(i) for i in range(len(PROMPTS))]


def test_an_item_too_long_for_memory_is_an_error_row_and_its_group_is_still_audited(tiny_lm, tmp_path, monkeypatch):
    """A prompt whose one row would not fit in the memory the audit may take is refused before its forward (the
    kernel would otherwise kill the whole audit): it is an error row saying why, and its group's other items,
    which fit, are audited."""
    from diffusiongemma.models import batching

    prompts = ["Tell me about cats " * 10, "How do I bake bread at home " * 7,
               "Describe the zebra's unbelievable microstructural stripes " * 12]  # 40, 49, 72 words: one group
    shapes: list[tuple[int, int]] = []
    row_bytes = batching.row_bytes

    def spy(config, seq_len, reads, *args, **kwargs):
        shapes.append((seq_len, reads))
        return row_bytes(config, seq_len, reads, *args, **kwargs)

    monkeypatch.setattr(batching, "row_bytes", spy)
    path = tmp_path / "log.jsonl"
    for p in prompts:  # each alone, with room: the widest row each one needs
        path.write_text(json.dumps({"prompt": p}) + "\n")
        shapes.clear()
        alone = AuditStore(tmp_path / f"{len(p)}.db")
        run_audit(path, alone, tiny_lm, SETTINGS)
        alone.close()
        p_shape = max(shapes)
        if p is prompts[1]:
            short = p_shape
    long = p_shape
    assert long[0] > short[0] and long[1] == short[1]
    between = (row_bytes(tiny_lm.model.config, short[0], short[1], 4)
               + row_bytes(tiny_lm.model.config, long[0], long[1], 4)) // 2
    monkeypatch.setattr(batching, "free_memory", lambda device: int(between / batching._FRACTION))
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    store = AuditStore(tmp_path / "a.db")
    counts = run_audit(path, store, tiny_lm, SETTINGS)
    rows = {r["prompt"]: r for r in store.rows()}
    store.close()
    assert counts == {**counts, "done": 2, "error": 1}
    assert rows[prompts[2]]["status"] == "error" and "one forward pass" in rows[prompts[2]]["error"]
    assert all(rows[p]["status"] == "done" and rows[p]["refusal_score"] is not None for p in prompts[:2])
