"""Conversations from logs, in the form the audit explains: the messages the reply answers (system, earlier
turns, the last user turn and any tool results after it), the logged reply, and the provider's refusal signal if it gave one.

Roles are normalised to the chat the library renders: ``developer`` is a system message; ``tool`` (and
``function``) results stay tool messages (read inside the next user turn, see
:mod:`diffusiongemma.prompts`); an assistant turn that only called tools is written as its calls. Provider
refusal signals are normalised to one name each: OpenAI's ``refusal`` field and ``content_filter`` finish
reason, Gemini's ``SAFETY`` finish reason, guardrail interventions (``guardrail_intervened``).

Examples:
    >>> c = conversation([{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"},
    ...                   {"role": "assistant", "content": None, "refusal": "I can't help with that."}])
    >>> c.messages, c.reply, c.provider_refusal
    ([{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'hi'}], "I can't help with that.", 'refusal')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Conversation", "conversation", "content_text", "refusal_signal", "REFUSAL_SIGNALS"]

# finish / stop reasons and flags that mean the provider (not the model's words) refused, by their normal name
REFUSAL_SIGNALS = {"content_filter": "content_filter", "safety": "SAFETY", "refusal": "refusal",
                   "guardrail_intervened": "guardrail_intervened", "prohibited_content": "SAFETY",
                   "blocklist": "SAFETY", "spii": "SAFETY"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "model": "assistant",
          "tool": "tool", "function": "tool", "ipython": "tool"}


def refusal_signal(reason: Any) -> str | None:
    """The normal name of a provider's refusal finish reason, or ``None`` (``stop``, ``length`` ...).

    Examples:
        >>> refusal_signal("SAFETY"), refusal_signal("content_filter"), refusal_signal("stop")
        ('SAFETY', 'content_filter', None)
    """
    return REFUSAL_SIGNALS.get(str(reason).lower()) if reason else None


def content_text(content: Any) -> str:
    """A message content as text: a string, or the text parts of a list of parts (OpenAI ``{"type": "text",
    "text": ...}``, Inspect ``ContentText``); other parts (images, audio) are named, not dropped silently.

    Examples:
        >>> content_text([{'type': 'text', 'text': 'Hi'}, {'type': 'image_url', 'image_url': {}}]).split()
        ['Hi', '[image_url]']
        >>> content_text(None), content_text('Hello')
        ('', 'Hello')
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                out.append(str(part.get("text") or part.get("refusal") or f"[{part.get('type', 'part')}]"))
            else:
                out.append(str(getattr(part, "text", None) or f"[{getattr(part, 'type', 'part')}]"))
        return "\n".join(x for x in out if x)
    return str(content)


def _calls(message: dict[str, Any]) -> str:
    calls = message.get("tool_calls") or ([message["function_call"]] if message.get("function_call") else [])
    out = []
    for c in calls:
        f = c.get("function", c) if isinstance(c, dict) else {}
        args = f.get("arguments", "")
        out.append(f"[calls {f.get('name', '?')}({args if isinstance(args, str) else json.dumps(args)})]")
    return "\n".join(out)


@dataclass(frozen=True)
class Conversation:
    """``messages``: the request (up to the last user turn, or the tool results after it that the reply
    answers); ``reply``: the logged reply (``None``: none logged)."""

    messages: list[dict[str, str]]
    reply: str | None
    provider_refusal: str | None = None

    @property
    def prompt(self) -> str:
        """The last user turn's text."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def conversation(messages: list[Any], reply: Any = None, finish_reason: Any = None) -> Conversation:
    """Normalise logged ``messages`` (dicts with ``role`` and ``content``); ``reply``: the response message
    (a dict like the messages) when the log keeps it apart, else the trailing assistant turn is the reply.

    Examples:
        >>> c = conversation([{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'},
        ...                   {'role': 'assistant', 'content': 'Hello!'}])
        >>> [m['role'] for m in c.messages], c.reply
        (['system', 'user'], 'Hello!')
    """
    msgs = [m for m in messages if isinstance(m, dict)]
    if reply is None and msgs and _ROLES.get(str(msgs[-1].get("role"))) == "assistant":
        reply, msgs = msgs[-1], msgs[:-1]
    out: list[dict[str, str]] = []
    for m in msgs:
        role = _ROLES.get(str(m.get("role")), "user")
        text = content_text(m.get("content"))
        if role == "assistant" and not text:
            text = _calls(m) or content_text(m.get("refusal"))
        if role == "tool" and m.get("name"):
            text = f"[{m['name']} returned]\n{text}"
        out.append({"role": role, "content": text})
    while out and out[-1]["role"] in ("assistant", "system"):  # the request ends with a user turn or tool results
        out.pop()
    if not any(m["role"] == "user" for m in out):
        out = []
    signal = refusal_signal(finish_reason)
    said: str | None = None
    if isinstance(reply, dict):
        if reply.get("refusal"):
            signal, said = "refusal", content_text(reply["refusal"])
        else:
            said = content_text(reply.get("content")) or _calls(reply) or None
    elif isinstance(reply, str):
        said = reply
    return Conversation(out, said, signal)
