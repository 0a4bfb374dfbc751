"""The third-order regression estimator (``kadd``; the fallback of the default ``gp`` for up to 14 units):
exact on full enumeration whatever the game's order, better than KernelSHAP where three units interact,
identical to it where pair terms cannot matter or triples are unaffordable."""

from itertools import combinations

import numpy as np

from diffusiongemma import explain, run
from diffusiongemma.estimators.exact import ValueTable
from diffusiongemma.estimators.kadd import MAX_UNITS, ThirdOrderEstimator
from diffusiongemma.estimators.regression import RegressionEstimator


def bits(n: int) -> np.ndarray:
    return (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # [2^n, n], row r = the mask of r's bits


def planted(n: int, seed: int, order: int, terms: int) -> np.ndarray:
    """Value table of a linear game plus ``terms`` random ``order``-way AND terms."""
    rng = np.random.default_rng(seed)
    z = bits(n)
    v = z @ rng.normal(size=n)
    for _ in range(terms):
        v = v + 2 * rng.normal() * z[:, rng.choice(n, order, replace=False)].prod(1)
    return v


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_exact_when_every_mask_is_enumerated_even_with_four_and_five_way_terms():
    v = planted(7, seed=1, order=4, terms=3) + planted(7, seed=2, order=5, terms=2)
    exact = run(ValueTable(7, v), "exact").scores
    r = run(ValueTable(7, v), "kadd", budget=2**7, seed=0)
    np.testing.assert_allclose(r.scores, exact, atol=1e-9)
    np.testing.assert_array_equal(r.stderr, 0)


def test_beats_kernelshap_on_planted_three_way_interactions():
    errs = {m: [] for m in ("regression", "kadd")}
    for seed in range(4):
        v = planted(10, seed=seed, order=3, terms=8)
        exact = run(ValueTable(10, v), "exact").scores
        for m in errs:
            errs[m] += [rel(run(ValueTable(10, v), m, budget=256, seed=s).scores, exact) for s in range(5)]
    assert np.mean(errs["kadd"]) < 0.8 * np.mean(errs["regression"]), {m: np.mean(e) for m, e in errs.items()}


def test_pair_terms_alone_change_nothing_under_paired_sampling():
    """Why the estimator needs triples: refitting KernelSHAP's complement-paired samples with every pair term
    gives the same Shapley values to rounding (paired KernelSHAP is already exact for pairwise games)."""

    class PairsOnly(RegressionEstimator):
        def width(self, n, budget):
            self.ij = np.array(list(combinations(range(n), 2)))  # [q, 2]
            return n + len(self.ij)

        def features(self, z):
            return np.concatenate([z, z[:, self.ij[:, 0]] * z[:, self.ij[:, 1]]], axis=1)

        def scores(self, coef):
            split = np.zeros((len(self.ij), self.n))
            np.put_along_axis(split, self.ij, 0.5, axis=1)
            return coef[..., : self.n] + coef[..., self.n:] @ split

    v = planted(10, seed=0, order=3, terms=8)
    a = run(ValueTable(10, v), PairsOnly(), budget=256, seed=3).scores
    b = run(ValueTable(10, v), "regression", budget=256, seed=3).scores
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert rel(b, run(ValueTable(10, v), "exact").scores) > 0.01  # not exact: the triples are what is left


def test_is_kernelshap_beyond_max_units_and_below_three():
    for n in (2, MAX_UNITS + 1):
        v = planted(n, seed=0, order=min(n, 3), terms=4)
        a, b = (run(ValueTable(n, v), m, budget=300, seed=5) for m in ("kadd", "regression"))
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.stderr, b.stderr)


def test_ridge_fades_with_evaluations():
    est = ThirdOrderEstimator()
    v = planted(8, seed=0, order=3, terms=4)
    run(ValueTable(8, v), est, budget=128, seed=0)
    A = np.eye(est.p)
    small = est.penalty(A)
    est.evaluated *= 4
    assert np.all(small[: 8 + 28] == 0) and np.all(small[8 + 28:] > 0)  # only the 56 triples are shrunk
    np.testing.assert_allclose(est.penalty(A)[8 + 28:], small[8 + 28:] / 4)


def test_interactions_still_come_from_the_samples(tiny_lm):
    a = explain("the cat sat on the mat", target=" and", model=tiny_lm, method="kadd", budget=96, seed=0,
                interactions=4)
    assert abs(a.efficiency_gap) < 1e-6
    assert len(a.interactions) == 6  # every pair of the 4 strongest units
