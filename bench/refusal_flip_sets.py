"""Minimal flip sets of real refusals (issue 7): on held-out harmful requests that ``gemma-270m-safety``
refuses, ``explain_refusal`` maps the refusal score to the request's words, then searches the fewest words
whose removal flips the score's sign (and the fewest that alone keep it), each set confirmed or not by
running the model. Reported per request: the sets, their confirmation, what they cost.
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .common import environment, write_result

BUDGET = 64


def _words(attr: Any, idx: list[int]) -> list[str]:
    return [attr.units[i].text for i in idx]


def main(quick: bool, out: Path, command: str, seed: int = 0, prompts: int | None = None) -> Path:
    from diffusiongemma import explain_refusal, load_model
    from diffusiongemma.demo.datasets import load_demo_data

    warnings.filterwarnings("ignore")
    lm = load_model("gemma-270m-safety", device="cpu")
    pool = [r.text for r in load_demo_data().harmful_test]
    random.Random(seed).shuffle(pool)
    count = prompts or (3 if quick else 10)
    rows: list[dict[str, Any]] = []
    tried = 0
    for prompt in pool:
        if len(rows) == count:
            break
        tried += 1
        t0 = time.perf_counter()
        a = explain_refusal(prompt, model=lm, budget=BUDGET, seed=seed, components=None, max_new_tokens=24)
        if not a.decision["refused"] or a.v_full <= 0:  # only refusals the score agrees with have a flip to find
            continue
        nec, suf = a.triggers["necessary"], a.triggers["sufficient"]
        rows.append({"prompt": prompt, "words": len(a.units), "reply": a.decision.get("reply", "")[:80],
                     "score": a.v_full, "necessary": _words(a, nec.units), "necessary_confirmed": nec.confirmed,
                     "score_without_necessary": nec.value_after, "necessary_evaluations": nec.evaluations,
                     "sufficient": _words(a, suf.units), "sufficient_confirmed": suf.confirmed,
                     "sufficient_evaluations": suf.evaluations,
                     "deletion_auc": a.faithfulness.deletion_auc if a.faithfulness else None,
                     "map_evaluations": a.evaluations, "seconds": time.perf_counter() - t0})
        print(f"[flip sets] {len(rows)}/{count}: {rows[-1]['necessary']} "
              f"({'confirmed' if nec.confirmed else 'not confirmed'})", flush=True)
    payload = {"environment": environment(), "seed": seed, "quick": quick, "budget": BUDGET,
               "model": lm.name, "adapter_sha256": lm.provenance.get("adapter_sha256"), "tried": tried, "rows": rows}
    return write_result("refusal_flip_sets", command, payload, _table(rows, tried), out)


def _table(rows: list[dict[str, Any]], tried: int) -> str:
    confirmed = [r for r in rows if r["necessary_confirmed"]]
    lines = [f"gemma-270m-safety, {len(rows)} held-out harmful requests it refuses (of {tried} tried; refused by "
             f"the detector on a 24-token reply and by the score's sign), word units, map budget {BUDGET}. "
             f"Minimal flip set (fewest words whose removal flips the refusal score's sign) **confirmed by the "
             f"model on {len(confirmed)} of {len(rows)}**, mean size "
             f"{np.mean([len(r['necessary']) for r in confirmed]) if confirmed else float('nan'):.1f} words; "
             f"keep set (fewest words that alone keep the refusal) confirmed on "
             f"{sum(r['sufficient_confirmed'] for r in rows)} of {len(rows)}.\n",
             "| request | score | flip set (removed) | score after | confirmed | keep set | search evaluations | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        text = r["prompt"].replace("|", "\\|")
        lines.append(f"| {text} | {r['score']:+.2f} | {', '.join(r['necessary']) or '–'} | "
                     f"{r['score_without_necessary']:+.2f} | {'yes' if r['necessary_confirmed'] else 'no'} | "
                     f"{', '.join(r['sufficient']) or '–'} ({'yes' if r['sufficient_confirmed'] else 'no'}) | "
                     f"{r['necessary_evaluations'] + r['sufficient_evaluations']} | {r['seconds']:.0f} |")
    return "\n".join(lines)
