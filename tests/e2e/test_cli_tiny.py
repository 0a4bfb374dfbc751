"""The command line's component paths on the tiny random Gemma, in this process (fast lane): position-restricted
heads, MLP neuron groups, the resample baseline, a direction projection as the target, the backup search; and the
targets registry."""

from __future__ import annotations

from diffusiongemma import Attribution


def test_targets_lists_the_registry(run_cli):
    code, _, out = run_cli(["targets"])
    assert code == 0
    for name in ("continuation", "contrast", "next_token", "greedy", "callable"):
        assert name in out


def test_components_at_positions_resampled_against_a_direction_projection(tiny_dir, tmp_path, run_cli):
    """One call through every new CLI path: position-restricted heads, MLP neuron groups, the resample
    baseline from a counterfactual, and the direction projection as the target; exact Shapley is efficient."""
    import torch

    from diffusiongemma.refusal.direction import RefusalDirection

    path = RefusalDirection(torch.linspace(-1, 1, 64), layer=1, position=-1).save(tmp_path / "r.safetensors")
    code, err, out = run_cli(["explain", "The quick brown fox jumps over the lazy", "--model", str(tiny_dir),
                              "--units", "heads@last+neurons:0/32", "--baseline", "resample", "--counterfactual",
                              "The quick brown cat jumps over the lazy", "--target-direction", str(path),
                              "--method", "exact", "--backups", "2", "--json", str(tmp_path / "c.json")])
    assert code == 0, err
    a = Attribution.from_json(tmp_path / "c.json")
    assert [u.text for u in a.units][:2] == ["L0.H0@last", "L0.H1@last"] and a.units[-1].text == "L0.N96-127"
    assert a.target["kind"] == "projection" and a.target["layer"] == 1 and a.settings["baseline"] == "resample"
    assert abs(a.efficiency_gap) < 1e-6 and a.evaluations == 2 ** 12 and abs(a.v_full - a.v_empty) > 1e-4
    # the backup search: 14 single runs, then the two candidates' pairs (11 + 10), each figure a model run
    assert len(a.backups.candidates) == 2 and a.backups.evaluations == 14 + 11 + 10 and "backups (35 model runs" in out
    assert len(a.backups.singles) == 12 and all(abs(p.drop_both) < float("inf") for p in a.backups.pairs)
    code, err, _ = run_cli(["explain", "x", "--model", str(tiny_dir), "--units", "mlps", "--baseline", "resample"])
    assert code == 2 and "counterfactual" in err
