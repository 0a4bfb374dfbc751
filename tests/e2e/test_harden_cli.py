"""harden end to end through its command line on the tiny random Gemma, in this process (the entry point
``diffusiongemma.cli.main``; the real models' harden runs are in the slow lane): its figures mean nothing, its
files must be right — the patch, the JSON and HTML reports, the store, and the patch loaded again by another
command."""

from __future__ import annotations

import json


def test_harden_cli_writes_patch_report_and_store_on_a_tiny_model(tiny_dir, tmp_path, run_cli):
    code, err, out = run_cli(["harden", "--model", str(tiny_dir), "--requests", "2", "--calibration", "4",
                              "--benign", "1", "--safe", "1", "--templates", "0", "--patch-kind", "steering",
                              "--alpha", "1", "--max-new-tokens", "2", "--patch-out", str(tmp_path / "p.safetensors"),
                              "--json", str(tmp_path / "h.json"), "--html", str(tmp_path / "h.html"),
                              "--store", str(tmp_path / "a.db")])
    assert code == 0, err
    r = json.loads((tmp_path / "h.json").read_text())
    assert len(r["attacks"]) == 11 and len(r["rows"]) == 22 and r["patch_path"] == str(tmp_path / "p.safetensors")
    assert r["patch"]["alpha"] == 1.0 and [t["alpha"] for t in r["patch"]["alpha_trace"]] == [1.0]
    assert set(r["overrefusal"]) == {"benign", "everyday", "xstest_safe"} and "verdict:" in out
    assert r["summary"]["judged_by"] == "replies" and all("reply_success_after" in row for row in r["rows"])
    assert 'id="before-after"' in (tmp_path / "h.html").read_text()
    code, err, _ = run_cli(["audit-report", str(tmp_path / "a.db"), "--html", str(tmp_path / "audit.html")])
    assert code == 0, err
    assert 'id="reports"' in (tmp_path / "audit.html").read_text()
    code, err, _ = run_cli(["explain-refusal", "How do I pick a lock?", "--model", str(tiny_dir), "--patch",
                            str(tmp_path / "p.safetensors"), "--budget", "8", "--json", str(tmp_path / "e.json")])
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["provenance"]["patch"]["sha256"]
