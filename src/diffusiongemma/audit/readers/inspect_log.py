"""Inspect evaluation logs (UK AISI's ``inspect_ai``; ``.eval`` and ``.json``), read through Inspect's own API
(``inspect_ai.log.read_eval_log_samples``; the optional extra ``diffusiongemma[inspect]``): one item per sample
and epoch.

The item's request is the sample's conversation up to its last user turn (the system message and any tool
results included); its response the sample's ``output.completion`` (a ``content_filter`` stop reason is the
label ``provider_refusal:content_filter``). Scores are kept in ``meta["scores"]`` (value, answer,
explanation); a score whose name speaks of refusal (``refusal``, ``refusal_rate`` ...) is the item's label, as
given. The sample id, epoch, task and model are kept too.

Examples:
    >>> log = Path(__file__).parents[4] / "tests/data/tool_formats/inspect/task.eval"  # written by inspect-ai itself
    >>> items = list(read_inspect(log))
    >>> items[0].meta["scores"]["includes"]["value"]
    'C'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ...errors import InputError
from ..items import AuditItem, Problem
from .chat import conversation, refusal_signal

__all__ = ["read_inspect", "is_inspect_json"]


def is_inspect_json(data: Any) -> bool:
    """Whether parsed JSON is an Inspect log (``version``, ``status`` and an ``eval`` header with a task).

    Examples:
        >>> is_inspect_json({'version': 2, 'status': 'success', 'eval': {'task': 'refusals'}}), is_inspect_json({'eval': {}})
        (True, False)
    """
    return isinstance(data, dict) and isinstance(data.get("eval"), dict) and "task" in data["eval"] \
        and "status" in data and "version" in data


def _score(score: Any) -> dict[str, Any]:
    value = getattr(score, "value", score)
    return {"value": value if isinstance(value, (str, int, float, bool, type(None))) else str(value),
            "answer": getattr(score, "answer", None), "explanation": getattr(score, "explanation", None)}


def _message(m: Any) -> dict[str, Any]:
    """An Inspect ``ChatMessage`` as a logged message dict (tool calls and the tool's name kept)."""
    out: dict[str, Any] = {"role": m.role, "content": m.text}
    if getattr(m, "tool_calls", None):
        out["tool_calls"] = [{"function": {"name": c.function, "arguments": c.arguments}} for c in m.tool_calls]
    if getattr(m, "function", None):
        out["name"] = m.function
    return out


def read_inspect(path: Path) -> Iterator[AuditItem | Problem]:
    """Every sample of an Inspect log, in the log's order (their position from 1 as ``line``)."""
    try:
        from inspect_ai.log import read_eval_log, read_eval_log_samples
    except ImportError:
        raise InputError("reading Inspect logs needs inspect_ai: pip install 'diffusiongemma[inspect]'") from None
    try:
        header = read_eval_log(str(path), header_only=True)
        samples = read_eval_log_samples(str(path), all_samples_required=False)
    except Exception as exc:  # noqa: BLE001 - Inspect's own reader failed: one sentence, not its traceback
        raise InputError(f"{path} is not a readable Inspect log ({type(exc).__name__}: {str(exc)[:200]})") from None
    task, model = header.eval.task, header.eval.model
    for index, sample in enumerate(samples):
        line = index + 1
        messages = [_message(m) for m in sample.messages or []]
        output = sample.output
        stop = output.choices[0].stop_reason if output is not None and output.choices else None
        reply = output.completion if output is not None and output.choices else None
        c = conversation(messages, reply if reply else None, stop)
        if not c.messages:
            yield Problem(index, line, f"sample {sample.id} (epoch {sample.epoch}) has no user turn", "inspect")
            continue
        scores = {name: _score(s) for name, s in (sample.scores or {}).items()}
        refusal = next((name for name in scores if "refus" in name.lower()), None)
        signal = refusal_signal(stop)
        label = f"provider_refusal:{signal}" if signal else (None if refusal is None else str(scores[refusal]["value"]))
        meta: dict[str, Any] = {"sample_id": sample.id, "epoch": sample.epoch, "task": task, "model": model,
                                "scores": scores}
        if sample.metadata:
            meta["metadata"] = dict(sample.metadata)
        if signal:
            meta["provider_refusal"] = signal
        if sample.error is not None:
            meta["sample_error"] = str(getattr(sample.error, "message", sample.error))[:500]
        yield AuditItem(index, line, c.prompt, "inspect", c.reply, label, meta, c.messages)
