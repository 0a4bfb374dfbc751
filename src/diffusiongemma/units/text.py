"""Token units from prompt text: tokens, words, sentences, custom character spans, chat roles.

Every kind groups the *eligible* tokens of the rendered prompt (inside a content region and not special,
unless ``special=True``) by character spans; a token belongs to the span it overlaps most. Tokens that fall
in no span (e.g. a lone newline) are not units and are always kept.

Examples:
    >>> from diffusiongemma.units.text import word_spans
    >>> word_spans("Hi there, you", 0)
    [(0, 2), (3, 9), (10, 13)]
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from ..prompts import RenderedPrompt
from .base import Unit, register_unit_kind

__all__ = ["word_spans", "sentence_spans", "group_tokens"]

_WORD = re.compile(r"\S+")
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s|$)|(?=\n)|$)", re.S)


def word_spans(text: str, offset: int) -> list[tuple[int, int]]:
    """Whitespace-separated words of ``text`` as spans shifted by ``offset``.

    Examples:
        >>> word_spans('how  to go', 10)
        [(10, 13), (15, 17), (18, 20)]
    """
    return [(m.start() + offset, m.end() + offset) for m in _WORD.finditer(text)]


def sentence_spans(text: str, offset: int) -> list[tuple[int, int]]:
    """Sentences (ending in . ! ? or a line break) of ``text`` as spans shifted by ``offset``.

    Examples:
        >>> sentence_spans("One. Two!\\nThree", 0)
        [(0, 4), (5, 9), (10, 15)]
    """
    return [(m.start() + offset, m.end() + offset) for m in _SENTENCE.finditer(text)]


def _eligible(rp: RenderedPrompt, special: bool) -> list[int]:
    """Token positions that may belong to a unit; special ones only if asked, BOS (position 0) never."""
    return [pos for pos, is_special in enumerate(rp.special)
            if not (pos == 0 and is_special) and (special or not is_special)]


def _role_at(rp: RenderedPrompt, start: int, end: int) -> str:
    for r in rp.regions:
        if r.start < end and start < r.end:
            return r.role
    return "template"


def group_tokens(rp: RenderedPrompt, spans: list[tuple[int, int]], *, special: bool = False) -> list[Unit]:
    """Group eligible tokens by the span each overlaps most; spans with no token give no unit.

    With ``special=True``, special tokens inside no span become units of their own.
    """
    order = sorted(range(len(spans)), key=lambda k: spans[k][0])
    starts = [spans[k][0] for k in order]
    reach = list(accumulate((spans[k][1] for k in order), max))  # furthest end among spans sorted so far
    members: list[list[int]] = [[] for _ in spans]
    extra: list[int] = []
    for pos in _eligible(rp, special):
        s, e = rp.offsets[pos]
        best, best_overlap = -1, 0
        j = bisect_right(starts, e - 1) - 1  # last span starting before the token ends
        while j >= 0 and reach[j] > s:  # earlier spans can still overlap the token
            a, b = spans[order[j]]
            overlap = min(b, e) - max(a, s)
            if overlap > best_overlap or (overlap == best_overlap and overlap > 0 and order[j] < best):
                best, best_overlap = order[j], overlap
            j -= 1
        if best >= 0:
            members[best].append(pos)
        elif rp.special[pos]:
            extra.append(pos)
    units = [
        Unit(rp.text[a:b], a, b, tuple(m), _role_at(rp, a, b)) for (a, b), m in zip(spans, members) if m
    ]
    for pos in extra:
        s, e = rp.offsets[pos]
        units.append(Unit(rp.text[s:e], s, e, (pos,), "template"))
    return sorted(units, key=lambda u: u.positions[0])


def _spans_per_region(rp: RenderedPrompt, splitter) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for r in rp.regions:
        spans += splitter(rp.text[r.start:r.end], r.start)
    return spans


@register_unit_kind("tokens")
def token_units(rp: RenderedPrompt, *, special: bool = False) -> list[Unit]:
    """One unit per eligible token."""
    units = []
    for pos in _eligible(rp, special):
        s, e = rp.offsets[pos]
        units.append(Unit(rp.text[s:e], s, e, (pos,), _role_at(rp, s, e)))
    return units


@register_unit_kind("words")
def word_units(rp: RenderedPrompt, *, special: bool = False) -> list[Unit]:
    """One unit per whitespace-separated word of the content."""
    return group_tokens(rp, _spans_per_region(rp, word_spans), special=special)


@register_unit_kind("sentences")
def sentence_units(rp: RenderedPrompt, *, special: bool = False) -> list[Unit]:
    """One unit per sentence of the content."""
    return group_tokens(rp, _spans_per_region(rp, sentence_spans), special=special)


@register_unit_kind("roles")
def role_units(rp: RenderedPrompt, *, special: bool = False) -> list[Unit]:
    """One unit per chat message (system / user / assistant content)."""
    return group_tokens(rp, [(r.start, r.end) for r in rp.regions], special=special)


@register_unit_kind("spans")
def span_units(rp: RenderedPrompt, *, spans: list[tuple[int, int]], special: bool = False) -> list[Unit]:
    """One unit per given character span ``(start, end)`` of the rendered text (the prompt itself for plain text)."""
    return group_tokens(rp, [(int(a), int(b)) for a, b in spans], special=special)
