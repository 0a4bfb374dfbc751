"""Shared fixtures: the real Gemma 3 270M (converted once into the user cache) and a tiny seeded random
Gemma 3 with the real tokenizer, saved as a local Hugging Face directory (no download anywhere)."""

from __future__ import annotations

import os
from pathlib import Path

# pyproject runs the tests in two pytest-xdist workers: each gets its share of the cores for torch's and BLAS's
# thread pools (set before numpy or torch is imported, and inherited by the CLI subprocesses a test starts), or the
# two pools oversubscribe the cores and the run is slower than one worker (measured: 315 s against 256 s on 2 cores)
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import numpy as np
import pytest

# tests/data holds fixtures, among them the scripts that made the red-team tool files with the tools
# themselves (garak 0.12, PyRIT 1.1.0, not installed here): never import them as test modules
collect_ignore_glob = ["data/*"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The slow lane (``pytest -m slow``) holds the real-model and real-browser tests besides those marked slow;
    plain ``pytest`` runs the rest (the fast lane: pyproject's ``-m "not slow"``)."""
    for item in items:
        if item.get_closest_marker("real_model") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def real_lm():
    from diffusiongemma.models import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    """The package's example model (``tiny-random-gemma``: a 2-layer random Gemma 3, seed 0, with the real Gemma
    tokenizer), a local HF directory in the user cache; the fast lane needs no weights of the real model."""
    from diffusiongemma.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def planted_dir() -> Path:
    """The package's planted model (``tiny-planted-gemma``): a 2-layer Gemma 3 that says ``MARKER`` (" zebra")
    wherever that token is in the prompt, and nothing else drives it (see ``models/tiny.py``)."""
    from diffusiongemma.models.tiny import ensure_planted_model

    return ensure_planted_model()


@pytest.fixture(scope="session")
def tiny_lm(tiny_dir):
    from diffusiongemma.models import load_model

    return load_model(str(tiny_dir), device="cpu")


class ToyGame:
    """A game with interactions and known values: v(m) = w·m + Σ pair terms + one triple term."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.n = n
        self.w = rng.normal(size=n)
        self.pairs = [(int(i), int(j), float(c)) for i, j, c in
                      zip(rng.integers(0, n, 6), rng.integers(0, n, 6), rng.normal(size=6) * 2) if i != j]
        self.calls = 0

    def __call__(self, masks):
        m = np.asarray(masks, dtype=float)
        self.calls += len(m)
        v = m @ self.w
        for i, j, c in self.pairs:
            v = v + c * m[:, i] * m[:, j]
        return v + 1.5 * m[:, 0] * m[:, 1] * m[:, 2] if self.n >= 3 else v

    def shapley(self) -> np.ndarray:
        """Closed form: linear terms go to their unit, an interaction splits equally among its members."""
        phi = self.w.copy()
        for i, j, c in self.pairs:
            phi[i] += c / 2
            phi[j] += c / 2
        if self.n >= 3:
            phi[:3] += 0.5
        return phi


@pytest.fixture
def toy_game():
    return ToyGame(8)


@pytest.fixture
def run_cli(monkeypatch):
    """The console script's entry point in this process (no interpreter start-up per call): a function of the
    argument list that returns ``(exit code, stderr, stdout)``, rich's width fixed at 200 columns."""
    import contextlib
    import io
    import sys

    from diffusiongemma import cli

    def run(argv: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["diffusiongemma", *map(str, argv)])
        monkeypatch.setenv("COLUMNS", "200")
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return code, err.getvalue(), out.getvalue()

    return run
