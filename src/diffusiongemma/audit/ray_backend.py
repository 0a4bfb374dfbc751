"""``--backend ray``: the same audit across Ray workers, one model per worker, one writer (the driver).

Each worker is a Ray actor that loads the model once (on a GPU of its own where the cluster has GPUs) and
audits the items it is handed with :func:`~diffusiongemma.audit.runner.audit_group` — the very function the
single-process audit runs — so the records are the same. Items go to a worker in groups (on a GPU worker,
16: their maps' masks share forwards; on CPU workers, 1: rows come back as each finishes). The driver
keeps a few groups in flight per worker and writes every finished row to the store itself, so the store has one writer and resumes exactly
like a local audit. With ``RAY_ADDRESS`` set (or ``address=``) it joins that cluster; otherwise it starts a
local one on this machine.

Examples:
    >>> import tempfile
    >>> from diffusiongemma.audit.example import example_log
    >>> from diffusiongemma.errors import InputError
    >>> try:  # each worker loads the model itself; a bad setting fails before Ray starts
    ...     run_audit_ray(example_log(), AuditStore(tempfile.mkdtemp() + "/a.db"), "tiny-random-gemma", None,
    ...                   AuditSettings(budget=8, components=None), workers=0)
    ... except InputError as e:
    ...     print(type(e).__name__)
    InputError

    (``workers=2`` audits the log on two Ray actors; see ``tests/contract/test_audit_ray.py`` for a run.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from .items import Problem
from .readers import detect_format
from .runner import GROUP, AuditSettings, identity, keep_provenance, pending_items, problem_row
from .store import AuditStore

__all__ = ["run_audit_ray"]


def _worker_class(ray: Any, gpus: float) -> Any:
    @ray.remote(num_gpus=gpus)
    class AuditWorker:
        """One model, many items."""

        def __init__(self, model: str, adapter: str | None, threads: int, patch: str | None = None) -> None:
            import torch

            from ..models import load_model

            torch.set_num_threads(threads)
            self.lm = load_model(model, adapter=adapter, device="cuda" if gpus else "cpu", patch=patch)

        def name(self) -> str:
            return self.lm.name

        def provenance(self) -> dict[str, Any]:
            return dict(self.lm.provenance)

        def audit(self, items: list[Any], settings: AuditSettings) -> list[dict[str, Any]]:
            from .runner import audit_group

            return audit_group(self.lm, items, settings)

    return AuditWorker


def run_audit_ray(path: str | Path, store: AuditStore, model: str, adapter: str | None, settings: AuditSettings, *,
                  fmt: str | None = None, workers: int = 2, limit: int | None = None, address: str | None = None,
                  on_row: Callable[[dict[str, Any]], Any] | None = None, model_name: str | None = None,
                  in_flight: int = 2, group: int | None = None, patch: str | Path | None = None) -> dict[str, int]:
    """Audit ``path`` into ``store`` on ``workers`` Ray actors. Returns counts like the local audit.
    ``group``: items handed to a worker at a time (default: 16 on GPU workers, 1 on CPU ones); ``patch``: a
    hardening patch file every worker applies."""
    try:
        import ray
    except ImportError:
        raise InputError("the ray backend needs Ray: pip install 'diffusiongemma[scale]' (or pip install ray)") from None
    if workers < 1:
        raise InputError("--workers must be at least 1")
    path = Path(path)
    fmt = fmt or detect_format(path)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
                 num_cpus=None if (address or os.environ.get("RAY_ADDRESS")) else max(workers, os.cpu_count() or 1),
                 runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    try:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= workers else 0.0
        size = group or (GROUP if gpus else 1)
        threads = max(1, (os.cpu_count() or 1) // workers)
        Worker = _worker_class(ray, gpus)
        actors = [Worker.remote(model, adapter, threads, None if patch is None else str(patch)) for _ in range(workers)]
        names = set(ray.get([a.name.remote() for a in actors]))
        provenance = ray.get(actors[0].provenance.remote())
        store.bind(identity(path, fmt, model_name or names.pop(), settings, (provenance.get("patch") or {}).get("sha256")))
        keep_provenance(store, provenance)
        store.set_meta("grouping", {"backend": "ray", "group": size})
        store.set_meta("input_path", str(path))
        done = store.done_keys()
        counts = {"done": 0, "error": 0, "skipped": len(done)}
        todo = iter(pending_items(path, fmt, done))
        running: dict[Any, Any] = {}  # object ref -> (actor, items handed)
        handed = 0  # items in flight
        free = [a for a in actors for _ in range(in_flight)]

        def write(row: dict[str, Any]) -> None:
            store.put(row)
            counts[row["status"]] += 1
            if on_row:
                on_row(row)

        exhausted = False
        while True:
            while free and not exhausted:
                batch: list[Any] = []
                while len(batch) < size:
                    if limit is not None and counts["done"] + counts["error"] + handed + len(batch) >= limit:
                        exhausted = True
                        break
                    x = next(todo, None)
                    if x is None:
                        exhausted = True
                        break
                    if isinstance(x, Problem):
                        write(problem_row(x))
                    else:
                        batch.append(x)
                if batch:
                    actor = free.pop()
                    running[actor.audit.remote(batch, settings)] = (actor, len(batch))
                    handed += len(batch)
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                actor, n = running.pop(ref)
                free.append(actor)
                handed -= n
                for row in ray.get(ref):
                    write(row)
        return counts
    finally:
        if started:
            ray.shutdown()
