"""Hostile and malformed inputs to every reader (issue 29): random bytes, invalid UTF-8, NUL bytes, 1 MB lines,
deeply nested JSON, control and bidirectional characters. A reader yields items and problems — never another
exception for a bad record — and keeps every readable prompt exactly as written (property-based, Hypothesis)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from diffusiongemma.audit import AuditItem, Problem, read_items
from diffusiongemma.audit.readers import FORMATS
from diffusiongemma.errors import InputError

FAST = settings(max_examples=60, deadline=None)
# text a user can send: any code point but lone surrogates (not encodable), with the nasty ones made likely
NASTY = st.sampled_from(["\x00", "\u202e", "\u2066", "\u200b", "\ufeff", "\x1b[31m", "\r", "\t", "<script>",
                         "<start_of_turn>", "<bos>", "{{ 7*7 }}", "\u0301", "\U0001f600"])
INT64 = st.integers(-2**63, 2**63 - 1)  # what SQLite and JSON readers meet
TEXT = st.lists(st.one_of(st.text(st.characters(exclude_categories=["Cs"]), max_size=20), NASTY),
                max_size=8).map("".join)


def _fresh() -> Path:
    """A new folder per example (Hypothesis runs many examples in one test call)."""
    return Path(tempfile.mkdtemp())


def _outcome(path, fmt):
    """Every record of ``path`` read with ``fmt`` (None: detected), or the InputError that refused the file."""
    try:
        out = list(read_items(path, fmt))
    except InputError as exc:
        return exc
    assert all(isinstance(x, (AuditItem, Problem)) for x in out)
    assert [x.key for x in out] == [str(i) for i in range(len(out))]  # stable keys: an audit resumes by them
    return out


@FAST
@given(data=st.binary(max_size=3000), fmt=st.sampled_from([None, *FORMATS]),
       suffix=st.sampled_from([".jsonl", ".csv", ".json", ".report.jsonl", ".db", ".txt"]))
@example(data=b"0", fmt="promptfoo", suffix=".jsonl")  # found by Hypothesis: a JSON number as a promptfoo file
@example(data=b'{"results": {"results": [{"prompt": "p", "testCase": 1, "response": [2]}]}}', fmt="promptfoo",
         suffix=".json")
def test_random_bytes_give_items_problems_or_one_input_error(data, fmt, suffix):
    path = _fresh() / f"input{suffix}"
    path.write_bytes(data)
    _outcome(path, fmt)


@FAST
@given(lines=st.lists(st.one_of(TEXT.map(lambda t: ("good", t)),
                                TEXT.filter(lambda t: "\r" not in t and "\n" not in t).map(lambda t: ("junk", t))),
                      min_size=1, max_size=12))
def test_jsonl_keeps_every_prompt_exactly_and_counts_every_line(lines):
    path = _fresh() / "log.jsonl"
    body = [json.dumps({"prompt": t}, ensure_ascii=False) if kind == "good" else t for kind, t in lines]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    out = _outcome(path, "jsonl")
    nonblank = [(kind, t) for (kind, t), raw in zip(lines, body) if raw.strip()]
    assert len(out) == len(nonblank)
    for (kind, text), got in zip(nonblank, out):
        if kind == "good" and text.strip():
            assert isinstance(got, AuditItem) and got.prompt == text


@FAST
@given(rows=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=10))
def test_csv_keeps_every_prompt_exactly(rows):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["prompt", "label"])
    writer.writerows(rows)
    path = _fresh() / "log.csv"
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    out = _outcome(path, "csv")
    assert len(out) == len(rows)
    for (prompt, _), got in zip(rows, out):
        if prompt.strip():
            assert isinstance(got, AuditItem) and got.prompt == prompt


@FAST
@given(lines=st.lists(st.one_of(st.none(), st.booleans(), INT64, TEXT,
                                st.dictionaries(st.sampled_from(["entry_type", "prompt", "outputs", "uuid", "status",
                                                                 "detector_results", "run.eval_threshold", "turns"]),
                                                st.recursive(st.one_of(st.none(), INT64, TEXT, st.sampled_from(
                                                    ["attempt", "start_run setup", "user"])),
                                                    lambda c: st.one_of(st.lists(c, max_size=3),
                                                                        st.dictionaries(TEXT, c, max_size=3)),
                                                    max_leaves=6))), max_size=8))
def test_garak_report_with_any_json_in_any_field(lines):
    """A garak report (its header, then lines of any JSON: objects with garak's field names holding any
    values, lists, numbers) gives items and problems only."""
    path = _fresh() / "run.report.jsonl"
    header = {"entry_type": "start_run setup", "run.eval_threshold": 0.5}
    path.write_text("\n".join(json.dumps(x) for x in [header, *lines]) + "\n")
    for x in _outcome(path, None):
        if isinstance(x, AuditItem):
            assert isinstance(x.prompt, str)


@FAST
@given(values=st.lists(st.tuples(st.one_of(TEXT, INT64, st.none(), st.binary(max_size=8)),
                                 st.one_of(INT64, st.none(), TEXT),
                                 st.one_of(TEXT, st.none(), INT64),
                                 st.sampled_from(["user", "assistant", "system", None, 7])),
                       min_size=1, max_size=8))
def test_pyrit_memory_with_odd_values_in_every_column(values):
    """A PyRIT memory whose rows hold values of any SQLite type where text, numbers or timestamps belong."""
    tmp_path = _fresh()
    path = tmp_path / "memory.db"
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "PromptMemoryEntries" (id, conversation_id, sequence, role, converted_value, '
                'original_value, original_value_data_type, timestamp)')
    for i, (text, seq, stamp, role) in enumerate(values):
        con.execute('INSERT INTO "PromptMemoryEntries" VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    (i, "c" + str(i % 2), seq, role, text, text, "text", stamp))
    con.commit()
    con.close()
    out = _outcome(path, None)
    for x in out:
        if isinstance(x, AuditItem):
            assert isinstance(x.prompt, str)


def test_deeply_nested_json_and_a_megabyte_line_are_problems_not_crashes(tmp_path):
    path = tmp_path / "log.jsonl"
    deep = "[" * 200_000 + "]" * 200_000
    huge = json.dumps({"prompt": "a" * 1_000_000})
    path.write_text("\n".join([deep, json.dumps({"prompt": "fine"}), huge, "{\"prompt\": " * 50_000]) + "\n")
    out = _outcome(path, "jsonl")
    assert [type(x).__name__ for x in out] == ["Problem", "AuditItem", "AuditItem", "Problem"]
    assert out[1].prompt == "fine" and len(out[2].prompt) == 1_000_000
    promptfoo = tmp_path / "results.json"
    promptfoo.write_text("[" * 200_000 + "]" * 200_000)
    assert all(isinstance(x, Problem) for x in _outcome(promptfoo, "promptfoo"))
