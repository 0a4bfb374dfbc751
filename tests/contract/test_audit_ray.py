"""The Ray backend on a local 2-worker cluster gives the same records as the single-process audit."""

from __future__ import annotations

import json

import pytest

from diffusiongemma.audit.ray_backend import run_audit_ray
from diffusiongemma.audit.runner import AuditSettings, run_audit
from diffusiongemma.audit.store import AuditStore

pytestmark = pytest.mark.slow  # Ray's start-up alone takes a minute

ray = pytest.importorskip("ray")
SETTINGS = AuditSettings(budget=8, components="mlps", component_budget=9, triggers=True, faithfulness=False,
                         max_new_tokens=4)
VOLATILE = ("seconds", "finished_at", "result")


def _same(a, b, path=""):
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-5), path
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    else:
        assert a == b, path


@pytest.mark.parametrize("group", [None, 3])  # one item per call (CPU workers), groups (GPU workers)
def test_ray_and_single_process_audits_give_equal_records(tiny_lm, tiny_dir, tmp_path, group):
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join([json.dumps({"prompt": f"Tell me about topic {i} please"}) for i in range(5)]
                             + ["{broken", json.dumps({"prompt": "Hi", "response": "I'm sorry, I can't."})]) + "\n")
    local = AuditStore(tmp_path / "local.db")
    run_audit(log, local, tiny_lm, SETTINGS)
    remote = AuditStore(tmp_path / "ray.db")
    counts = run_audit_ray(log, remote, str(tiny_dir), None, SETTINGS, workers=2, model_name=tiny_lm.name,
                           group=group)
    assert counts["done"] == 6 and counts["error"] == 1 and remote.count() == 7
    a = [{k: v for k, v in r.items() if k not in VOLATILE} for r in local.rows()]
    b = [{k: v for k, v in r.items() if k not in VOLATILE} for r in remote.rows()]
    _same(a, b)
    assert local.meta()["identity"] == remote.meta()["identity"]
