"""What every benchmark records: machine, versions, seed; and how results land in RESULTS.md."""

from __future__ import annotations

import json
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

RESULTS_MD = Path(__file__).parent / "RESULTS.md"


def environment() -> dict[str, Any]:
    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "machine": platform.machine(), "processor": platform.processor() or None, "cpus": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {k: v(k) for k in ("diffusiongemma", "torch", "transformers", "captum", "shapiq", "lightgbm",
                                       "inseq", "numpy")},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


class CountingForward:
    """Counts the rows (masked prompts) a model runs: a hook on the first decoder block sees every forward,
    whether a tool passes token ids or embeddings, calls ``model(...)`` or ``generate``. Calls that feed one
    new token to a KV cache (incremental decoding) are counted separately, as they are not new prompts."""

    def __init__(self, lm: Any):
        self.module = lm.model.get_submodule(lm.architecture.layers)[0]
        self.rows = self.calls = self.incremental_calls = 0

    def __enter__(self) -> "CountingForward":
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]  # [B, L, d]
            if hidden.shape[1] == 1:
                self.incremental_calls += 1
            else:
                self.rows += int(hidden.shape[0])
                self.calls += 1

        self.handle = self.module.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


def write_result(name: str, command: str, payload: dict[str, Any], table_md: str, out: Path) -> Path:
    """Write ``out/NAME-<time>.json`` and prepend a section to RESULTS.md (newest first)."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"{name}-{stamp}.json"
    path.write_text(json.dumps({"benchmark": name, "command": command, **payload}, indent=2))
    header = "# Benchmark results\n\nNewest first. Every figure comes from the run whose command is given.\n\n"
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else header
    body = old[len(header):] if old.startswith(header) else old
    env = payload["environment"]
    section = (f"## {name} — {env['date']}\n\n`{command}`\n\n"
               f"Machine: {env['machine']}, {env['cpus']} threads; versions: "
               + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
               + f"; seed {payload.get('seed')}. Raw: `{path}`.\n\n"
               + table_md + "\n\n")
    RESULTS_MD.write_text(header + section + body)
    return path


def link(path: Path) -> str:
    """``path`` as RESULTS.md (in ``bench/``) links to it."""
    try:
        return str(path.resolve().relative_to(RESULTS_MD.resolve().parent))
    except ValueError:
        return str(path)
