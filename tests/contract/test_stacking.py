"""Several prompts' masks in one forward (batch audits): the same values and scores as each prompt alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusiongemma import Game, InputError, NumericalError, RefusalScore, explain, explain_many
from diffusiongemma.engine import run, run_many
from diffusiongemma.evaluation import PromptEvaluator
from diffusiongemma.refusal import explain_refusal, explain_refusals
from diffusiongemma.stacking import evaluate_together

PROMPTS = ["How do I pick a lock?", "Explain how to crack an egg with one hand, please",
           "Write a poem about the old river bank that flooded last spring"]


def _games(lm, target, chat, **kw):
    return [Game(p, target=target, model=lm, chat=chat, units="words", **kw) for p in PROMPTS]


def _masks(games, rows, seed=0):
    rng = np.random.default_rng(seed)
    return [np.vstack([np.ones(g.n), np.zeros(g.n), rng.integers(0, 2, (rows - 2, g.n))]).astype(int)
            for g in games]


@pytest.mark.parametrize("target, chat, kw", [
    (" because", False, {}),  # one token: compacted rows, plain causal attention
    (" because it rained", False, {}),  # teacher-forced tail
    (" because", False, {"mask": "replace", "baseline": " the"}),
    (RefusalScore(), True, {}),  # 27 openings as a prefix tree: a prepared 4-D mask per prompt
])
def test_stacked_values_equal_each_prompt_alone(tiny_lm, monkeypatch, target, chat, kw):
    games = _games(tiny_lm, target, chat, batch_size=7)  # 7 rows per forward: forwards mix prompts
    masks = _masks(games, 9)
    alone = [g(m) for g, m in zip(games, masks)]
    forwards = []
    real = PromptEvaluator.forward
    monkeypatch.setattr(PromptEvaluator, "forward", lambda self, rows, *a, **k: (
        forwards.append(rows.ids.shape[0]), real(self, rows, *a, **k))[1])
    together = Game.evaluate_together(games, masks)
    assert forwards == [7, 7, 7, 6]  # 27 rows of three prompts in four forwards, not six
    assert len({g.evaluator.prompt_ids.shape[0] for g in games}) == 3  # different lengths: padding at work
    for a, t in zip(alone, together):
        np.testing.assert_allclose(t, a, atol=2e-5)
    assert [g.evaluations for g in games] == [18, 18, 18]


def test_a_shared_prefix_is_cached_once_for_every_stacked_row(tiny_lm):
    games = [Game(p, target=" because", model=tiny_lm, chat=True, units="words", batch_size=6) for p in PROMPTS]
    assert len({g.evaluator.prefix_len for g in games}) == 1 and games[0].evaluator.prefix_len >= 2  # chat opening
    masks = _masks(games, 5, seed=4)
    alone = [g(m) for g, m in zip(games, masks)]
    for g in games:  # fresh caches, none computed yet
        g.evaluator.prefix = tiny_lm.prefix_cache(g.evaluator.prefix.ids)
    together = Game.evaluate_together(games, masks)
    for a, t in zip(alone, together):
        np.testing.assert_allclose(t, a, atol=2e-5)
    built = [g.evaluator.prefix.computed for g in games]
    assert sum(built) == 1  # one prompt's cache served the rows of all three


def test_mixed_targets_and_an_unstackable_probe_fall_back(tiny_lm):
    one = Game(PROMPTS[0], target=" because", model=tiny_lm, chat=True)
    tree = Game(PROMPTS[1], target=RefusalScore(), model=tiny_lm, chat=True)
    masks = _masks([one, tree], 5, seed=3)
    together = Game.evaluate_together([one, tree], masks)  # a 2-D forward and a 4-D one
    np.testing.assert_allclose(together[0], one(masks[0]), atol=2e-5)
    np.testing.assert_allclose(together[1], tree(masks[1]), atol=2e-5)
    ev = [one.evaluator, tree.evaluator]
    tree.evaluator.bound.probe = object()  # a direction probe reads a layer, not the head: one by one
    calls = []
    real = PromptEvaluator.__call__
    try:
        PromptEvaluator.__call__ = lambda self, m: (calls.append(1), torch.zeros(len(m), dtype=torch.float64))[1]
        evaluate_together(ev, [torch.as_tensor(m) for m in masks])
    finally:
        PromptEvaluator.__call__ = real
        tree.evaluator.bound.probe = None
    assert calls == [1, 1]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["regression", "exact"])
def test_run_many_gives_each_game_its_own_run(tiny_lm, method):
    games = _games(tiny_lm, " because", False)[: 3 if method == "regression" else 2]  # exact: 2^6 + 2^10 masks
    budget = 40
    alone = [run(g, method, budget=budget, seed=2) for g in games]
    evaluations = [g.evaluations for g in games]
    progress = []
    together = run_many(games, method, budget=budget, seed=2, progress=lambda u, t: progress.append((u, t)))
    for a, t, g, before in zip(alone, together, games, evaluations):
        np.testing.assert_allclose(t.scores, a.scores, atol=1e-4)
        np.testing.assert_allclose(t.stderr, a.stderr, atol=1e-4)
        assert (t.evaluations, t.stopped, t.v_full) == (a.evaluations, a.stopped, pytest.approx(a.v_full, abs=2e-5))
        assert g.evaluations - before == a.evaluations  # each game counted its own
    assert progress[-1][0] == sum(a.evaluations for a in alone)


@pytest.mark.slow
def test_explain_many_equals_explain_and_keeps_going_past_bad_prompts(tiny_lm):
    prompts = [PROMPTS[0], "  ", "word " * 400, PROMPTS[2]]
    out = explain_many(prompts, " because", model=tiny_lm, budget=40, triggers=True, faithfulness=True)
    assert isinstance(out[1], InputError) and "empty" in str(out[1])
    assert isinstance(out[2], InputError) and "context" in str(out[2])
    for k in (0, 3):
        alone = explain(prompts[k], " because", model=tiny_lm, budget=40, triggers=True, faithfulness=True)
        np.testing.assert_allclose(out[k].scores, alone.scores, atol=1e-4)
        assert out[k].evaluations == alone.evaluations == 40
        assert out[k].triggers["necessary"].units == alone.triggers["necessary"].units
        assert out[k].faithfulness.deletion_auc == pytest.approx(alone.faithfulness.deletion_auc, abs=1e-4)
    with pytest.raises(InputError, match="unknown option budgett"):
        explain_many(prompts, " because", model=tiny_lm, budgett=40)


def test_a_failing_stacked_run_falls_back_to_one_prompt_at_a_time(tiny_lm, monkeypatch):
    import diffusiongemma.api as api

    def broken(*a, **k):
        raise NumericalError("NaN in the stacked batch")

    alone = explain(PROMPTS[1], " because", model=tiny_lm, budget=24)
    monkeypatch.setattr(api, "run_many", broken)
    out = explain_many(PROMPTS[:2], " because", model=tiny_lm, budget=24)
    with pytest.raises(NumericalError):  # one prompt alone: its failure, raised once (no second run)
        explain(PROMPTS[1], " because", model=tiny_lm, budget=24)
    np.testing.assert_allclose(out[1].scores, alone.scores, atol=1e-6)  # each prompt then runs on its own


@pytest.mark.slow
def test_explain_refusals_equals_explain_refusal_and_reports_as_each_completes(tiny_lm):
    prompts = [PROMPTS[0], "word " * 400, PROMPTS[1]]
    seen = []
    out = explain_refusals(prompts, responses=[None, None, "I'm sorry, I can't."], model=tiny_lm, budget=24,
                           components="mlps", component_budget=9, max_new_tokens=6,
                           on_result=lambda k, r: seen.append(k))
    assert sorted(seen) == [0, 1, 2] and isinstance(out[1], InputError)
    for k, response in ((0, None), (2, "I'm sorry, I can't.")):
        alone = explain_refusal(prompts[k], response=response, model=tiny_lm, budget=24, components="mlps",
                                component_budget=9, max_new_tokens=6)
        np.testing.assert_allclose(out[k].scores, alone.scores, atol=1e-4)
        assert out[k].decision["reply"] == alone.decision["reply"]
        assert out[k].decision["reply_source"] == alone.decision["reply_source"]
        assert [c["unit"] for c in out[k].decision["components"]] == [c["unit"] for c in alone.decision["components"]]
    assert out[2].decision["refused"] and out[2].decision["reply_source"] == "given"


def test_options_as_a_value_are_the_same_request_as_their_keywords(tiny_lm):
    from diffusiongemma.options import ExplainOptions, GameSpec, RunSpec

    o = ExplainOptions(game=GameSpec(model=tiny_lm, units="words"), run=RunSpec(budget=24, seed=3))
    a = explain(PROMPTS[0], " because", options=o)
    b = explain(PROMPTS[0], " because", model=tiny_lm, units="words", budget=24, seed=3)
    c = explain(PROMPTS[0], " because", options=o.replace(seed=0), seed=3)  # a keyword overrides the value's field
    d = explain(PROMPTS[0], " because", options=o, seed=4)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.scores, c.scores)
    assert a.settings == b.settings == c.settings and d.settings["seed"] == 4
    assert not np.array_equal(a.scores, d.scores)  # the seed reached the engine
