"""Pair interactions from the regression samples: planted pairs recovered exactly, round trips, the page."""

import numpy as np
import pytest

from diffusiongemma import run
from diffusiongemma.attribution import Attribution
from diffusiongemma.errors import InputError
from diffusiongemma.units.base import Unit


class Planted:
    """v = w·z + 3·z0·z1 − 2·z2·z3 (a synergy and a redundancy) on 9 units."""

    n = 9
    w = np.array([2.0, 1.5, 3.0, 2.5, 0.1, -0.2, 0.05, 0.3, -0.1])

    def __call__(self, m):
        z = np.atleast_2d(np.asarray(m, float))
        return z @ self.w + 3 * z[:, 0] * z[:, 1] - 2 * z[:, 2] * z[:, 3]


@pytest.mark.parametrize("budget", [100, 300])
def test_planted_pairs_recovered_exactly_from_the_same_samples(budget):
    res = run(Planted(), "regression", budget=budget, seed=1, interactions=4)
    assert res.evaluations <= budget  # no evaluation beyond the estimate's own
    top = {(i, j): v for i, j, v in res.interactions[:2]}
    assert top == pytest.approx({(0, 1): 3.0, (2, 3): -2.0}, abs=1e-8)
    assert all(abs(v) < 1e-8 for _, _, v in res.interactions[2:])  # the other 4 pairs among the top 4


def test_interactions_only_from_the_regression_estimator():
    with pytest.raises(InputError, match="regression"):
        run(Planted(), "paired", budget=200, interactions=4)
    with pytest.raises(InputError, match="shapley"):
        run(Planted(), "regression", schedule="banzhaf", budget=200, interactions=4)


def test_interactions_round_trip_and_show_escaped_in_html(tmp_path):
    units = [Unit(text="<b>a</b>", start=0, end=8, positions=(1,), role="prompt"),
             Unit(text="b", start=9, end=10, positions=(2,), role="prompt")]
    a = Attribution(units=units, scores=np.array([1.0, 2.0]), stderr=np.array([0.1, 0.1]), text="<b>a</b> b",
                    target={"kind": "continuation", "text": "x"}, v_full=3.0, v_empty=0.0, evaluations=4,
                    wall_time=0.1, interactions=[(0, 1, -0.5)])
    b = Attribution.from_json(a.to_json(tmp_path / "a.json"))
    assert b.interactions == [(0, 1, -0.5)]
    html = (a.to_html(tmp_path / "a.html")).read_text()
    assert "Interactions between units" in html and "&lt;b&gt;a&lt;/b&gt;" in html and "<b>a</b>" not in html
