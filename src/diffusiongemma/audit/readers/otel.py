"""OpenTelemetry GenAI spans exported as JSON: one item per model-call span that recorded its messages.

Two exports are read: the Python SDK's span JSON (``ConsoleSpanExporter``, ``span.to_json()``; one span per
line, a JSON array, or spans one after another) and OTLP/JSON (``{"resourceSpans": [...]}``, a collector's
file exporter; attribute values as ``{"stringValue": ...}``). The messages come from whichever GenAI
semantic-convention generation the instrumentation wrote:

* the newer attributes ``gen_ai.system_instructions``, ``gen_ai.input.messages`` and ``gen_ai.output.messages``
  (messages of typed ``parts``: ``text``, ``tool_call``, ``tool_call_response``);
* the message events ``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
  ``gen_ai.tool.message`` and ``gen_ai.choice`` (on the span);
* the older ``gen_ai.prompt`` / ``gen_ai.completion``: JSON in the ``gen_ai.content.prompt`` /
  ``gen_ai.content.completion`` events, or indexed attributes ``gen_ai.prompt.N.role`` / ``.content``.

Finish reasons (``gen_ai.response.finish_reasons``, a choice's or output message's ``finish_reason``) are
normalised as provider refusal signals (:mod:`~diffusiongemma.audit.readers.chat`).

Examples:
    >>> spans = list(read_spans_text('{"name": "chat", "attributes": {"gen_ai.prompt.0.role": "user", '
    ...                              '"gen_ai.prompt.0.content": "hi"}, "events": []}'))
    >>> span_conversation(spans[0]).messages
    [{'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from ...jsontext import NotJSON, loads
from ..items import AuditItem, Problem
from .chat import Conversation, conversation

__all__ = ["read_otel", "is_otel", "read_spans_text", "span_conversation"]

_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(role|content|finish_reason)$")


def _value(v: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` as a plain value."""
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {x["key"]: _value(x.get("value")) for x in v["kvlistValue"].get("values", [])}
    return None


def _attributes(attrs: Any) -> dict[str, Any]:
    if isinstance(attrs, dict):
        return attrs
    if isinstance(attrs, list):  # OTLP/JSON: [{"key": ..., "value": {...}}]
        return {a["key"]: _value(a.get("value")) for a in attrs if isinstance(a, dict) and "key" in a}
    return {}


def _span(raw: dict[str, Any]) -> dict[str, Any]:
    """A span of either export as ``{"name", "attributes", "events", "trace_id", "span_id"}``."""
    ctx = raw.get("context") or {}
    return {"name": raw.get("name"), "attributes": _attributes(raw.get("attributes")),
            "events": [{"name": e.get("name"), "attributes": _attributes(e.get("attributes"))}
                       for e in raw.get("events") or [] if isinstance(e, dict)],
            "trace_id": raw.get("traceId") or ctx.get("trace_id"), "span_id": raw.get("spanId") or ctx.get("span_id")}


def _spans_of(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, list):
        for d in doc:
            yield from _spans_of(d)
    elif isinstance(doc, dict) and "resourceSpans" in doc:
        for rs in doc.get("resourceSpans") or []:
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                for s in ss.get("spans") or []:
                    yield _span(s)
    elif isinstance(doc, dict) and "name" in doc and ("attributes" in doc or "events" in doc):
        yield _span(doc)


def read_spans_text(text: str) -> Iterator[dict[str, Any]]:
    """Every span in an export's text: one JSON document, or several one after another (lines or pretty)."""
    try:
        yield from _spans_of(loads(text))
        return
    except NotJSON:
        pass
    decoder, at = json.JSONDecoder(), 0
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        doc, at = decoder.raw_decode(text, at)  # a bad document raises ValueError: the caller reports it
        yield from _spans_of(doc)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parts(parts: Any) -> str:
    """The text of a newer-convention message's ``parts`` (tool calls and their responses written out)."""
    out = []
    for p in parts if isinstance(parts, list) else [parts]:
        if not isinstance(p, dict):
            out.append(str(p))
        elif p.get("type") == "tool_call":
            args = p.get("arguments")
            out.append(f"[calls {p.get('name', '?')}({args if isinstance(args, str) else json.dumps(args)})]")
        elif p.get("type") == "tool_call_response":
            r = p.get("response")
            out.append(r if isinstance(r, str) else json.dumps(r))
        else:
            out.append(str(p.get("content") or p.get("text") or f"[{p.get('type', 'part')}]"))
    return "\n".join(out)


def span_conversation(span: dict[str, Any]) -> Conversation | None:
    """The conversation a GenAI span recorded, or ``None`` (not a GenAI span, or it recorded no messages)."""
    a = span["attributes"]
    finish = a.get("gen_ai.response.finish_reasons")
    finish = finish[0] if isinstance(finish, list) and finish else finish
    if "gen_ai.input.messages" in a:  # the newer attributes
        messages = [{"role": m.get("role"), "content": _parts(m.get("parts"))} for m in _json(a["gen_ai.input.messages"]) or []
                    if isinstance(m, dict)]
        system = _json(a.get("gen_ai.system_instructions"))
        if system:
            messages.insert(0, {"role": "system", "content": _parts(system)})
        outputs = [m for m in _json(a.get("gen_ai.output.messages")) or [] if isinstance(m, dict)]
        reply = {"role": "assistant", "content": _parts(outputs[0].get("parts"))} if outputs else None
        return conversation(messages, reply, (outputs[0].get("finish_reason") if outputs else None) or finish)
    events = span["events"]
    if any(e["name"] in _EVENT_ROLES or e["name"] == "gen_ai.choice" for e in events):  # the message events
        messages = [{"role": _EVENT_ROLES[e["name"]], "content": _json(e["attributes"].get("content")) or ""}
                    for e in events if e["name"] in _EVENT_ROLES]
        choice = next((e["attributes"] for e in events if e["name"] == "gen_ai.choice"), None)
        reply = _json(choice.get("message")) if choice else None
        return conversation(messages, reply if isinstance(reply, dict) else None,
                            (choice or {}).get("finish_reason") or finish)
    prompt = next((e["attributes"].get("gen_ai.prompt") for e in events if e["name"] == "gen_ai.content.prompt"), None)
    if prompt is not None:  # the older content events
        completion = next((e["attributes"].get("gen_ai.completion") for e in events
                           if e["name"] == "gen_ai.content.completion"), None)
        replies = _json(completion)
        reply = replies[0] if isinstance(replies, list) and replies else replies
        return conversation(_json(prompt) or [], reply, finish)
    indexed: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value in a.items():  # the older indexed attributes
        m = _INDEXED.match(key)
        if m:
            indexed.setdefault((m.group(1), int(m.group(2))), {})[m.group(3)] = value
    if not indexed:
        return None
    prompts = [indexed[k] for k in sorted(k for k in indexed if k[0] == "prompt")]
    first = indexed.get(("completion", 0))
    return conversation(prompts, first, (first or {}).get("finish_reason") or finish)


def is_otel(data: Any) -> bool:
    """Whether parsed JSON is an OTLP/JSON export or SDK span JSON.

    Examples:
        >>> is_otel({'resourceSpans': []}), is_otel({'context': {'span_id': '0x1'}}), is_otel({'spans': []})
        (True, True, False)
    """
    return isinstance(data, dict) and ("resourceSpans" in data or ("context" in data and "span_id" in (data.get("context") or {})))


def _spans_or_problems(text: str) -> Iterator[dict[str, Any] | Problem]:
    """The spans of an export; when it does not parse as JSON documents, line by line, a bad line a problem."""
    try:
        yield from list(read_spans_text(text))
        return
    except ValueError:
        pass
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield from _spans_of(loads(line))
            except NotJSON as exc:
                yield Problem(0, line_no, f"not OpenTelemetry span JSON: {exc}", "otel", line[:500])


def read_otel(path: Path) -> Iterator[AuditItem | Problem]:
    """Every GenAI span of the export that recorded a conversation, in the file's order (position from 1 as
    ``line``, counting every span; a line that is not JSON: its line number); other spans are skipped."""
    index, position = 0, 0
    for span in _spans_or_problems(Path(path).read_text(encoding="utf-8", errors="replace")):
        if isinstance(span, Problem):
            yield Problem(index, span.line, span.message, "otel", span.raw)
            index += 1
            continue
        position += 1
        if not any(k.startswith("gen_ai.") for k in span["attributes"]):
            continue
        c = span_conversation(span)
        if c is None or not c.messages:
            yield Problem(index, position, f"GenAI span {span['name']!r} recorded no request messages (content "
                          "capture off?)", "otel")
            index += 1
            continue
        a = span["attributes"]
        meta = {"span": span["name"], "trace_id": span["trace_id"], "span_id": span["span_id"],
                "system": a.get("gen_ai.provider.name") or a.get("gen_ai.system"),
                "model": a.get("gen_ai.request.model")}
        if c.provider_refusal:
            meta["provider_refusal"] = c.provider_refusal
        yield AuditItem(index, position, c.prompt, "otel", c.reply,
                        f"provider_refusal:{c.provider_refusal}" if c.provider_refusal else None, meta, c.messages)
        index += 1
