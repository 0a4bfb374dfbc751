"""How a prompt becomes token ids: plain text or a chat rendered with the model's template.

A :class:`RenderedPrompt` keeps the rendered text, the token ids, each token's character span, and the
*content regions* (character spans of what the user wrote, with their chat role). Units are built only from
tokens inside content regions, so template markers and BOS are never units unless asked for.

Examples:
    >>> from diffusiongemma.prompts import Region
    >>> Region("user", 0, 5).length
    5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .errors import InputError
from .tokenization import encode

__all__ = ["Region", "RenderedPrompt", "render_prompt", "check_messages", "Chat", "ROLES", "FOLDED"]

Chat = Sequence[dict[str, str]]  # [{"role": "system"|"user"|"assistant"|"document"|"tool", "content": str}, ...]
ROLES = ("system", "user", "assistant", "document", "tool")
FOLDED = ("document", "tool")  # read by the model inside the next user turn (see _fold)
_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use sentinels marking message contents in a rendered template


@dataclass(frozen=True)
class Region:
    """A character span of user-written content, with its chat role (``"prompt"`` for plain text)."""

    role: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt as the model sees it."""

    text: str
    input_ids: list[int]  # [L]
    offsets: list[tuple[int, int]]  # [L] character span of each token in ``text``
    special: list[bool]  # [L] True for BOS, template markers and any token outside the content regions
    regions: list[Region]
    is_chat: bool
    default_system: str | None = None  # a system prompt the chat template added on its own (no system message given)

    def __len__(self) -> int:
        return len(self.input_ids)


def check_messages(messages: Chat) -> list[dict[str, str]]:
    """The chat's messages with their contents stripped, or an :class:`InputError` naming the first bad one.

    Examples:
        >>> check_messages([{"role": "document", "content": " A page. "}, {"role": "user", "content": "Sum up"}])
        [{'role': 'document', 'content': 'A page.'}, {'role': 'user', 'content': 'Sum up'}]
        >>> check_messages([{"role": "robot", "content": "x"}])
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: chat message 0 has role 'robot'; use system, user, assistant, document or tool
    """
    if not messages:
        raise InputError("the chat has no messages")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise InputError(f"chat message {i} needs a 'role' and a 'content'")
        if msg["role"] not in ROLES:
            raise InputError(f"chat message {i} has role {msg['role']!r}; use system, user, assistant, document or "
                             "tool")
        if not isinstance(msg["content"], str) or not msg["content"].strip():
            raise InputError(f"chat message {i} ({msg['role']}) is empty")
        out.append({"role": msg["role"], "content": msg["content"].strip()})
    return out


def _render_chat(messages: list[dict[str, str]], tokenizer: Any, template: str | None,
                 add_generation_prompt: bool) -> tuple[str, list[Region]]:
    if not template:
        raise InputError("this model has no chat template; pass the prompt as plain text")
    marked = _fold(messages)
    try:
        rendered = tokenizer.apply_chat_template(
            marked, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=template
        )
    except Exception as exc:  # jinja raise_exception from the template, e.g. roles not alternating
        raise InputError(f"the chat template rejected this chat: {exc}") from exc
    text, regions, pos = "", [], 0
    while True:
        start = rendered.find(_OPEN, pos)
        if start < 0:
            text += rendered[pos:]
            break
        end = rendered.index(_CLOSE, start)
        idx = int(rendered[start + 1:end])
        text += rendered[pos:start]
        content = messages[idx]["content"]
        regions.append(Region(messages[idx]["role"], len(text), len(text) + len(content)))
        text += content
        pos = end + 1
    return text, regions


def _fold(messages: list[dict[str, str]], *, text: bool = False) -> list[dict[str, str]]:
    """The messages the template sees, each content a sentinel that marks where the message's own text goes
    (with ``text``, the text itself).
    Documents and tool results (roles a chat template such as Gemma's does not know) are read inside the next
    user turn, before its text and each followed by a blank line; with no user turn after them, they make one.

    Examples:
        >>> [m["role"] for m in _fold([{"role": "document", "content": "a"}, {"role": "user", "content": "q"}])]
        ['user']
        >>> _fold([{"role": "document", "content": "a"}, {"role": "user", "content": "q"}])[0]["content"].count(_OPEN)
        2
    """
    out: list[dict[str, str]] = []
    parts: list[str] = []
    for i, m in enumerate(messages):
        mark = m["content"] if text else f"{_OPEN}{i}{_CLOSE}"
        if m["role"] in FOLDED:
            parts.append(mark + "\n\n")
        elif m["role"] == "user":
            out.append({"role": "user", "content": "".join(parts) + mark})
            parts = []
        else:
            if parts:
                out.append({"role": "user", "content": "".join(parts).rstrip("\n")})
                parts = []
            out.append({"role": m["role"], "content": mark})
    if parts:
        out.append({"role": "user", "content": "".join(parts).rstrip("\n")})
    return out


def default_system_prompt(messages: list[dict[str, str]], tokenizer: Any, template: str) -> str | None:
    """The system prompt a chat template adds when the chat has none (e.g. "You are a helpful assistant."),
    or ``None``: the chat rendered without a system message is compared with the chat rendered with a
    sentinel one; what stands where the sentinel stood is the template's own system text.

    Examples:
        >>> from types import SimpleNamespace
        >>> from jinja2 import Template
        >>> tok = SimpleNamespace(apply_chat_template=lambda m, tokenize, add_generation_prompt, chat_template:
        ...     Template(chat_template).render(messages=m))
        >>> qwen_like = ("{% if messages[0].role != 'system' %}<s>system: Be helpful.</s>{% endif %}"
        ...              "{% for m in messages %}<s>{{ m.role }}: {{ m.content }}</s>{% endfor %}")
        >>> default_system_prompt([{"role": "user", "content": "hi"}], tok, qwen_like)
        'Be helpful.'
    """
    if not messages or messages[0]["role"] == "system":
        return None
    probe = "\ue002"
    try:
        bare = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False,
                                             chat_template=template)
        marked = tokenizer.apply_chat_template([{"role": "system", "content": probe}, *messages], tokenize=False,
                                               add_generation_prompt=False, chat_template=template)
    except Exception:  # noqa: BLE001 - a template without system messages adds none of its own
        return None
    if probe not in marked:
        return None
    head, tail = marked.split(probe, 1)
    if not (bare.startswith(head) and bare.endswith(tail)) or len(bare) <= len(head) + len(tail):
        return None
    added = bare[len(head): len(bare) - len(tail)].strip()
    return added or None


def render_prompt(prompt: str | Chat, tokenizer: Any, chat_template: str | None = None, *,
                  chat: bool = False, system: str | None = None) -> RenderedPrompt:
    """Render and tokenize a prompt.

    Args:
        prompt: plain text, or a chat as a list of ``{"role", "content"}`` messages.
        tokenizer: a fast Hugging Face tokenizer.
        chat_template: the Jinja chat template (needed for chats).
        chat: wrap a plain-text prompt as one user turn (with ``system`` before it, if given).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> rp = render_prompt("Hello world", example_model().tokenizer)
        >>> rp.regions, len(rp.input_ids)  # BOS, 'Hello', ' world'
        ([Region(role='prompt', start=0, end=11)], 3)
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InputError("the prompt is empty")
        if chat or system:
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}]
            prompt = messages
    default_system = None
    if isinstance(prompt, str):
        text, regions, add_special = prompt, [Region("prompt", 0, len(prompt))], True
        is_chat = False
    else:
        messages = check_messages(prompt)
        add_gen = messages[-1]["role"] != "assistant"
        text, regions = _render_chat(messages, tokenizer, chat_template, add_gen)
        add_special, is_chat = False, True
        default_system = default_system_prompt(_fold(messages, text=True), tokenizer, chat_template or "")
    ids, offsets = encode(tokenizer, text, [(r.start, r.end) for r in regions], add_special)  # content stays text
    special_ids = set(tokenizer.all_special_ids)
    # special: BOS, template markers and every other token outside what the user wrote
    special = [i in special_ids or s == e or not any(r.start < e and s < r.end for r in regions)
               for i, (s, e) in zip(ids, offsets)]
    return RenderedPrompt(text, ids, offsets, special, regions, is_chat, default_system)
