"""Trace an output back to the prompt: the attribution of every output token to every prompt unit.

All output tokens are teacher-forced in one pass per mask: each mask is evaluated once, giving the
log-probability of every output token (a vector game). The estimator then runs once per output token on
those same values (same seed, so the same masks; no further model run), and once on their sum — the whole
output. Sampling estimators are linear in the values (the Bayesian ``gp`` once its prior is fixed: the rows
reuse the prior fitted to the whole output), so the per-token maps add up to the whole-output map.

Examples:
    >>> from diffusiongemma.trace import trace
    >>> from diffusiongemma.models.tiny import example_model
    >>> t = trace("Write a haiku about snow", response="Snow falls", model=example_model(), chat=True, budget=32)
    >>> t.scores.shape  # [output tokens, prompt units]: 'Snow', ' falls' × 5 words
    (2, 5)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import InputError
from .prompts import RenderedPrompt
from .targets import BoundTarget, Target, tokens_of, token_logprobs
from .units import Unit

__all__ = ["ResponseTokens", "Trace", "trace"]


@dataclass
class ResponseTokens(Target):
    """Vector target: log p(r_k | prompt, r_<k) for every token of a response (values ``[B, K]``)."""

    text: str
    name = "response_tokens"
    help = "per-token log-probabilities of a response (trace)"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        toks = tokens_of(lm, self.text, "response")

        return BoundTarget([toks], lambda lg: token_logprobs(lg[0], toks),  # [B, K]
                           {"kind": self.name, "text": self.text, "tokens": toks})


class _Recorded:
    """A scalar view of the vector game: one column (or the row sum), each distinct mask evaluated once."""

    def __init__(self, game: Any, table: dict[bytes, np.ndarray], column: int | None) -> None:
        self.game, self.table, self.column, self.n = game, table, column, game.n

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        m = np.asarray(masks).round().astype(np.int8)  # [B, n]
        keys = [row.tobytes() for row in m]
        missing = [i for i, k in enumerate(keys) if k not in self.table]
        if missing:
            todo = sorted({keys[i]: i for i in missing}.values())
            for i, row in zip(todo, np.atleast_2d(self.game(m[todo]))):
                self.table[keys[i]] = row
        rows = np.stack([self.table[k] for k in keys])  # [B, K]
        return rows.sum(1) if self.column is None else rows[:, self.column]


@dataclass
class Trace:
    """Scores ``[K, n]`` of K output tokens on n prompt units, with standard errors, and the whole output's."""

    units: list[Unit]
    text: str  # the rendered prompt
    response: str
    tokens: list[str]  # [K] output token texts
    scores: np.ndarray  # [K, n]
    stderr: np.ndarray  # [K, n]
    total_scores: np.ndarray  # [n]: the map of log p(whole response)
    total_stderr: np.ndarray  # [n]
    logprobs: np.ndarray  # [K]: log p(r_k | prompt, r_<k) with every unit kept
    evaluations: int
    wall_time: float
    generated: bool
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "trace", "text": self.text, "response": self.response, "tokens": self.tokens,
            "units": [u.to_dict() for u in self.units],
            "scores": self.scores.tolist(), "stderr": np.where(np.isfinite(self.stderr), self.stderr, -1).tolist(),
            "total_scores": self.total_scores.tolist(), "total_stderr": self.total_stderr.tolist(),
            "logprobs": self.logprobs.tolist(), "evaluations": self.evaluations, "wall_time": self.wall_time,
            "generated": self.generated, "settings": self.settings, "provenance": self.provenance,
        }

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    def to_html(self, path: str | Path) -> Path:
        """One self-contained page: the matrix, and the prompt's heat map for the output token under the mouse."""
        from .report.trace_html import render_trace_html

        path = Path(path)
        path.write_text(render_trace_html(self), encoding="utf-8")
        return path


def check_trace_method(method: str) -> None:
    """Trace needs a sampling method (every mask teacher-forces the whole output); checked before any model loads.

    Examples:
        >>> check_trace_method("shapley")
        >>> check_trace_method("gradient")
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: trace takes a sampling method (shapley, banzhaf, exact, paired, regression, kadd, gp, owen, ablation), not 'gradient'
    """
    from .api import METHODS

    if method not in METHODS or method == "gradient":
        raise InputError(f"trace takes a sampling method ({', '.join(m for m in METHODS if m != 'gradient')}), "
                         f"not {method!r}")


def trace(
    prompt: str,
    response: str | None = None,
    *,
    model: Any = None,
    units: str = "words",
    method: str = "shapley",
    budget: int = 256,
    seed: int = 0,
    chat: bool = True,
    system: str | None = None,
    max_new_tokens: int = 32,
    progress: Callable[[int, int], Any] | None = None,
) -> Trace:
    """Attribute every token of ``response`` (generated greedily when None) to the units of ``prompt``.

    ``budget`` model evaluations in all (each one a pass that teacher-forces the whole response).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> t = trace("Name a colour:", response=" red", model=example_model(), chat=False, budget=16)
        >>> t.tokens
        [' red']
    """
    from .api import METHODS
    from .engine import run
    from .estimators import get_estimator
    from .game import Game, resolve_model
    from .generation import generate_replies

    check_trace_method(method)
    lm = resolve_model(model)
    generated = response is None
    if response is None:
        response = generate_replies(lm, [prompt], max_new_tokens=max_new_tokens, system=system, chat=chat)[0]
        if not response:
            raise InputError("the model generated an empty reply; pass one with response=")
    game = Game(prompt, ResponseTokens(response), model=lm, units=units, chat=chat, system=system)
    estimator, schedule = METHODS[method]
    table: dict[bytes, np.ndarray] = {}
    whole = get_estimator(estimator)
    total = run(_Recorded(game, table, None), whole, schedule=schedule, budget=budget, seed=seed, progress=progress)
    ids = game.bound.continuations[0]
    rows = [run(_Recorded(game, table, k), whole.sibling(), schedule=schedule, budget=budget, seed=seed)
            for k in range(len(ids))]
    full = table[np.ones(game.n, dtype=np.int8).tobytes()]
    return Trace(
        units=game.units, text=game.text, response=response, generated=generated,
        tokens=[lm.tokenizer.decode([t]) for t in ids],
        scores=np.stack([r.scores for r in rows]), stderr=np.stack([r.stderr for r in rows]),
        total_scores=total.scores, total_stderr=total.stderr, logprobs=np.asarray(full, dtype=float),
        evaluations=game.evaluations, wall_time=total.wall_time + sum(r.wall_time for r in rows),
        settings={"units": units, "method": method, "budget": budget, "seed": seed, "chat": chat,
                  "estimator": total.estimator, "schedule": total.schedule},
        provenance=dict(lm.provenance),
    )
