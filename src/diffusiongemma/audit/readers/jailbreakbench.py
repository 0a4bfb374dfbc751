"""JailbreakBench artifacts (``jbb.read_artifact``'s JSON, the files of the JailbreakBench/artifacts repository):
one item per jailbreak record.

The file is ``{"parameters": {"method", "model", "attack_type", ...}, "jailbreaks": [record, ...]}``; a record has
``index``, ``goal``, ``behavior``, ``category``, ``prompt`` (the attack's prompt; ``null`` when the attack found
none), ``response``, ``number_of_queries``, ``queries_to_jailbreak``, ``prompt_tokens``, ``response_tokens`` and
``jailbroken``. The item's prompt is ``prompt``, its response ``response``, its label ``jailbroken`` /
``not jailbroken``; goal, behavior, category, the method and the target model are kept.

Examples:
    >>> is_jailbreakbench({"parameters": {"method": "PAIR"}, "jailbreaks": []})
    True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem
from .jsonfile import json_document

__all__ = ["read_jailbreakbench", "is_jailbreakbench"]

KEPT = ("index", "goal", "behavior", "category", "number_of_queries", "queries_to_jailbreak")


def is_jailbreakbench(data: Any) -> bool:
    """Whether parsed JSON looks like a JailbreakBench artifact.

    Examples:
        >>> is_jailbreakbench({'parameters': {'method': 'PAIR'}, 'jailbreaks': []}), is_jailbreakbench({'jailbreaks': []})
        (True, False)
    """
    return isinstance(data, dict) and isinstance(data.get("parameters"), dict) and isinstance(
        data.get("jailbreaks"), list)


def read_jailbreakbench(path: Path) -> Iterator[AuditItem | Problem]:
    """Items of a JailbreakBench artifact (record numbers from 1 as ``line``)."""
    data, problem = json_document(path, "jailbreakbench", is_jailbreakbench, "a JailbreakBench artifact",
                                  "expected 'parameters' and a 'jailbreaks' list")
    if problem is not None:
        yield problem
        return
    params = data["parameters"]
    run = {k: params.get(k) for k in ("method", "model", "attack_type", "defense") if params.get(k) is not None}
    for i, rec in enumerate(data["jailbreaks"]):
        if not isinstance(rec, dict):
            yield Problem(i, i + 1, f"jailbreak record {i + 1} is not an object", "jailbreakbench")
            continue
        prompt = rec.get("prompt")
        if not isinstance(prompt, str):
            why = "the attack found no prompt (null)" if prompt is None else "its prompt is not text"
            yield Problem(i, i + 1, f"jailbreak record {i + 1} ({rec.get('behavior')}): {why}", "jailbreakbench",
                          json.dumps(rec, default=str)[:500])
            continue
        response = rec.get("response")
        jailbroken = rec.get("jailbroken")
        label = None if jailbroken is None else ("jailbroken" if jailbroken else "not jailbroken")
        meta = {**run, **{k: rec[k] for k in KEPT if rec.get(k) is not None}}
        yield AuditItem(i, i + 1, prompt, "jailbreakbench", None if response is None else str(response), label,
                        meta)
