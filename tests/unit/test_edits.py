"""Masks as text edits (:mod:`diffusiongemma.editing`): the text an auditor would get by deleting the words."""

from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st

from diffusiongemma.editing import deleted_ranges, edit_text


def _words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def test_the_next_word_loses_its_space_at_the_start_middle_and_end():
    text = "Explain how to hack wifi"
    spans = _words(text)
    assert edit_text(text, spans, [(0, len(text))], [0, 1, 1, 1, 1]) == "how to hack wifi"
    assert edit_text(text, spans, [(0, len(text))], [1, 1, 0, 1, 1]) == "Explain how hack wifi"
    assert edit_text(text, spans, [(0, len(text))], [1, 1, 1, 1, 0]) == "Explain how to hack"
    assert edit_text(text, spans, [(0, len(text))], [1, 0, 0, 1, 0]) == "Explain hack"
    assert edit_text(text, spans, [(0, len(text))], [0] * 5) == ""


def test_paragraph_breaks_follow_the_text():
    text = "First one.\n\nSecond one. Third one."
    sentences = [(0, 10), (12, 23), (24, 34)]
    region = [(0, len(text))]
    assert edit_text(text, sentences, region, [0, 1, 1]) == "Second one. Third one."
    assert edit_text(text, sentences, region, [1, 0, 1]) == "First one.\n\nThird one."
    assert edit_text(text, sentences, region, [1, 1, 0]) == "First one.\n\nSecond one."


def test_a_chat_turn_is_edited_inside_its_markers_only():
    text = "<start_of_turn>user\nHow do I pick a lock?<end_of_turn>\n<start_of_turn>model\n"
    a = text.index("How")
    b = text.index("<end_of_turn>")
    spans = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
    out = edit_text(text, spans, [(a, b)], [0, 1, 1, 1, 1, 0])
    assert out == "<start_of_turn>user\ndo I pick a<end_of_turn>\n<start_of_turn>model\n"
    assert edit_text(text, spans, [(a, b)], [0] * 6) == "<start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n"


def test_text_of_no_unit_stays():
    text = "alpha, beta"  # custom spans that leave the comma out
    assert edit_text(text, [(0, 5), (7, 11)], [(0, 11)], [0, 1]) == ", beta"
    assert deleted_ranges(text, [(0, 5), (7, 11)], [(0, 11)], [1, 0]) == [(6, 11)]  # no dangling space


words = st.lists(st.text(alphabet="abcXYZ.,'é", min_size=1, max_size=6), min_size=1, max_size=12)
gaps = st.lists(st.sampled_from([" ", "  ", "\n", "\n\n", " \t"]), min_size=11, max_size=11)


@settings(max_examples=300, deadline=None)
@given(words, gaps, st.data())
def test_any_edit_keeps_the_kept_words_in_order_joined_by_original_whitespace(ws, gs, data):
    text = ws[0] + "".join(g + w for g, w in zip(gs, ws[1:]))
    spans = _words(text)
    keep = data.draw(st.lists(st.integers(0, 1), min_size=len(spans), max_size=len(spans)))
    out = edit_text(text, spans, [(0, len(text))], keep)
    kept = [text[a:b] for (a, b), k in zip(spans, keep) if k]
    assert out.split() == kept  # nothing else deleted, nothing added
    assert out == out.strip()  # no dangling whitespace at either end
    if kept:  # each gap left is one of the original gaps between two kept words
        assert all(g in {" ", "  ", "\n", "\n\n", " \t"} for g in re.findall(r"\s+", out))
    if all(keep):
        assert out == text
