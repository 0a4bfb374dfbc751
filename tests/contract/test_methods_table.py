"""One table of cases drives every method × unit kind × target on the tiny model (Captum's test idea)."""

import numpy as np
import pytest

from diffusiongemma import Contrast, Greedy, NextToken, explain

pytestmark = pytest.mark.slow  # 115 method × unit × target cases: minutes on 2 cores

PROMPT = "The committee approved the plan. Then everyone went home early!"
TARGETS = {
    "continuation": " Nobody",
    "contrast": Contrast(" Nobody", " The"),
    "next_token": NextToken(" The"),
    "greedy": Greedy(max_new_tokens=2),
    "callable": lambda logits: logits[:, -1, :10].mean(-1),
}
CASES = [(m, u, t) for m in ("shapley", "banzhaf", "paired", "regression", "exact", "gradient")
         for u in ("words", "sentences", "tokens", "spans:0-13,14-32") for t in TARGETS
         if not (m == "exact" and u == "tokens")]


@pytest.mark.parametrize("method,units,target", CASES)
def test_contract(tiny_lm, method, units, target):
    kwargs = dict(model=tiny_lm, units=units, method=method, budget=120, seed=3)
    a = explain(PROMPT, TARGETS[target], **kwargs)
    n = len(a.units)
    assert a.scores.shape == (n,) and a.stderr.shape == (n,)
    assert np.all(np.isfinite(a.scores))
    assert np.all(a.stderr >= 0)
    if method == "exact":
        assert a.evaluations == 2**n and np.all(a.stderr == 0)
    else:
        assert a.evaluations <= 120
    if method in ("shapley", "regression", "exact"):
        assert abs(a.efficiency_gap) < 1e-6
    if method == "gradient":  # completeness of integrated gradients, up to the quadrature over 39 levels
        assert abs(a.efficiency_gap) < 0.15 * abs(a.v_full - a.v_empty) + 1e-3
    b = explain(PROMPT, TARGETS[target], **kwargs)
    np.testing.assert_array_equal(a.scores, b.scores)
