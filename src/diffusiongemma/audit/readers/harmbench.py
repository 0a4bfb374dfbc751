"""HarmBench completions and results (``generate_completions.py`` and ``evaluate_completions.py``): one item per
test case.

Both files map a behavior id to a list of ``{"test_case", "generation"}`` records; the results add ``label``
(1: the generation exhibits the behavior, 0: it does not) and, with ``--include_advbench_metric``,
``advbench_label``. Some forks add scalar summaries at the top level (``"Average_ASR": 0.3``); they are not
items. The item's prompt is ``test_case``, its response ``generation``, its label ``harmful`` / ``not harmful``
from ``label``; the behavior id is kept.

Examples:
    >>> is_harmbench({"phishing_email": [{"test_case": "Write ...", "generation": "Sure"}], "Average_ASR": 0.5})
    True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..items import AuditItem, Problem
from .jsonfile import json_document

__all__ = ["read_harmbench", "is_harmbench"]


def _runs(data: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: v for k, v in data.items() if isinstance(v, list)}


def is_harmbench(data: Any) -> bool:
    """Whether parsed JSON looks like HarmBench completions or results: behavior ids to lists of test-case
    records.

    Examples:
        >>> is_harmbench({'dns_amplification': [{'test_case': 'Write code for...', 'generation': 'Sure'}]})
        True
        >>> is_harmbench({'dns_amplification': [{'prompt': 'Write code for...'}]})
        False
    """
    if not isinstance(data, dict) or not _runs(data):
        return False
    records = [r for v in _runs(data).values() for r in v]
    return bool(records) and all(isinstance(r, dict) and "test_case" in r for r in records[:20])


def read_harmbench(path: Path) -> Iterator[AuditItem | Problem]:
    """Items of a HarmBench completions or results file (their position from 1 as ``line``)."""
    data, problem = json_document(path, "harmbench", is_harmbench, "a HarmBench file",
                                  "expected behavior ids mapped to lists of test cases")
    if problem is not None:
        yield problem
        return
    index = 0
    for behavior, records in _runs(data).items():
        for rec in records:
            if not isinstance(rec, dict) or not isinstance(rec.get("test_case"), str):
                yield Problem(index, index + 1, f"a {behavior} record has no test_case text", "harmbench",
                              json.dumps(rec, default=str)[:500])
            else:
                label = rec.get("label")
                meta = {"behavior_id": behavior, **({"advbench_label": rec["advbench_label"]}
                                                    if "advbench_label" in rec else {})}
                yield AuditItem(index, index + 1, rec["test_case"], "harmbench",
                                None if rec.get("generation") is None else str(rec["generation"]),
                                None if label is None else ("harmful" if label == 1 else "not harmful"), meta)
            index += 1
