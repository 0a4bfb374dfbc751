"""Prompt sets drawn with a fixed seed from the team's shared data (AdvBench harmful, Self-Instruct benign).

The data folder is ``$DIFFUSIONGEMMA_DATA`` or ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np


def data_dir() -> Path:
    env = os.environ.get("DIFFUSIONGEMMA_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"prompt data not found at {path}; set DIFFUSIONGEMMA_DATA")
    return path


def harmful() -> list[str]:
    with (data_dir() / "advbench" / "harmful_behaviors.csv").open(newline="") as fh:
        return [row["goal"].strip() for row in csv.DictReader(fh)]


def benign() -> list[str]:
    lines = (data_dir() / "self_instruct" / "seed_tasks.jsonl").read_text().splitlines()
    return [json.loads(line)["instruction"].strip() for line in lines if line.strip()]


def with_words(n_words: int, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` prompts of exactly ``n_words`` words, half harmful and half benign: (source, text)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str]] = []
    for source, pool in (("advbench", harmful()), ("self_instruct", benign())):
        fitting = [p for p in pool if len(p.split()) == n_words]
        k = min(len(fitting), count // 2 + (count % 2 if source == "advbench" else 0))
        out += [(source, fitting[i]) for i in sorted(rng.choice(len(fitting), size=k, replace=False))]
    return out


def jailbreak_templates() -> list[dict[str, str]]:
    """PyRIT's jailbreak templates (MIT) that wrap a request given as ``{{ prompt }}``: name and text."""
    path = data_dir() / "jailbreak_templates" / "pyrit_jailbreak_templates.jsonl"
    rows = [json.loads(line) for line in path.read_text().split("\n") if line.strip()]  # not splitlines: U+2028 in text
    clean = lambda t: t.replace("{% raw %}", "").replace("{% endraw %}", "")  # noqa: E731  (Jinja escapes)
    return [{"name": r["name"], "value": clean(r["value"])} for r in rows if "{{ prompt }}" in r["value"]]


def long_prompts(count: int, seed: int, fits: "callable") -> list[tuple[str, str]]:
    """``count`` jailbreak prompts: a template around an AdvBench request, drawn with ``seed`` among the
    pairs for which ``fits(text)`` holds (e.g. 64–128 token units): (template name, text)."""
    rng = np.random.default_rng(seed)
    templates, requests = jailbreak_templates(), harmful()
    out: list[tuple[str, str]] = []
    for t in rng.permutation(len(templates)):
        text = templates[t]["value"].replace("{{ prompt }}", requests[int(rng.integers(len(requests)))]).strip()
        if fits(text):
            out.append((templates[t]["name"], text))
            if len(out) == count:
                break
    return out
