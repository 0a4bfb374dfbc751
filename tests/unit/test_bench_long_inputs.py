"""bench/long_inputs.py: the paired comparison against each peer, and SVS refusing a budget below one permutation."""

from __future__ import annotations

import numpy as np
import pytest

from bench.long_inputs import paired_table, svs_within_budget

OURS = "ours (default shapley)"


def _row(method, budget, prompt, lds, drop=1.0):
    return {"kind": "roleplay", "method": method, "budget": budget, "prompt": prompt, "lds": lds, "drop_5": drop}


def test_pairs_by_prompt_and_budget_with_a_t_interval_of_the_differences():
    diffs = [0.1, 0.2, 0.3, 0.0]
    rows = [_row(OURS, 32, p, 0.5 + d) for p, d in enumerate(diffs)] + [_row("peer", 32, p, 0.5) for p in range(4)]
    rows += [_row(OURS, 64, 0, 0.9), _row("peer", 64, 0, 0.95)]  # one prompt at 64: no interval
    rows += [_row("peer", 128, 0, 0.1)]  # ours did not run at 128: no pair, no line
    rows += [{"kind": "roleplay", "method": "peer", "budget": 32, "prompt": 9, "error": "too small"}]
    lines = paired_table(rows).splitlines()
    half = 3.182 * np.std(diffs, ddof=1) / 2  # t(0.975, 3) · s / √4
    assert f"| peer | 32 | 4 | 0.650 | 0.500 | 4 of 4 | +0.150 [{0.15 - half:+.3f}, {0.15 + half:+.3f}] " \
           "| +0.000 [+0.000, +0.000] |" in lines
    assert "| peer | 64 | 1 | 0.900 | 0.950 | 0 of 1 | -0.050 | +0.000 |" in lines
    assert not [ln for ln in lines if ln.startswith("| peer | 128")]
    assert "| peer | 32 | did not run on 1 | | | | too small | |" in lines  # said, not dropped


def test_a_peer_that_never_ran_at_a_budget_gets_a_line_saying_why():
    rows = [_row(OURS, 32, 0, 0.5), _row("peer", 64, 0, 0.4), _row(OURS, 64, 0, 0.5)]
    rows += [{"kind": "roleplay", "method": "peer", "budget": 32, "prompt": p, "error": "needs n + 1"} for p in (0, 1)]
    assert "| peer | 32 | none (did not run on 2) | | | | needs n + 1 | |" in paired_table(rows).splitlines()


def test_leave_one_out_is_paired_with_ours_at_the_largest_budget():
    rows = [_row(OURS, 32, 0, 0.1), _row(OURS, 128, 0, 0.7, drop=3.0), _row("leave-one-out", "n + 1", 0, 0.5)]
    assert "| leave-one-out | n + 1 | 1 | 0.700 | 0.500 | 1 of 1 | +0.200 | +2.000 |" in paired_table(rows)


def test_svs_does_not_overspend_a_budget_below_one_permutation():
    class Game:
        n = 40

        def __call__(self, masks):
            return np.atleast_2d(masks).sum(axis=1).astype(float)

    with pytest.raises(ValueError, match="n \\+ 1 = 41"):
        svs_within_budget(Game(), 32, 0)


def test_runs_of_one_draw_merge_and_runs_of_another_do_not(tmp_path):
    import json

    from bench.long_inputs import merged_rows

    a = [dict(_row(OURS, 32, 0, 0.5), name="t0"), dict(_row("peer", 32, 0, 0.4), name="t0")]
    b = {"rows": [dict(_row(OURS, 32, 0, 0.5), name="t0"), dict(_row(OURS, 32, 1, 0.7), name="t1")]}
    (tmp_path / "a.json").write_text(json.dumps(a))  # a stopped run's partial rows (a list)
    (tmp_path / "b.json").write_text(json.dumps(b))  # a finished run's payload
    rows = merged_rows([tmp_path / "a.json", tmp_path / "b.json"])
    assert sorted((r["prompt"], r["method"]) for r in rows) == [(0, OURS), (0, "peer"), (1, OURS)]
    b["rows"][0]["lds"] = 0.6  # the same prompt, method and budget with other figures: another draw or code
    (tmp_path / "b.json").write_text(json.dumps(b))
    with pytest.raises(SystemExit, match="differs"):
        merged_rows([tmp_path / "a.json", tmp_path / "b.json"])
