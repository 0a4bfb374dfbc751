"""Exact enumeration against hand-computed Shapley and Banzhaf values."""

import math

import numpy as np
import pytest

from diffusiongemma import run
from diffusiongemma.estimators.exact import all_masks, semivalues_from_table
from diffusiongemma.schedules import Beta, Fixed, Uniform, schedule_from_name


class Glove:
    """Glove game: players 0 and 1 hold a left glove, player 2 a right glove; v = number of pairs."""

    n = 3

    def __call__(self, masks):
        m = np.asarray(masks)
        return np.minimum(m[:, 0] + m[:, 1], m[:, 2]).astype(float)


def test_glove_game_shapley_by_hand():
    r = run(Glove(), "exact")
    np.testing.assert_allclose(r.scores, [1 / 6, 1 / 6, 2 / 3], atol=1e-12)
    assert r.efficiency_gap == pytest.approx(0, abs=1e-12)
    assert r.evaluations == 8 and r.stopped == "done"
    np.testing.assert_array_equal(r.stderr, 0)


def test_glove_game_banzhaf_by_hand():
    # Banzhaf of player 0: P(player 2 in, player 1 out) = 1/4; of player 2: P(0 or 1 in) = 3/4
    r = run(Glove(), "exact", schedule="banzhaf")
    np.testing.assert_allclose(r.scores, [0.25, 0.25, 0.75], atol=1e-12)


def test_interaction_game_closed_form(toy_game):
    r = run(toy_game, "exact")
    np.testing.assert_allclose(r.scores, toy_game.shapley(), atol=1e-10)
    assert toy_game.calls == 2**8


def test_banzhaf_of_product_is_half():
    class Product:
        n = 2

        def __call__(self, m):
            m = np.asarray(m)
            return (m[:, 0] * m[:, 1] * 4.0)

    np.testing.assert_allclose(run(Product(), "exact", schedule="banzhaf").scores, [2.0, 2.0])
    np.testing.assert_allclose(run(Product(), "exact", schedule="fixed:0.25").scores, [3.0, 3.0])  # keep w.p. 3/4


@pytest.mark.parametrize("schedule", [Uniform(), Fixed(0.5), Fixed(0.2), Beta(2, 3), Beta(0.5, 0.5)])
def test_coalition_weights_are_a_distribution(schedule):
    n = 7
    total = sum(math.comb(n - 1, s) * schedule.coalition_weight(s, n) for s in range(n))
    assert total == pytest.approx(1.0)


def test_beta_one_one_is_shapley(toy_game):
    table = toy_game(all_masks(8))
    np.testing.assert_allclose(semivalues_from_table(table, 8, Beta(1, 1)), semivalues_from_table(table, 8, Uniform()))


def test_exact_refuses_too_many_units():
    class Big:
        n = 17

        def __call__(self, m):
            return np.zeros(len(m))

    from diffusiongemma.errors import InputError

    with pytest.raises(InputError, match="limited to 16"):
        run(Big(), "exact")


def test_bad_schedule_names():
    from diffusiongemma.errors import InputError

    for bad in ["uniformish", "beta:1", "fixed:2", "beta:-1,2"]:
        with pytest.raises(InputError):
            schedule_from_name(bad)
