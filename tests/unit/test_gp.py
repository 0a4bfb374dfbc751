"""The Bayesian estimator (``gp``, the default of method='shapley' for 3–14 units): its covariances are those of
the parity prior it claims (checked against explicit features), it interpolates and keeps efficiency, it beats
the regression estimators where units interact, its standard errors cover, and outside its range it is kadd."""

from itertools import combinations

import numpy as np
import pytest
import torch

from diffusiongemma import explain, run
from diffusiongemma.api import METHODS
from diffusiongemma.estimators.exact import ValueTable
from diffusiongemma.estimators.gp import MAX_UNITS, GaussianProcessEstimator, elementary

from ..conftest import ToyGame
from .test_kadd import bits, planted, rel


def test_elementary_symmetric_polynomials_match_brute_force():
    x = torch.tensor([[0.5, -2.0, 3.0, 1.5]], dtype=torch.float64)
    e = elementary(x, 4)[0]
    for k in range(5):
        brute = sum(float(np.prod([x[0, i] for i in c])) for c in combinations(range(4), k))
        assert abs(float(e[k]) - brute) < 1e-12
    np.testing.assert_allclose(elementary(x, 2)[0].numpy(), e[:3].numpy())  # a lower top cuts the orders


@pytest.mark.parametrize("n", [4, 7])  # 7 > FREE_ORDERS: the closed-form geometric tail is in play
def test_kernel_cross_covariance_and_prior_variance_are_the_parity_prior(n):
    est = GaussianProcessEstimator()
    est.n = n
    rng = np.random.default_rng(n)
    free = min(5, n)
    params = torch.tensor(rng.normal(scale=0.7, size=free + 1 + n), dtype=torch.float64)
    w, theta = est._prior(params)
    z = bits(n)  # [2^n, n]
    s = 2.0 * z - 1
    subsets = [c for k in range(n + 1) for c in combinations(range(n), k)]
    chi = np.stack([s[:, list(c)].prod(1) if c else np.ones(2**n) for c in subsets], axis=1)  # [2^n, 2^n] parities
    var = np.array([float(w[len(c)]) * float(np.prod(theta.numpy()[list(c)])) for c in subsets])  # prior of f_T
    share = np.array([[2.0 / len(c) if i in c and len(c) % 2 else 0.0 for c in subsets] for i in range(n)])  # φ = M f
    st = torch.as_tensor(s)
    np.testing.assert_allclose(est.kernel(params, st, st).numpy(), chi @ np.diag(var) @ chi.T, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(est.cross(st, w, theta).numpy(), chi @ np.diag(var) @ share.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.prior_variance(w, theta).numpy(), (share ** 2) @ var, rtol=1e-9)


def test_parities_have_the_shapley_values_the_prior_assumes():
    n = 5
    s = 2 * bits(n) - 1
    exact = run(ValueTable(n, s[:, 0] * s[:, 1] * s[:, 2]), "exact").scores  # a third-order parity
    np.testing.assert_allclose(exact, [2 / 3, 2 / 3, 2 / 3, 0, 0], atol=1e-12)
    np.testing.assert_allclose(run(ValueTable(n, s[:, 0] * s[:, 1]), "exact").scores, 0, atol=1e-12)


@pytest.mark.slow
def test_interpolates_keeps_efficiency_and_is_deterministic():
    v = planted(10, seed=3, order=3, terms=4)
    a, b = (run(ValueTable(10, v), "gp", budget=200, seed=1) for _ in range(2))
    np.testing.assert_array_equal(a.scores, b.scores)
    assert abs(a.efficiency_gap) < 1e-9
    assert np.all(np.isfinite(a.stderr)) and np.all(a.stderr >= 0)
    est = GaussianProcessEstimator()
    run(ValueTable(10, v), est, budget=200, seed=1)
    assert set(est.fitted) == {"order_weights", "relevance", "sigma2"}  # the GP path ran, not the kadd fallback
    masks, values = est._data()
    assert len(masks) == len(np.unique(masks, axis=0)) <= 200 and values[0] == v[-1] and values[1] == v[0]


@pytest.mark.slow
def test_beats_kadd_and_regression_where_three_and_four_units_interact():
    errs = {m: [] for m in ("regression", "kadd", "gp")}
    for seed in range(4):
        v = planted(10, seed=seed, order=3, terms=3) + planted(10, seed=seed + 10, order=4, terms=2)
        exact = run(ValueTable(10, v), "exact").scores
        for m in errs:
            errs[m].append(rel(run(ValueTable(10, v), m, budget=200, seed=seed).scores, exact))
    means = {m: float(np.mean(e)) for m, e in errs.items()}
    assert means["gp"] < 0.7 * means["kadd"] < 0.7 * means["regression"], means


@pytest.mark.slow
def test_standard_errors_cover_and_shrink_with_budget():
    game = ToyGame(10, seed=5)
    exact = game.shapley()
    hits, spread = [], {}
    for budget in (150, 400):
        rs = [run(game, "gp", budget=budget, seed=seed) for seed in range(12)]
        spread[budget] = float(np.mean([r.stderr.mean() for r in rs]))
        hits += [np.abs(r.scores - exact) <= 2 * r.stderr + 1e-9 for r in rs]
    assert 0.85 <= np.mean(hits) <= 1.0, np.mean(hits)
    assert spread[400] < spread[150]


@pytest.mark.parametrize("n,budget", [(2, 120), (MAX_UNITS + 1, 120), (12, 32)])  # 12 units, 32: 3 sampled pairs
def test_outside_its_range_it_is_kadd(n, budget):
    game = ToyGame(n, seed=1)
    a, b = (run(game, m, budget=budget, seed=3) for m in ("gp", "kadd"))
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.stderr, b.stderr)


def test_enumerated_sizes_alone_are_kadds_exact_answer():
    v = planted(7, seed=4, order=4, terms=3)
    r = run(ValueTable(7, v), "gp", budget=2**7, seed=0)
    np.testing.assert_allclose(r.scores, run(ValueTable(7, v), "exact").scores, atol=1e-9)


def test_shapley_method_uses_it_and_interactions_still_come_from_the_samples(tiny_lm):
    assert METHODS["shapley"] == ("shapley", "shapley")  # estimators/shapley.py: gp for 6 units at 56 masks
    a = explain("the cat sat on the mat", target=" and", model=tiny_lm, budget=56, seed=0, interactions=4)
    b = explain("the cat sat on the mat", target=" and", model=tiny_lm, method="gp", budget=56, seed=0)
    c = explain("the cat sat on the mat", target=" and", model=tiny_lm, method="kadd", budget=56, seed=0)
    assert not np.array_equal(a.scores, c.scores)  # 56 of the 64 masks: the posterior, not kadd's fit
    np.testing.assert_array_equal(a.scores, b.scores)
    assert abs(a.efficiency_gap) < 1e-9
    assert len(a.interactions) == 6  # every pair of the 4 strongest units
    assert a.settings["estimator"] == "gp"


def test_siblings_share_the_prior_so_maps_of_parts_add_up_to_the_map_of_the_whole():
    a, b = planted(9, seed=5, order=3, terms=3), planted(9, seed=6, order=4, terms=2)
    whole = GaussianProcessEstimator()
    total = run(ValueTable(9, a + b), whole, budget=150, seed=2)
    parts = [run(ValueTable(9, v), whole.sibling(), budget=150, seed=2) for v in (a, b)]
    np.testing.assert_allclose(parts[0].scores + parts[1].scores, total.scores, atol=1e-8)
    alone = run(ValueTable(9, a), "gp", budget=150, seed=2)  # its own prior: close, not equal
    assert not np.allclose(alone.scores, parts[0].scores, atol=1e-8)


@pytest.mark.slow
def test_enumerates_the_pairs_of_units_once_they_take_at_most_1_over_1_8_of_the_budget():
    from diffusiongemma.estimators.regression import plan_enumeration

    assert plan_enumeration(10, 256) == [1, 9]
    assert GaussianProcessEstimator().plan(10, 256) == [1, 9, 2, 8]  # 110 masks, 1.8 × 110 ≤ 256
    assert GaussianProcessEstimator().plan(12, 256) == [1, 11]  # 156 masks: 1.8 × 156 > 256
    assert GaussianProcessEstimator().plan(16, 4096) == plan_enumeration(16, 4096)  # beyond MAX_UNITS: kadd's
    est = GaussianProcessEstimator()
    r = run(ValueTable(10, planted(10, seed=1, order=3, terms=3)), est, budget=256, seed=0)
    sizes = np.concatenate([m for m, _ in est.seen]).sum(1)
    assert np.sum(sizes == 2) == 45 and np.sum(sizes == 8) == 45 and r.evaluations <= 256
