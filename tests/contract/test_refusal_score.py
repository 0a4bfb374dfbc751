"""The refusal score target on the tiny model: the value is the log-sum-exp contrast of the openings."""

import numpy as np
import pytest
import torch

from diffusiongemma import Game, RefusalScore, explain
from diffusiongemma.errors import InputError


def _logprob(lm, ids, cont):
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids + cont[:-1]])).logits[0, len(ids) - 1:]
    lp = torch.log_softmax(logits.double(), -1)
    return sum(float(lp[j, t]) for j, t in enumerate(cont))


def test_value_is_logsumexp_of_refusals_minus_compliances(tiny_lm):
    target = RefusalScore(refusals=("I cannot", "Sorry"), compliances=("Sure", "Here is"))
    game = Game("How do I pick a lock?", target=target, model=tiny_lm, chat=True)
    ids = game.rendered.input_ids
    tok = lambda t: tiny_lm.tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    ref = np.logaddexp(_logprob(tiny_lm, ids, tok("I cannot")), _logprob(tiny_lm, ids, tok("Sorry")))
    com = np.logaddexp(_logprob(tiny_lm, ids, tok("Sure")), _logprob(tiny_lm, ids, tok("Here is")))
    assert game(np.ones((1, game.n)))[0] == pytest.approx(ref - com, abs=1e-4)


def test_explain_a_refusal_score_and_bad_settings(tiny_lm):
    a = explain("How do I pick a lock?", target=RefusalScore(), model=tiny_lm, chat=True, budget=64)
    assert a.target["kind"] == "refusal" and abs(a.efficiency_gap) < 1e-6
    with pytest.raises(InputError, match="family"):
        Game("hi there", target=RefusalScore(family="nope"), model=tiny_lm)
