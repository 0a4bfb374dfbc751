"""B1, long-prompt condition (BENCHMARKS.md): jailbreak templates around AdvBench requests, 64–128 token
units, where enumeration is impossible. The reference is our paired estimator at a high budget (≥ 20,000
evaluations in the full run) with its own standard error, reported beside the errors it judges.

Target: the model's greedy first reply token after Gemma's chat template (the prompt is the user turn).
Every method runs on the same real game; evaluations are counted by the game.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .common import environment, write_result
from .peers import PEERS
from .prompts import long_prompts
from .tables import spearman


class CountingGame:
    """A game that counts the masks it is asked for (``calls``), as ``ValueTable`` does."""

    def __init__(self, game: Any) -> None:
        self.game, self.n, self.calls = game, game.n, 0

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.atleast_2d(np.asarray(masks))
        self.calls += len(masks)
        return self.game(masks)

    def gradient(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 3 * len(masks)  # a forward and a backward
        return self.game.gradient(masks)


def main(quick: bool, out: Path, command: str, seed: int = 0) -> Path:
    from diffusiongemma import Game, load_model, run

    warnings.filterwarnings("ignore")
    lm = load_model(device="cpu")
    # BENCHMARKS.md asks for a reference of ≥ 20,000 evaluations; at ~4 rows/s for an 80-token prompt on 2 CPU
    # cores that is over an hour per prompt, so the CPU run uses 4,096 and reports the reference's own error
    count, ref_budget, budgets, seeds = (1, 1024, (128,), 1) if quick else (1, 4096, (256, 1024), 1)
    peers = ("captum ShapleyValueSampling", "shapiq KernelSHAP")
    methods = {"ours shapley (regression)": lambda g, b, s: run(g, "regression", budget=b, seed=s).scores,
               "ours gradient": lambda g, b, s: run(g, "gradient", budget=b, seed=s).scores,
               **{p: PEERS[p] for p in peers}}

    def fits(text: str) -> bool:
        n = len(Game(text, model=lm, units="tokens", chat=True, target=" ").units)
        return 64 <= n <= 128

    prompts = long_prompts(count, seed, fits)
    rows: list[dict[str, Any]] = []
    refs = []
    t0 = time.perf_counter()
    for k, (name, text) in enumerate(prompts):
        game = Game(text, model=lm, units="tokens", chat=True)
        print(f"[B1 long] prompt {k + 1}/{len(prompts)} ({game.n} tokens): reference, {time.perf_counter() - t0:.0f} s",
              flush=True)
        ref = run(game, "paired", budget=ref_budget, seed=10_000 + seed)
        refs.append({"template": name, "n": game.n, "target": game.bound.description["text"],
                     "evaluations": ref.evaluations, "scores": ref.scores.tolist(), "stderr": ref.stderr.tolist(),
                     "ref_rel_stderr": float(np.linalg.norm(ref.stderr) / np.linalg.norm(ref.scores))})
        for mname, method in methods.items():
            for budget in budgets:
                for s in range(seeds):
                    g = CountingGame(game)
                    try:
                        est = np.asarray(method(g, budget, seed + s), dtype=float)
                    except Exception as exc:  # e.g. a budget below a method's minimum: reported, not hidden
                        rows.append({"method": mname, "prompt": k, "budget": budget, "error": repr(exc)[:200]})
                        continue
                    rows.append({"method": mname, "prompt": k, "budget": budget, "seed": seed + s,
                                 "evaluations": g.calls,
                                 "rel_error": float(np.linalg.norm(est - ref.scores) / np.linalg.norm(ref.scores)),
                                 "spearman": spearman(est, ref.scores)})
            print(f"[B1 long]   {mname} done, {time.perf_counter() - t0:.0f} s", flush=True)
    lines = ["| method | " + " | ".join(f"budget {b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    summary: dict[str, Any] = {}
    for mname in methods:
        cells = []
        for b in budgets:
            sel = [r for r in rows if r["method"] == mname and r["budget"] == b]
            if not sel or any("error" in r for r in sel):
                cells.append("could not run")
                continue
            e, rho, ev = (float(np.mean([r[k] for r in sel])) for k in ("rel_error", "spearman", "evaluations"))
            summary.setdefault(mname, {})[b] = {"rel_error": e, "spearman": rho, "evaluations": ev}
            cells.append(f"{e:.3f} (ρ {rho:.2f}, {ev:.0f} ev.)")
        lines.append(f"| {mname} | " + " | ".join(cells) + " |")
    ref_err = ", ".join(f"{r['ref_rel_stderr']:.3f}" for r in refs)
    table = (f"{len(prompts)} prompts (jailbreak template around an AdvBench request, chat turn; "
             + ", ".join(f"{r['template']}: {r['n']} token units, target {r['target']!r}" for r in refs)
             + f"), {seeds} seed(s). Relative L2 error against the reference (ours paired, {ref_budget} evaluations; "
             f"its relative standard error ‖s.e.‖/‖φ‖ = {ref_err}), mean Spearman ρ, evaluations counted by the "
             "game.\n\n" + "\n".join(lines))
    payload = {"environment": environment(), "seed": seed, "quick": quick, "budgets": list(budgets),
               "reference_budget": ref_budget, "references": refs, "rows": rows, "summary": summary,
               "prompts": [{"template": n, "text": t} for n, t in prompts]}
    return write_result("estimator_accuracy_long" + ("-quick" if quick else ""), command, payload, table, out)
