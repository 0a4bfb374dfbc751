"""OpenAI chat-completions logs (JSON Lines): one item per logged conversation, with its ``tool`` turns.

A line is one of the shapes the OpenAI API and its logs use, read by their documented field names:

* a conversation: ``{"messages": [...]}`` (the fine-tuning / eval format); a trailing ``assistant`` message
  is the reply;
* a request with its response: ``{"request": {"messages": [...]}, "response": {"choices": [...]}}``, or a Batch
  API pair ``{"custom_id", "body": {"messages"}, "response": {"body": {"choices"}}}``;
* the response's ``choices[0].message`` gives the reply (``content``, or ``refusal`` when the model refused
  through the structured-refusal field) and ``choices[0].finish_reason`` the provider signal
  (``content_filter``).

The item's request is the whole conversation (system, earlier turns, tool results) up to the last user
turn; a provider refusal becomes the label ``provider_refusal:<signal>``.

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "chat.jsonl"
    >>> _ = p.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\\n')
    >>> [(x.prompt, x.response, x.messages) for x in read_openai_chat(p)]
    [('hi', 'hello', [{'role': 'user', 'content': 'hi'}])]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem
from .chat import conversation
from .jsonfile import json_lines

__all__ = ["read_openai_chat", "is_openai_chat"]


def _messages(record: dict[str, Any]) -> list[Any] | None:
    for holder in (record, record.get("request"), record.get("body")):
        if isinstance(holder, dict) and isinstance(holder.get("messages"), list):
            return holder["messages"]
    return None


def _choice(record: dict[str, Any]) -> dict[str, Any] | None:
    response = record.get("response")
    for holder in (response, (response or {}).get("body") if isinstance(response, dict) else None, record):
        if isinstance(holder, dict) and isinstance(holder.get("choices"), list) and holder["choices"]:
            first = holder["choices"][0]
            return first if isinstance(first, dict) else None
    return None


def is_openai_chat(first_record: Any) -> bool:
    """Whether a JSONL file's first record is an OpenAI chat log line (it holds a ``messages`` list).

    Examples:
        >>> is_openai_chat({'messages': [{'role': 'user', 'content': 'Hi'}]}), is_openai_chat({'prompt': 'Hi'})
        (True, False)
    """
    return isinstance(first_record, dict) and _messages(first_record) is not None


def read_openai_chat(path: Path) -> Iterator[AuditItem | Problem]:
    """Every non-blank line of an OpenAI chat-completions JSONL log (line numbers from 1)."""
    return json_lines(path, "openai", _item)


def _item(record: Any, index: int, line_no: int, raw: str) -> AuditItem | Problem:
    messages = _messages(record) if isinstance(record, dict) else None
    if messages is None:
        return Problem(index, line_no, "no conversation: the record needs a messages list (or request/body with "
                       "one)", "openai", raw[:500])
    choice = _choice(record) or {}
    c = conversation(messages, choice.get("message"), choice.get("finish_reason"))
    if not c.messages:
        return Problem(index, line_no, "the conversation has no user turn", "openai", raw[:500])
    meta = {k: record[k] for k in ("custom_id", "id", "model", "metadata") if k in record}
    if isinstance(record.get("body"), dict) and "model" in record["body"]:
        meta["model"] = record["body"]["model"]
    if c.provider_refusal:
        meta["provider_refusal"] = c.provider_refusal
    if any(m["role"] == "tool" for m in c.messages):
        meta["tool_turns"] = sum(m["role"] == "tool" for m in c.messages)
    return AuditItem(index, line_no, c.prompt, "openai", c.reply,
                     f"provider_refusal:{c.provider_refusal}" if c.provider_refusal else None, meta, c.messages)
