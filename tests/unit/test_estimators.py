"""Sampling estimators on toy games with interactions: convergence, calibration, efficiency, seeds, stopping."""

import numpy as np
import pytest

from diffusiongemma import run
from diffusiongemma.errors import InputError

from ..conftest import ToyGame


def rel_err(est, exact):
    return np.linalg.norm(est - exact) / np.linalg.norm(exact)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["paired", "regression", "kadd"])
def test_converges_and_error_falls_with_budget(method):
    game = ToyGame(12, seed=3)
    exact = game.shapley()
    errs = {b: np.mean([rel_err(run(game, method, budget=b, seed=s).scores, exact) for s in range(8)])
            for b in (128, 512, 2048)}
    assert errs[2048] < errs[512] < errs[128]
    assert errs[2048] < 0.05


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_tiny_games_are_exact_or_converge(n):
    game = ToyGame(n, seed=2)
    exact = run(game, "exact").scores
    for method in ("paired", "regression", "kadd", "gp"):
        r = run(game, method, budget=2000, seed=0)
        np.testing.assert_allclose(r.scores, exact, atol=0.05 * np.abs(exact).max() + 1e-9)


def test_regression_enumerates_everything_when_the_budget_allows():
    game = ToyGame(6, seed=4)
    r = run(game, "regression", budget=2**6, seed=0)
    np.testing.assert_allclose(r.scores, run(game, "exact").scores, atol=1e-9)
    np.testing.assert_array_equal(r.stderr, 0)


@pytest.mark.parametrize("method,schedule", [("paired", "shapley"), ("regression", "shapley"), ("kadd", "shapley"),
                                             ("regression", "banzhaf"), ("paired", "beta:2,2")])
@pytest.mark.slow
def test_standard_errors_are_calibrated(method, schedule):
    game = ToyGame(12, seed=5)
    exact = run(game, "exact", schedule=schedule).scores
    hits = []
    for seed in range(40):
        r = run(game, method, schedule=schedule, budget=600, seed=seed)
        # units whose marginals have no variance (pure pair interactions under antithetic pairs) are exact
        hits.append(np.abs(r.scores - exact) <= 2 * r.stderr + 1e-9)
    coverage = np.mean(hits)
    assert 0.88 <= coverage <= 1.0, coverage


@pytest.mark.parametrize("method", ["regression", "kadd", "gp"])
def test_regression_efficiency_gap_is_zero(method):
    game = ToyGame(8, seed=1)
    r = run(game, method, budget=100, seed=0)
    assert abs(r.efficiency_gap) < 1e-9
    assert abs(r.scores.sum() - (r.v_full - r.v_empty)) < 1e-9


def test_same_seed_same_scores_other_seed_other_scores():
    game = ToyGame(8)
    a, b, c = (run(game, "regression", budget=200, seed=s).scores for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


class _Batched(ToyGame):
    """A toy game that says how many rows its device takes per forward, and counts the calls."""

    def __init__(self, n: int, rows: int):
        super().__init__(n)
        self.rows_per_forward, self.round_trips = rows, 0

    def __call__(self, masks):
        self.round_trips += 1
        return super().__call__(masks)


@pytest.mark.parametrize("schedule", ["shapley", "banzhaf"])
def test_rounds_fill_the_device_batch_without_changing_the_masks(schedule):
    cpu, gpu, tiny = _Batched(12, 64), _Batched(12, 4096), _Batched(12, 1)
    a, b = (run(g, "regression", schedule=schedule, budget=1500, seed=3) for g in (cpu, gpu))
    c = run(tiny, "regression", schedule=schedule, budget=1500, seed=3, round_size=10)
    assert gpu.round_trips == 2 < cpu.round_trips  # the ends, then one round of 1498 masks
    np.testing.assert_allclose(b.scores, a.scores, rtol=0, atol=1e-12)  # same masks, whatever the round size
    np.testing.assert_allclose(c.scores, a.scores, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.stderr, a.stderr, rtol=0, atol=1e-12)
    assert a.evaluations == b.evaluations == 1500
    gpu.round_trips = 0
    run(gpu, "regression", schedule=schedule, budget=1500, seed=3, tolerance=1e-9)
    assert gpu.round_trips > 2  # with a tolerance, rounds stay small so the stop is checked as often as on CPU


def test_budget_is_respected_and_counted():
    game = ToyGame(8)
    for method in ("paired", "regression"):
        game.calls = 0
        r = run(game, method, budget=300, seed=0)
        assert r.evaluations == game.calls <= 300


def test_tolerance_stops_early():
    game = ToyGame(6)
    r = run(game, "regression", budget=20000, tolerance=0.05, seed=0)
    assert r.stopped == "tolerance" and r.evaluations < 20000
    assert r.stderr.max() <= 0.05


@pytest.mark.parametrize("budget", [0, -5, 3])
def test_budget_too_small(budget):
    with pytest.raises(InputError):
        run(ToyGame(8), "paired", budget=budget)


def test_regression_refuses_beta_schedule():
    with pytest.raises(InputError, match="regression"):
        run(ToyGame(4), "regression", schedule="beta:2,3", budget=100)


def test_single_unit_game():
    class One:
        n = 1

        def __call__(self, m):
            return np.asarray(m, float)[:, 0] * 3

    assert run(One(), "regression", budget=10).scores[0] == pytest.approx(3.0)
    assert run(One(), "exact").scores[0] == pytest.approx(3.0)


@pytest.mark.parametrize("method", ["paired", "regression"])
def test_long_prompts_spend_the_budget(method):
    """80 units (more than 64 bits, more than one default round per chain pair)."""

    class Additive:
        n = 80
        w = np.random.default_rng(0).normal(size=80)

        def __call__(self, m):
            return np.asarray(m, float) @ self.w

    r = run(Additive(), method, budget=2000, seed=0)
    assert r.evaluations > 1800
    np.testing.assert_allclose(r.scores, Additive.w, atol=1e-6)  # additive games are recovered exactly


class _Quadratic:
    """v(m) = w·m + c·m_0·m_1 with its gradient: the relaxation is the game itself (multilinear)."""

    n = 4
    w = np.array([1.0, -2.0, 0.5, 3.0])
    c = 2.0

    def __call__(self, m):
        m = np.atleast_2d(np.asarray(m, float))
        return m @ self.w + self.c * m[:, 0] * m[:, 1]

    def gradient(self, m):
        m = np.atleast_2d(np.asarray(m, float))
        g = np.tile(self.w, (len(m), 1))
        g[:, 0] += self.c * m[:, 1]
        g[:, 1] += self.c * m[:, 0]
        return self(m), g


def test_gradient_estimator_exact_on_a_linear_game_and_efficient_on_a_multilinear_one():
    from diffusiongemma.engine import run

    class Linear(_Quadratic):
        c = 0.0

    lin = run(Linear(), "gradient", budget=30)
    np.testing.assert_allclose(lin.scores, Linear.w)
    np.testing.assert_allclose(lin.stderr, 0, atol=1e-12)
    assert lin.evaluations == 2 + 3 * 9  # the two ends, then 9 points of forward + backward
    # a multilinear game: integrated gradients along the diagonal equal the Shapley values (interaction split)
    quad = run(_Quadratic(), "gradient", budget=3000, seed=1)
    np.testing.assert_allclose(quad.scores, [2.0, -1.0, 0.5, 3.0], atol=0.02)
    assert abs(quad.efficiency_gap) < 0.02
    assert np.all(quad.stderr[:2] > 0) and np.all(quad.stderr[:2] < 0.05)  # the gradient varies along the path
    np.testing.assert_allclose(quad.stderr[2:], 0, atol=1e-12)  # constant gradients: no error


def test_gradient_estimator_needs_a_game_with_gradients():
    from diffusiongemma.engine import run
    from diffusiongemma.errors import InputError
    from diffusiongemma.estimators.exact import ValueTable

    with pytest.raises(InputError, match="gradients"):
        run(ValueTable(2, np.array([0.0, 1.0, 2.0, 4.0])), "gradient", budget=30)
