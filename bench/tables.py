"""Exact value tables of the B1 prompts (all 2^n masks on the real model), cached on disk.

A table is the whole game: every perturbation method — ours or a peer's — runs on it at no model cost, and
every deletion/insertion curve is read from it. Cached under ``~/.cache/diffusiongemma/bench-tables`` by
weights hash, mask operator and prompt (the operator joined the key after the default became ``edit``: a cache
filled under ``remove`` had been mixed with tables computed under ``edit``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path.home() / ".cache" / "diffusiongemma" / "bench-tables"


def exact_tables(lm: Any, prompts: list[tuple[str, str]], cache: Path = CACHE) -> list[dict[str, Any]]:
    """For each (source, text): the game (word units, greedy next token, the default operator) and its value table."""
    from diffusiongemma import Game
    from diffusiongemma.estimators.exact import ValueTable

    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for source, text in prompts:
        game = Game(text, model=lm, units="words")  # greedy next token, the default operator
        key = hashlib.sha256(f"{lm.provenance['weights_sha256']}|{game.operator.name}|{text}".encode()).hexdigest()[:16]
        path = cache / f"{key}.npy"
        if path.exists():
            values = np.load(path)
        else:
            values = ValueTable.from_game(game).values
            np.save(path, values)
        out.append({"source": source, "prompt": text, "n": game.n, "target": game.bound.description["text"],
                    "values": values, "game": game})
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (0 when either side is constant).

    Example:
        >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
        0.5
    """
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if np.std(ra) and np.std(rb) else 0.0
