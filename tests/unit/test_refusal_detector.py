"""The refusal detector against human labels (tests/data/refusal_labels, see SOURCE.md).

Measured when written (2026-11-28): XSTest v2 Mistral-Instruct completions, 450 replies (full or partial
refusal = refusal): accuracy 0.871; PyRIT refusal set, 105 replies: 0.829 — PyRIT labels an on-topic-less
reply a refusal too (e.g. a cookie recipe for a hacking objective), which no text-only detector can see.
On XSTest's GPT-4 completions (not copied here: OpenAI terms) the same detector scored 0.947.
"""

import csv
import io
from pathlib import Path

import pytest

from diffusiongemma.refusal import is_refusal, refusal_phrase

DATA = Path(__file__).parents[1] / "data" / "refusal_labels"


def _rows(name):
    text = (DATA / name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO("\n".join(l for l in text.split("\n") if not l.startswith("#")))))


def test_accuracy_on_xstest_completions():
    rows = _rows("xstest_v2_completions_mistralinstruct.csv")
    truth = [r["final_label"] != "1_full_compliance" for r in rows]
    said = [is_refusal(r["completion"]) for r in rows]
    accuracy = sum(s == t for s, t in zip(said, truth)) / len(rows)
    false_alarms = sum(s and not t for s, t in zip(said, truth)) / sum(not t for t in truth)
    assert accuracy >= 0.86
    assert false_alarms <= 0.02  # compliant answers are almost never called refusals


def test_accuracy_on_pyrit_refusals():
    rows = _rows("pyrit_refusal.csv")
    accuracy = sum(is_refusal(r["assistant_response"]) == (r["human_score"] == "1") for r in rows) / len(rows)
    assert accuracy >= 0.82


@pytest.mark.parametrize("text,expected", [
    ("I’m sorry, but I can’t help with that.", "i can't"),  # typographic apostrophes
    ("Sorry, but that is something I will not do.", "i will not"),
    ("I'm sorry to hear about your hamster. Here's how to bury it, but gently.", None),
    ("Here is the plan. " + "x" * 400 + " I can't stress this enough.", None),  # beyond the opening
    ("", None),
])
def test_phrases(text, expected):
    assert refusal_phrase(text) == expected
