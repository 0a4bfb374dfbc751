"""bench/paired.py: the exact McNemar test and the pairing of B8 runs by (seed, context), against known answers."""

from __future__ import annotations

from bench.paired import OURS, mcnemar, paired_top1


def test_mcnemar_is_the_two_sided_binomial_test_of_the_discordant_pairs():
    assert mcnemar(8, 1) == 2 * (1 + 9) / 2**9  # P(X <= 1) of Binomial(9, 1/2), doubled
    assert mcnemar(1, 8) == mcnemar(8, 1) and mcnemar(4, 1) == 0.375
    assert mcnemar(3, 3) == 1.0 and mcnemar(0, 0) == 1.0 and mcnemar(10, 0) == 2 / 2**10


def _row(context, method, top1, tokens=900, budget=16, n=20):
    return {"context": context, "method": method, "top1": top1, "tokens": tokens, "budget": budget, "n": n}


def test_runs_pair_by_seed_and_context_and_filter_by_budget_and_length():
    seed0 = {"seed": 0, "rows": [_row(0, OURS, True), _row(0, "peer", False), _row(1, OURS, True, tokens=1200),
                                 _row(1, "peer", True, tokens=1200), _row(0, "peer", True, budget=32)]}
    seed0_peer_apart = {"seed": 0, "rows": [_row(0, "other", True), _row(1, "other", False, tokens=1200)]}
    seed1 = {"seed": 1, "rows": [_row(0, OURS, False, tokens=1300), _row(0, "peer", True, tokens=1300)]}
    other_draw = {"seed": 0, "rows": [_row(0, "peer", False, tokens=300, n=8)]}  # --only docs=2: context 0 is another
    s = paired_top1([seed0, seed0_peer_apart, seed1, other_draw], 16)
    assert s["peer"] == {"contexts": 3, "ours": 2, "peer": 2, "only_ours": 1, "only_peer": 1, "p": 1.0}
    assert (s["other"]["contexts"], s["other"]["only_ours"], s["other"]["only_peer"]) == (2, 1, 0)
    long = paired_top1([seed0, seed0_peer_apart, seed1], 16, min_tokens=1000)["peer"]
    assert (long["contexts"], long["only_ours"], long["only_peer"]) == (2, 0, 1)
