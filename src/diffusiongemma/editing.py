"""Masks as real text edits: the prompt with the removed units deleted from its text, then tokenised again.

This is the ``edit`` mask operator (the default for text units): what an auditor does by hand. A removed
block of units (consecutive units with only whitespace between them) is deleted together with the
whitespace that joins it to the kept text — the whitespace after it when a kept unit of the same region
(chat turn) follows, else the whitespace before it — so no doubled or dangling space is left, and the next
word is tokenised as it would be at that place in a text someone typed (``"how"`` at the start of a turn,
not ``"▁how"``). Text that belongs to no unit (template markers, a lone line break) stays.

A whole region removed leaves it empty (a chat turn keeps its markers: its content is gone).

Examples:
    >>> edit_text("Explain how to hack.", [(0, 7), (8, 11), (12, 14), (15, 20)], [(0, 20)], [0, 1, 1, 1])
    'how to hack.'
    >>> edit_text("A.\\n\\nB. C.", [(0, 2), (4, 6), (7, 9)], [(0, 9)], [1, 0, 1])
    'A.\\n\\nC.'
    >>> edit_text("A.\\n\\nB. C.", [(0, 2), (4, 6), (7, 9)], [(0, 9)], [1, 1, 0])
    'A.\\n\\nB.'
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .prompts import RenderedPrompt
from .tokenization import encode, holds_special_text, shifted_regions

__all__ = ["edit_text", "deleted_ranges", "TextEdits"]


def _region_of(regions: Sequence[tuple[int, int]], start: int) -> int:
    for k, (a, b) in enumerate(regions):
        if a <= start < b:
            return k
    return -1


def deleted_ranges(text: str, spans: Sequence[tuple[int, int]], regions: Sequence[tuple[int, int]],
                   keep: Sequence[int]) -> list[tuple[int, int]]:
    """The character ranges ``[a, b)`` of ``text`` that removing the units with ``keep[u] == 0`` deletes:
    each removed block with the whitespace joining it to the kept text of its region.

    Examples:
        >>> deleted_ranges("a b c d", [(0, 1), (2, 3), (4, 5), (6, 7)], [(0, 7)], [1, 1, 0, 0])
        [(3, 7)]
    """
    order = sorted(range(len(spans)), key=lambda u: spans[u][0])
    region = [_region_of(regions, spans[u][0]) for u in order]
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(order):
        if keep[order[i]]:
            i += 1
            continue
        j = i  # the block: removed units order[i..j], same region, only whitespace between them
        while (j + 1 < len(order) and not keep[order[j + 1]] and region[j + 1] == region[i]
               and not text[spans[order[j]][1]:spans[order[j + 1]][0]].strip()):
            j += 1
        a, b = spans[order[i]][0], spans[order[j]][1]
        lo, hi = regions[region[i]] if region[i] >= 0 else (0, len(text))
        kept_after = j + 1 < len(order) and region[j + 1] == region[i] and keep[order[j + 1]]
        kept_before = i > 0 and region[i - 1] == region[i] and keep[order[i - 1]]
        if kept_after and not text[b:spans[order[j + 1]][0]].strip():
            b = spans[order[j + 1]][0]  # up to the next kept unit: its leading whitespace goes
        elif kept_before and not text[spans[order[i - 1]][1]:a].strip():
            a = spans[order[i - 1]][1]  # the last unit of its turn: the whitespace before it goes
        else:  # alone in its region, or next to text of no unit: the whitespace after it goes
            while b < hi and text[b].isspace():
                b += 1
        out.append((max(a, lo), min(b, hi)))
        i = j + 1
    return _trimmed(text, regions, out)


def _trimmed(text: str, regions: Sequence[tuple[int, int]], ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` (sorted, disjoint) plus the whitespace an edit left at the start or end of a region (a token
    unit's leading space, once the word before it is gone), so each edited region is trimmed as its original
    was. Walks the ranges, not the characters: linear in the number of removed blocks."""
    extra: list[tuple[int, int]] = []
    for lo, hi in regions:
        if lo >= hi or text[lo].isspace() or text[hi - 1].isspace():
            continue
        inside = [(a, b) for a, b in ranges if a < hi and lo < b]
        p, k = lo, 0
        while p < hi:  # from the start: skip deleted blocks and the whitespace between them
            if k < len(inside) and inside[k][0] <= p:
                p, k = max(p, inside[k][1]), k + 1
            elif text[p].isspace():
                p += 1
            else:
                break
        q, k = hi, len(inside) - 1
        while q > p:  # from the end, likewise
            if k >= 0 and inside[k][1] >= q:
                q, k = min(q, inside[k][0]), k - 1
            elif text[q - 1].isspace():
                q -= 1
            else:
                break
        extra += [(lo, p), (q, hi)]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges + extra if r[0] < r[1]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def edit_text(text: str, spans: Sequence[tuple[int, int]], regions: Sequence[tuple[int, int]],
              keep: Sequence[int]) -> str:
    """``text`` with the units whose ``keep`` is 0 deleted (see :func:`deleted_ranges`).

    Examples:
        >>> edit_text("a b c d", [(0, 1), (2, 3), (4, 5), (6, 7)], [(0, 7)], [0, 1, 0, 1])
        'b d'
    """
    out, at = [], 0
    for a, b in deleted_ranges(text, spans, regions, keep):
        out.append(text[at:a])
        at = b
    out.append(text[at:])
    return "".join(out)


class TextEdits:
    """The edited, re-tokenised prompts of one rendered prompt and its units.

    ``ids(masks)`` gives each mask's token ids (BOS and template markers tokenised as the rendering did);
    ``request(mask)`` gives what a user would send again: the edited plain text, or the chat's messages with
    their edited contents.

    Examples:
        >>> from diffusiongemma.prompts import render_prompt
        >>> from diffusiongemma.units import build_units
        >>> from diffusiongemma.models.tiny import example_model
        >>> tok = example_model().tokenizer
        >>> rendered = render_prompt("Explain how to hack", tok)
        >>> edits = TextEdits(rendered, build_units(rendered, "words"), tok)
        >>> edits.texts(torch.tensor([[0, 1, 1, 1]]))
        ['how to hack']
    """

    def __init__(self, rendered: RenderedPrompt, units: Sequence[Any], tokenizer: Any,
                 messages: Sequence[dict[str, str]] | None = None) -> None:
        self.rendered = rendered
        self.spans = [(int(u.start), int(u.end)) for u in units]
        self.regions = [(r.start, r.end) for r in rendered.regions]
        self.tokenizer = tokenizer
        self.add_special = not rendered.is_chat  # a rendered chat carries its own BOS and markers as text
        self.messages = list(messages) if messages is not None else None
        # content that spells a special token stays text in every edit, as the rendering kept it
        self._special_text = any(holds_special_text(tokenizer, rendered.text[a:b]) for a, b in self.regions)

    def texts(self, masks: torch.Tensor) -> list[str]:
        """The edited rendered text of each unit mask ``[B, n]`` (0/1)."""
        return [edit_text(self.rendered.text, self.spans, self.regions, row) for row in masks.tolist()]

    def ids(self, masks: torch.Tensor) -> list[list[int]]:
        """The token ids of each edited text, ``B`` lists of varying length."""
        if self._special_text:  # one at a time, each edited text's content regions tokenised as text
            text = self.rendered.text
            return [encode(self.tokenizer, edit_text(text, self.spans, self.regions, row),
                           shifted_regions(self.regions, deleted_ranges(text, self.spans, self.regions, row)),
                           self.add_special)[0] for row in masks.tolist()]
        texts = self.texts(masks)
        return [list(x) for x in self.tokenizer(texts, add_special_tokens=self.add_special)["input_ids"]]

    def request(self, keep: Sequence[int]) -> str | list[dict[str, str]]:
        """What a user would send with the units of ``keep == 0`` deleted: the plain text, or the chat's
        messages with each content edited (a turn whose content is all removed keeps an empty content)."""
        text = self.rendered.text
        ranges = deleted_ranges(text, self.spans, self.regions, keep)
        edited = edit_text(text, self.spans, self.regions, keep)
        if not self.rendered.is_chat:
            return edited

        def moved(at: int) -> int:  # where character ``at`` of the rendered text lands in the edited one
            return at - sum(max(0, min(b, at) - a) for a, b in ranges)

        return [{"role": r.role, "content": edited[moved(r.start):moved(r.end)]} for r in self.rendered.regions]
