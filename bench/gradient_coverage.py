"""Gradient coverage — do the gradient map's standard errors bound its error?

Word units of B1's ten-word prompts (AdvBench and Self-Instruct, seed 0) on the real Gemma 3 270M, the ``remove``
mask (the gradient's relaxation equals it at 0/1 masks), the greedy next token: exact Shapley values from all 2^n
masks, then ``method="gradient"`` at 3, 6, 12 and 24 evaluations per unit, 3 seeds each. Reported: how often
±1.96 standard errors cover the exact value, how many units Holm's test would resolve from those errors, and how many
of those have the wrong sign; the relative error. Why the gradient map resolves nothing
(:mod:`diffusiongemma.significance`).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .common import environment, write_result
from .prompts import with_words

PER_UNIT = (3, 6, 12, 24)  # evaluations per unit (a point costs 3)


def main(quick: bool, out: Path, command: str, seed: int = 0, prompts: int | None = None) -> Path:
    import diffusiongemma as dg
    from diffusiongemma.estimators.exact import ValueTable
    from diffusiongemma.significance import resolve

    warnings.filterwarnings("ignore")
    lm = dg.load_model(device="cpu")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for source, text in with_words(10, prompts or (2 if quick else 4), seed):
        exact = dg.run(ValueTable.from_game(dg.Game(text, model=lm, units="words", mask="remove")), "exact").scores
        for per in PER_UNIT:
            for s in range(1 if quick else 3):
                r = dg.run(dg.Game(text, model=lm, units="words", mask="remove"), "gradient", budget=per * len(exact),
                           seed=s)
                sig = resolve(r.scores, r.stderr, evaluations=r.evaluations).resolved  # as if its errors tested
                rows.append({"prompt": text, "source": source, "per_unit": per, "seed": s, "n": len(exact),
                             "covered": int(np.sum(np.abs(r.scores - exact) <= 1.96 * r.stderr)),
                             "resolved": int(sig.sum()),
                             "wrong_sign": int(np.sum(sig & (np.sign(r.scores) != np.sign(exact)))),
                             "rel_error": float(np.mean(np.abs(r.scores - exact)) / np.mean(np.abs(exact)))})
        print(f"[gradient_coverage] {text[:50]!r}: {time.perf_counter() - t0:.0f} s", flush=True)
    md = table(rows, command)
    print(md)
    payload = {"seed": seed, "quick": quick, "environment": environment(), "rows": rows,
               "wall_s": time.perf_counter() - t0}
    return write_result("gradient_coverage", command, payload, md, out)


def table(rows: list[dict[str, Any]], command: str) -> str:
    """One line per budget: coverage of ±1.96 s.e., units resolved as if the errors tested, wrong signs among them.

    Example:
        >>> print(table([{"prompt": "p", "per_unit": 3, "n": 10, "covered": 3, "resolved": 2, "wrong_sign": 1,
        ...               "rel_error": 0.5}], "cmd").splitlines()[-1])
        | 3 | 30 | 1 | 30 % | 2 of 10 | 1 | 0.50 |
    """
    lines = [f"Gradient coverage (`{command}`): word units of ten-word prompts on the real Gemma 3 270M, `remove`, "
             "against exact Shapley values (all 2^n masks).", "",
             "| evaluations per unit | budget | runs | ±1.96 s.e. covers exact | resolved if its errors tested | "
             "of which wrong sign | relative error |", "|---|---|---|---|---|---|---|"]
    for per in sorted({r["per_unit"] for r in rows}):
        sel = [r for r in rows if r["per_unit"] == per]
        units = sum(r["n"] for r in sel)
        lines.append(f"| {per} | {per * sel[0]['n']} | {len(sel)} | {sum(r['covered'] for r in sel) / units:.0%} | "
                     f"{sum(r['resolved'] for r in sel)} of {units} | {sum(r['wrong_sign'] for r in sel)} | "
                     f"{np.mean([r['rel_error'] for r in sel]):.2f} |".replace("%", " %"))
    return "\n".join(lines)
