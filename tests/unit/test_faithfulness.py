"""Deletion/insertion curves and ERASER scores against closed forms."""

import numpy as np
import pytest

from diffusiongemma.errors import InputError
from diffusiongemma.faithfulness import faithfulness


class Additive:
    def __init__(self, w):
        self.w, self.n, self.calls = np.asarray(w, float), len(w), 0

    def __call__(self, m):
        self.calls += len(m)
        return np.asarray(m, float) @ self.w + 5.0  # offset: normalisation must remove it


def test_additive_game_curves_in_closed_form():
    w = np.array([1.0, 4.0, 0.0, 3.0, 2.0])  # total 10; order by score: 1, 3, 4, 0, 2
    g = Additive(w)
    f = faithfulness(g, w)
    np.testing.assert_allclose(f.fractions, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(f.deletion, [1.0, 0.6, 0.3, 0.1, 0.0, 0.0])
    np.testing.assert_allclose(f.insertion, [0.0, 0.4, 0.7, 0.9, 1.0, 1.0])
    assert f.deletion_auc == pytest.approx(0.2 * (0.8 + 0.45 + 0.2 + 0.05 + 0.0))
    assert f.insertion_auc == pytest.approx(1 - f.deletion_auc)  # additive: the curves mirror each other
    # top ⌈q·n⌉ units: 1, 1 and 3 of 5
    assert f.comprehensiveness == {"10%": pytest.approx(0.4), "20%": pytest.approx(0.4), "50%": pytest.approx(0.9)}
    assert f.sufficiency == {"10%": pytest.approx(0.6), "20%": pytest.approx(0.6), "50%": pytest.approx(0.1)}
    assert f.evaluations == g.calls


def test_the_true_map_beats_a_reversed_one():
    w = np.random.default_rng(0).normal(size=12)
    g = Additive(w)
    good, bad = faithfulness(g, w), faithfulness(g, -w)
    assert good.deletion_auc < bad.deletion_auc and good.insertion_auc > bad.insertion_auc


def test_flat_target_and_shape_errors():
    with pytest.raises(InputError, match="does not change"):
        faithfulness(Additive(np.zeros(3)), np.ones(3))
    with pytest.raises(InputError, match="shape"):
        faithfulness(Additive(np.ones(3)), np.ones(4))


class _Planted:
    """Decision v > 0 driven by planted triggers among 10 units: (2 AND 5) OR 7, plus small noise terms."""

    n = 10

    def __init__(self):
        self.calls = 0

    def __call__(self, m):
        m = np.atleast_2d(np.asarray(m, float))
        self.calls += len(m)
        fire = np.maximum(m[:, 2] * m[:, 5], m[:, 7])
        return 4 * fire - 2 + 0.1 * m[:, 0] - 0.1 * m[:, 9]


def test_trigger_sets_found_on_planted_causes():
    from diffusiongemma.faithfulness import minimal_trigger_set

    scores = np.array([0.1, 0, 0.7, 0, 0, 0.7, 0, 1.3, 0, -0.1])  # the Shapley values of the game, roughly
    game = _Planted()
    nec = minimal_trigger_set(game, scores, kind="necessary")
    assert nec.masked and not nec.confirmed and nec.state == "masked only"  # no text here: found, not confirmed
    assert sorted(nec.units) in ([2, 7], [5, 7])  # both routes to the decision must go
    assert nec.value_after < 0 < nec.value_clean and nec.evaluations == game.calls
    suf = minimal_trigger_set(game, scores, kind="sufficient")
    assert suf.masked and suf.units == [7] and suf.value_after > 0
    # a misleading map (the triggers ranked last) still finds a set within the pool, or says it did not
    blind = minimal_trigger_set(_Planted(), -scores, kind="necessary", pool=3, beam=1)
    assert not blind.masked and blind.state == "not found" and blind.value_after > 0


def test_trigger_set_trivial_and_bad_kind():
    from diffusiongemma.errors import InputError
    from diffusiongemma.faithfulness import minimal_trigger_set

    class Always:
        n = 3

        def __call__(self, m):
            return np.full(len(np.atleast_2d(m)), 1.0)

    assert minimal_trigger_set(Always(), np.zeros(3), kind="sufficient").units == []
    assert not minimal_trigger_set(Always(), np.zeros(3), kind="necessary").masked
    with pytest.raises(InputError, match="kind"):
        minimal_trigger_set(Always(), np.zeros(3), kind="both")
