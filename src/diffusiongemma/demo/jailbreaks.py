"""A jailbreak test set for the demo models: held-out harmful requests, plain and wrapped in public
jailbreak templates (``data/jailbreaks``: PyRIT's community templates, MIT), as an audit input.

Each row is ``{"prompt", "plain", "jailbroken", "template", "label"}``: ``label`` is ``plain`` or
``jailbreak:<template name>``, so ``audit-report`` shows the refusal rate per template, and the rows feed
``jailbreak-diff --pairs`` directly.

Examples:
    >>> rows = jailbreak_rows(requests=2, templates=3)
    >>> len(rows), rows[0]["label"], rows[2]["label"].startswith("jailbreak:")
    (8, 'plain', True)
"""

from __future__ import annotations

import json
import random
from importlib.resources import files
from typing import Any

from ..refusal.jailbreak import wrap
from ..validation import check_count
from .datasets import load_demo_data

__all__ = ["jailbreak_templates", "jailbreak_rows"]


def jailbreak_templates() -> list[dict[str, Any]]:
    """The shipped templates (name, source, value with ``{{ prompt }}``)."""
    text = (files("diffusiongemma.demo") / "data" / "jailbreaks" / "pyrit_top_short.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def jailbreak_rows(*, requests: int = 10, templates: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """``requests`` held-out AdvBench requests, each plain and in ``templates`` templates (fixed-seed samples;
    at most as many as there are).

    Examples:
        >>> jailbreak_rows(requests=0)
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: --requests must be a whole number of requests ≥ 1, got 0
    """
    check_count(requests, "--requests", "requests")
    check_count(templates, "--templates", "templates", minimum=0)
    rng = random.Random(seed)
    harmful = [r.text for r in load_demo_data().harmful_test if r.source == "advbench"]
    chosen = rng.sample(harmful, min(requests, len(harmful)))
    pool = jailbreak_templates()
    temps = rng.sample(pool, min(templates, len(pool)))
    rows = []
    for req in chosen:
        rows.append({"prompt": req, "plain": req, "template": None, "label": "plain"})
        for t in temps:
            text = wrap(t["value"], req)
            rows.append({"prompt": text, "plain": req, "jailbroken": text, "template": t["name"],
                         "label": f"jailbreak:{t['name']}"})
    return rows
