"""Unit trees through the public API on the tiny Gemma 3: plan, staged run, JSON, the checks on the final cut."""

from __future__ import annotations

import numpy as np

from diffusiongemma import explain, hierarchy
from diffusiongemma.attribution import Attribution

TEXT = ("The committee met on <b>Monday</b>. It reviewed the budget and the hiring plan in detail. "
        "Nobody objected to the proposal. The chair then closed the meeting and thanked everyone for coming.")


def test_sentences_then_words_keep_parents_equal_to_the_sum_of_their_children(tiny_lm, tmp_path):
    a = explain(TEXT, target=" The", model=tiny_lm, units="sentences>words", budget=96, seed=0, faithfulness=True)
    assert a.settings["units"] == "sentences>words"
    assert a.settings["estimator"].startswith("tree(")
    assert a.evaluations <= 96
    assert abs(a.efficiency_gap) < 1e-6
    nodes = a.tree["nodes"]
    assert len(a.tree["roots"]) == 4  # four sentences
    for node in nodes:
        if node["expanded"]:
            assert abs(node["score"] - sum(nodes[c]["score"] for c in node["children"])) < 1e-9
    assert [a.units[i].text for i in range(len(a.units))] == [nodes[k]["text"] for k in a.tree["cut"]]
    assert a.faithfulness is not None  # the checks run on the final cut's units
    html = a.to_html(tmp_path / "a.html").read_text()
    assert "Unit tree, coarse to fine (sentences → words)" in html and html.count("<details") == len(a.tree["roots"]) + sum(
        len(n["children"]) for n in nodes if n["expanded"])  # folded nodes' children are not shown
    b = Attribution.from_json(a.to_json(tmp_path / "a.json"))
    assert b.tree == a.tree
    np.testing.assert_array_equal(a.scores, b.scores)


def test_auto_plans_words_for_short_prompts_and_a_tree_for_long_ones(tiny_lm, monkeypatch):
    monkeypatch.setattr(hierarchy, "FLAT_WORDS", 100)  # the tiny model's context is 256 tokens, not 300 words
    short = explain("The cat sat on the mat", target=" and", model=tiny_lm, budget=32)
    assert short.settings["units"] == "words" and short.settings["plan"] == "auto: 6 words -> words"
    long = explain(" ".join([TEXT] * 4), target=" The", model=tiny_lm, budget=64)
    assert long.settings["units"] == "sentences>words"
    assert long.settings["plan"].endswith("-> sentences>words")
    assert long.tree is not None and len(long.units) < 4 * 31  # folded where nothing happens


def test_tree_html_escapes_the_prompt(tiny_lm, tmp_path):
    a = explain(TEXT + " <script>alert(1)</script>", target=" The", model=tiny_lm, units="sentences>words", budget=48)
    html = a.to_html(tmp_path / "a.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_explain_many_runs_long_prompts_as_trees_beside_flat_ones(tiny_lm, monkeypatch):
    from diffusiongemma import explain_many

    monkeypatch.setattr(hierarchy, "FLAT_WORDS", 100)
    long_text = " ".join([TEXT] * 4)
    short, long = explain_many(["The cat sat on the mat", long_text], " The", model=tiny_lm, budget=64)
    assert short.tree is None and long.tree is not None
    alone = explain(long_text, target=" The", model=tiny_lm, budget=64)
    np.testing.assert_allclose(long.scores, alone.scores, atol=1e-9)
    assert [u.text for u in long.units] == [u.text for u in alone.units]
