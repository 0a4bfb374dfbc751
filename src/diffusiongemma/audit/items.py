"""What an audit reads: one item per logged prompt (with its response and label when the log has them).

Examples:
    >>> item = AuditItem(index=0, line=1, prompt="How do I pick a lock?", source="jsonl")
    >>> item.key
    '0'
    >>> Problem(index=3, line=4, message="not JSON").key
    '3'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditItem", "Problem"]


@dataclass(frozen=True)
class AuditItem:
    """One prompt to audit.

    ``index``: position among everything the reader yielded (items and problems), the resume key;
    ``line``: where it sits in the input (a line number, or a row/attempt number for other formats);
    ``response``: the logged reply (``None``: the model's own reply is generated and judged);
    ``label``: the log's own verdict, kept as given (garak ``hit``/``pass``, promptfoo ``pass``/``fail``, ...);
    ``meta``: anything else worth keeping (probe, plugin, conversation id);
    ``messages``: for a logged conversation, the chat up to its last user turn (system, earlier turns, tool
    results) that the decision is explained on; ``prompt`` is then that last user turn's text.
    """

    index: int
    line: int
    prompt: str
    source: str
    response: str | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] | None = None

    @property
    def key(self) -> str:
        return str(self.index)

    @property
    def words(self) -> int:
        """Its length in words (the whole conversation's, for one): what audit groups and time estimates use."""
        text = self.prompt if self.messages is None else " ".join(m["content"] for m in self.messages)
        return max(len(text.split()), 1)

    @property
    def request(self) -> str | list[dict[str, str]]:
        """What the model is asked: the whole conversation when there is one, else the prompt."""
        return self.messages if self.messages is not None else self.prompt


@dataclass(frozen=True)
class Problem:
    """An input record that could not be read: recorded as an error row, and the audit goes on."""

    index: int
    line: int
    message: str
    source: str = ""
    raw: str = ""

    @property
    def key(self) -> str:
        return str(self.index)
