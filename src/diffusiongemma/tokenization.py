"""Tokenising a rendered prompt so that what the user wrote is always text: a user who types
``<start_of_turn>`` or ``<bos>`` gets those characters tokenised as characters, never as the template's
markers, while the template's own markers around the content stay special tokens.

When no content region holds special-token text (nearly always) this is the tokenizer's one call on the
whole text, exactly as before. Otherwise the text is cut at the regions' bounds: the template's pieces are
tokenised as usual, the content pieces with ``split_special_tokens=True``, and the ids and character offsets
are joined.

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> tok = example_model().tokenizer
    >>> ids, _ = encode(tok, "say <bos> please", [(0, 16)], add_special=True)
    >>> ids.count(tok.bos_token_id)  # the template's BOS only: the user's "<bos>" stays text
    1
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["encode", "holds_special_text", "shifted_regions"]


def holds_special_text(tokenizer: Any, text: str) -> bool:
    """Whether ``text`` contains the text of a special token (the tokenizer would read it as one)."""
    if not text:
        return False
    plain = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(plain) != list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def encode(tokenizer: Any, text: str, regions: Sequence[tuple[int, int]], add_special: bool
           ) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids ``[L]`` and character offsets ``[L]`` of ``text``, whose ``regions`` (sorted, disjoint
    ``(start, end)`` character spans) are the user's content: special-token text inside them stays text."""
    if not any(holds_special_text(tokenizer, text[a:b]) for a, b in regions):
        enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    pieces, at = [], 0
    for a, b in sorted(regions):
        pieces += [(at, a, False), (a, b, True)]
        at = b
    pieces.append((at, len(text), False))
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    for a, b, content in pieces:
        if a == b:
            continue
        enc = tokenizer(text[a:b], add_special_tokens=add_special and not ids, return_offsets_mapping=True,
                        split_special_tokens=content)
        ids += list(enc["input_ids"])
        offsets += [(s + a, e + a) if e > s else (a, a) for s, e in enc["offset_mapping"]]
    return ids, offsets


def shifted_regions(regions: Sequence[tuple[int, int]], removed: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where ``regions`` lie after the character ranges ``removed`` (disjoint ``(a, b)``) are deleted.

    Examples:
        >>> shifted_regions([(0, 10), (12, 20)], [(2, 4), (14, 15)])
        [(0, 8), (10, 17)]
    """
    def moved(p: int) -> int:
        return p - sum(max(0, min(b, p) - a) for a, b in removed)

    return [(moved(s), moved(e)) for s, e in regions]
