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
