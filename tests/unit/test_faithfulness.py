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
