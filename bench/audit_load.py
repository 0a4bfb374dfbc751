"""Audit load (issue 29): throughput and peak memory of ``diffusiongemma audit`` on many items, and how close
its dry-run estimate comes to the real time. Every run is the real command line in a fresh process.

* tiny: 1,000 short items on a 2-layer random Gemma 3 (the pipeline's own cost: store, readers, grouping,
  replies, maps), ``--no-checks --components none``, budget 16.
* roleplay: role-play jailbreaks of 60–200 words (PyRIT templates around AdvBench requests, as in B7) on
  ``gemma-270m-safety`` with the audit's defaults; first ``--dry-run`` (its estimate), then the audit itself.
* short: 100 short requests (AdvBench and self-instruct, half each, shuffled), the same way.

``--only tiny,roleplay,short`` picks parts; ``--prompts N`` sets the real-model items of each.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import environment, write_result


def _tiny_model(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    from diffusiongemma.models.default_gemma import ensure_default_tokenizer

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=262144, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
                              sliding_window=512, layer_types=["sliding_attention", "full_attention"],
                              initializer_range=0.5)
    Gemma3ForCausalLM(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(ensure_default_tokenizer()).save_pretrained(folder)
    return folder


def _run(args: list[str]) -> dict[str, Any]:
    """One command in a fresh process: wall time, exit code, the largest child's peak RSS so far, its output."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "diffusiongemma.cli", *args], capture_output=True, text=True)
    return {"wall_s": time.perf_counter() - t0, "returncode": proc.returncode, "stdout": proc.stdout[-3000:],
            "stderr": proc.stderr[-1000:],
            "peak_rss_gb_upto": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20}


def _real(kind: str, log: Path, work: Path, count: int) -> list[dict[str, Any]]:
    """A real-model audit with the audit's defaults: first its dry run (the estimate), then the audit."""
    base = ["audit", str(log), "--store", str(work / f"{kind}.db"), "--model", "gemma-270m-safety"]
    dry = _run(base + ["--dry-run"])
    found = re.search(r"about ([\d.]+)\s+minutes", " ".join(dry["stdout"].split()))
    estimate = float(found.group(1)) * 60 if found else None
    print(f"[audit_load] {kind} dry run: {dry['wall_s']:.0f} s, estimate {estimate} s", flush=True)
    real = _run(base)
    print(f"[audit_load] {kind} real: {real['wall_s']:.0f} s, rc {real['returncode']}", flush=True)
    return [{"case": f"gemma-270m-safety, {count} {kind}, dry run", "items": count, **dry, "estimate_s": estimate},
            {"case": f"gemma-270m-safety, {count} {kind}, defaults", "items": count, **real,
             "estimate_error": None if estimate is None else estimate / real["wall_s"] - 1}]


def main(quick: bool, out: Path, command: str, seed: int = 0, prompts: int | None = None,
         only: str | None = None) -> Path:
    """``only``: the parts to run, comma-separated: tiny, roleplay, short (default: all three)."""
    import numpy as np

    from .long_inputs import roleplay
    from .prompts import benign, harmful

    parts = set((only or "tiny,roleplay,short").split(","))
    work = Path(tempfile.mkdtemp())
    rows: list[dict[str, Any]] = []
    if "tiny" in parts:
        tiny_items = 200 if quick else 1000
        log = work / "tiny.jsonl"
        topics = ["cats", "rivers", "bread", "the moon", "volcanoes", "chess", "tea", "bridges"]
        log.write_text("".join(json.dumps({"prompt": f"Tell me fact {i} about {topics[i % 8]}"}) + "\n"
                               for i in range(tiny_items)))
        tiny = _tiny_model(work / "tiny")
        r = _run(["audit", str(log), "--store", str(work / "tiny.db"), "--model", str(tiny), "--budget", "16",
                  "--components", "none", "--no-checks", "--max-new-tokens", "8"])
        rows.append({"case": f"tiny model, {tiny_items} items, --no-checks --components none, budget 16",
                     "items": tiny_items, **r})
        print(f"[audit_load] {rows[-1]['case']}: {r['wall_s']:.0f} s, rc {r['returncode']}", flush=True)
    if "roleplay" in parts:
        count = prompts or (4 if quick else 16)
        log = work / "roleplay.jsonl"
        log.write_text("".join(json.dumps({"prompt": text, "source": name}) + "\n"
                               for name, text in roleplay(count, seed)))
        rows += _real("role-play jailbreaks", log, work, count)
    if "short" in parts:  # AdvBench requests and self-instruct tasks, half each, shuffled
        count = prompts or (8 if quick else 100)
        rng = np.random.default_rng(seed)
        bad, good = harmful(), benign()
        mixed = ([("advbench", bad[i]) for i in rng.choice(len(bad), count // 2, replace=False)]
                 + [("self-instruct", good[i]) for i in rng.choice(len(good), count - count // 2, replace=False)])
        log = work / "short.jsonl"
        log.write_text("".join(json.dumps({"prompt": mixed[i][1], "source": mixed[i][0]}) + "\n"
                               for i in rng.permutation(count)))
        rows += _real("short requests", log, work, count)
    payload = {"environment": environment(), "seed": seed, "rows": rows}
    return write_result("audit_load", command, payload, table(rows), out)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| case | items | wall s | items/s | peak RSS GB (largest process so far) | exit | dry-run estimate |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        error = r.get("estimate_error")
        lines.append(f"| {r['case']} | {r['items']} | {r['wall_s']:.0f} | {r['items'] / r['wall_s']:.2f} | "
                     f"{r['peak_rss_gb_upto']:.2f} | {r['returncode']} | "
                     f"{'' if error is None else f'{error:+.0%} of the real time'} |")
    return "\n".join(lines)
