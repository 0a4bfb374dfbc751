"""``diffusiongemma explain-context``: which document, tool result or earlier turn drove a reply.

    diffusiongemma explain-context "What does the e-mail ask me to do?" --doc email.txt --html why.html
    diffusiongemma explain-context --chat conversation.json --follows "evil\\.example"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from .common import ADAPTER, DEVICE, DTYPE, HTML, JSON, method_option
from ..errors import InputError
from ..jsontext import NotJSON, loads


def read_chat(chat_file: Path) -> tuple[Any, list[str], Optional[str]]:
    """A chat file: a JSON list of messages, or an object with ``messages`` (and optional ``documents``, a list
    of texts, and ``reply``).

    Examples:
        >>> import json, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.json"
        >>> _ = p.write_text(json.dumps({"messages": [{"role": "user", "content": "Sum up."}], "documents": ["A."]}))
        >>> read_chat(p)
        ([{'role': 'user', 'content': 'Sum up.'}], ['A.'], None)
    """
    try:
        data = loads(chat_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the chat file {chat_file}: {exc}") from None
    except NotJSON as exc:
        raise InputError(f"{chat_file} is {exc}; give a JSON list of messages or an object with 'messages'") from None
    if isinstance(data, dict):
        messages, documents, reply = data.get("messages"), data.get("documents") or [], data.get("reply")
    else:
        messages, documents, reply = data, [], None
    if not isinstance(messages, list) or not isinstance(documents, list) or not all(
            isinstance(d, str) for d in documents) or not (reply is None or isinstance(reply, str)):
        raise InputError(f"{chat_file} is not a chat: give a list of messages, or an object with 'messages' (a "
                         "list), 'documents' (a list of texts) and 'reply' (a text)")
    return messages, documents, reply


def _read_doc(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the document {path}: {exc}") from None


def explain_context_cmd(
    prompt: Optional[str] = typer.Argument(None, help="The user's turn (or use --chat)."),
    chat: Optional[Path] = typer.Option(None, "--chat", help="A JSON chat: a list of messages (roles system, user, assistant, document, tool; a final assistant message is the reply), or an object with messages, documents and reply."),
    doc: Optional[list[Path]] = typer.Option(None, "--doc", help="A document the model read before the user's turn (a retrieved page, an e-mail); repeat for several."),
    reply: Optional[str] = typer.Option(None, help="The reply to explain (default: the chat's last assistant message, else the model's own)."),
    reference: Optional[str] = typer.Option(None, help="The reply to contrast with (default: the model's own reply without any document or tool result)."),
    follows: Optional[str] = typer.Option(None, help="A regular expression for what the reply did because of the context (a marker word, a URL): judges regenerated replies."),
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id (a chat-tuned one)."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("roles>sentences>words", help="A unit tree from coarse to fine with the messages at the top (roles>sentences>words, roles>sentences), or flat units (roles, sentences, words)."),
    method: str = method_option(),
    budget: int = typer.Option(128, help="Model evaluations for the map (the removal search and its checks count apart)."),
    seed: int = typer.Option(0, help="Random seed."),
    max_new_tokens: int = typer.Option(48, help="Length of generated replies."),
    components: str = typer.Option("heads+mlps", help="Also attribute the target to these model components (gradient method); 'none' to skip."),
    component_budget: int = typer.Option(48, help="Evaluations for the component map."),
    json_path: Optional[Path] = JSON,
    html_path: Optional[Path] = HTML,
    device: Optional[str] = DEVICE,
    dtype: Optional[str] = DTYPE,
) -> None:
    """Which document, tool result or earlier turn drove the reply? Ranked spans, the removal that restores the reference reply (confirmed by regenerating), a verdict per document."""
    from ..api import check_request
    from .common import load_for_cli, save_result
    from ..report.terminal import print_attribution
    from ..validation import check_count
    from ..context.forensics import context_chat, explain_context, follows_reply, suspect_messages

    if (prompt is None) == (chat is None):
        raise InputError("give the user's turn either as an argument or with --chat, not both or neither")
    messages, documents, logged = read_chat(chat) if chat is not None else (str(prompt), [], None)
    documents = documents + [_read_doc(p) for p in doc or []]
    checked, _ = context_chat(messages, documents)  # a malformed chat fails before the model loads
    if reference is None and not suspect_messages(checked):
        raise InputError("nothing in the context to explain: give --doc files (documents or tool results in the "
                         "chat), earlier turns, or a --reference reply to contrast with")
    check_request(method=method, budget=budget)
    check_count(max_new_tokens, "max_new_tokens", "tokens")
    follows_reply("", None, follows)  # a bad regular expression, too
    if components != "none":
        from ..components.sites import parse_component_spec

        parse_component_spec(components)
    console = Console()
    lm = load_for_cli(model, adapter, device, console, dtype)
    with console.status("generating replies and attributing the reply to its context…"):
        attr = explain_context(messages, documents=documents, reply=reply if reply is not None else logged,
                               reference="auto" if reference is None else reference, follows=follows, model=lm,
                               units=units, method=method, budget=budget, seed=seed, max_new_tokens=max_new_tokens,
                               components=None if components == "none" else components,
                               component_budget=component_budget)
    print_attribution(attr, console)
    save_result(attr, json_path, html_path, console)
