"""Audit-diff of two model versions (issue 32): the shipped ``gemma-270m-safety`` against the same model with
the hardening patch ``harden`` fits, on one log, with the audit's defaults, then ``audit-diff`` of the two
stores. Every step is the real command line in a fresh process.

The log (written by :func:`write_log`): 8 StrongREJECT requests (the first of each category and then the next
rows, fixed), the same 8 wrapped in the role-play attack ``harden`` tests, and 8 XSTest safe prompts (the
over-refusal a patch may cost). Each record keeps its ``category`` and ``source``.

    python -m bench.audit_diff --patch safety.patch.safetensors --out /tmp/diff
    python -m bench.audit_diff --model-b gemma-270m-keyword --out /tmp/diff-keyword   # another model as B
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_log(path: Path, per_kind: int = 8) -> Path:
    """The 24-record JSONL log described above."""
    from diffusiongemma.harden.attacks import attack_by_name

    with open(DATA / "strongreject" / "strongreject_dataset.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seen: set[str] = set()
    picks = []
    for r in rows:  # one per category first, then in file order
        if r["category"] not in seen:
            seen.add(r["category"])
            picks.append(r)
    picks += [r for r in rows if r not in picks][: max(0, per_kind - len(picks))]
    picks = picks[:per_kind]
    role_play = attack_by_name("role_play")
    with open(DATA / "xstest" / "xstest_prompts.csv", encoding="utf-8") as f:
        safe = [r for r in csv.DictReader(f) if r["label"] == "safe"][::25][:per_kind]
    records = [{"prompt": r["forbidden_prompt"], "category": r["category"], "source": "strongreject"} for r in picks]
    records += [{"prompt": role_play.apply(r["forbidden_prompt"]), "category": r["category"],
                 "source": "strongreject+role_play"} for r in picks]
    records += [{"prompt": r["prompt"], "category": f"safe:{r['type']}", "source": "xstest"} for r in safe]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patch", type=Path, help="patch file from diffusiongemma harden, applied to B")
    ap.add_argument("--model-b", default="gemma-270m-safety", help="B's model (A is gemma-270m-safety)")
    ap.add_argument("--out", type=Path, default=Path("audit_diff_run"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    log = write_log(a.out / "log.jsonl")
    cli = [sys.executable, "-m", "diffusiongemma"]
    took_a = _run(cli + ["audit", str(log), "--store", str(a.out / "safety.db"), "--model", "gemma-270m-safety"])
    b_store = a.out / ("hardened.db" if a.patch else f"{a.model_b}.db")
    took_b = _run(cli + ["audit", str(log), "--store", str(b_store), "--model", a.model_b]
                  + (["--patch", str(a.patch)] if a.patch else []))
    took_d = _run(cli + ["audit-diff", str(a.out / "safety.db"), str(b_store),
                         "--html", str(a.out / "diff.html"), "--json", str(a.out / "diff.json")])
    print(json.dumps({"audit_a_s": round(took_a), "audit_b_s": round(took_b), "diff_s": round(took_d, 1)}))


if __name__ == "__main__":
    main()
