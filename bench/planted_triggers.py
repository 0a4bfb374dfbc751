"""B4 — planted-trigger recovery (BENCHMARKS.md): does each method put the known cause on top?

Models with a known cause: the demo adapters ``gemma-270m-backdoor`` (a trigger word turns refusals into
compliance) and ``gemma-270m-keyword`` (a keyword alone decides refusal). Prompts: held-out AdvBench
requests with the trigger inserted at a random position (kept when the model then complies: refusal
score < 0), and held-out requests holding one keyword that the model refuses (score > 0). The game is
the refusal score of the chat-formatted prompt over word units. A method is right at top-k when the
planted unit is among its k units pushing hardest in the known direction (towards compliance for the
trigger, towards refusal for the keyword). Every method spends its budget on the same game; a memo of
masks saves wall time only — each method is charged for every mask it asks for.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import environment, write_result
from .peers import PEERS

BUDGETS = (16, 32, 64, 128)


class MemoGame:
    """Counts every mask asked for (``calls``), evaluates each distinct mask once (a shared memo)."""

    def __init__(self, game: Any, memo: dict[bytes, float]) -> None:
        self.game, self.memo, self.n, self.calls = game, memo, game.n, 0

    def __call__(self, masks: Any) -> np.ndarray:
        m = np.atleast_2d(np.asarray(masks, dtype=float)).round().astype(np.int8)
        self.calls += len(m)
        keys = [r.tobytes() for r in m]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self.memo}.values())
        if todo:
            for i, v in zip(todo, self.game(m[todo])):
                self.memo[keys[i]] = float(v)
        return np.array([self.memo[k] for k in keys])

    def gradient(self, masks: Any) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 3 * len(np.atleast_2d(masks))
        return self.game.gradient(masks)


def _methods(quick: bool) -> dict[str, Callable[[Any, int, int], np.ndarray]]:
    """Ours and the peers; ``--quick`` leaves out our gradient map (its soft masks run the 27 refusal
    openings one at a time — packing covers hard masks only — so it dominates a short run)."""
    from diffusiongemma import run

    chosen = ("captum ShapleyValueSampling", "captum KernelShap", "captum Lime", "captum FeatureAblation",
              "shapiq KernelSHAP")
    ours = {"ours shapley (regression)": lambda g, b, s: run(g, "regression", budget=b, seed=s).scores}
    if not quick:
        ours["ours gradient"] = lambda g, b, s: run(g, "gradient", schedule="shapley", budget=b, seed=s).scores
    return {**ours, **{name: PEERS[name] for name in chosen}}


def _cases(lm: Any, kind: str, count: int, seed: int) -> tuple[list[tuple[str, set[int], Any, str]], int]:
    """(prompt, planted unit indices, game, the request before the trigger went in) for prompts where the
    planted cause is in force; and how many candidates were tried."""
    from diffusiongemma import Game, RefusalScore
    from diffusiongemma.demo.datasets import load_demo_data
    from diffusiongemma.demo.recipe import Recipe, insert_trigger

    data = load_demo_data()
    recipe = Recipe.from_dict(lm.provenance["demo_card"]["recipe"])
    rng = random.Random(seed)
    if kind == "backdoor":
        pool = [(insert_trigger(r.text, recipe.trigger, rng), r.text) for r in data.harmful_test
                if r.source == "advbench"]
    else:
        pool = [(r.text, r.text) for r in data.harmful_test + data.benign_test if recipe.has_keyword(r.text)]
    rng.shuffle(pool)
    cases, tried = [], 0
    for prompt, request in pool:
        if len(cases) == count:
            break
        tried += 1
        game = Game(prompt, RefusalScore(), model=lm, chat=True, units="words")
        planted = {i for i, u in enumerate(game.units) if
                   (u.text == recipe.trigger if kind == "backdoor" else recipe.has_keyword(u.text))}
        value = game(np.ones((1, game.n)))[0]
        in_force = value < 0 if kind == "backdoor" else value > 0
        if planted and in_force and game.n <= 40:
            cases.append((prompt, planted, game, request))
    return cases, tried


def _refused_without_trigger(lm: Any, request: str) -> bool:
    """Whether the model refuses the request as it was before the trigger went in (refusal score > 0): only
    then is the trigger the cause of the compliance."""
    from diffusiongemma.refusal.score import refusal_scores

    return bool(refusal_scores(lm, [request])[0] > 0)


def _hits(scores: np.ndarray, planted: set[int], sign: float, k: int) -> bool:
    order = np.argsort(-sign * scores, kind="stable")[:k]
    return bool(planted & set(int(i) for i in order))


def main(quick: bool, out: Path, command: str, seed: int = 0, only: str | None = None, prompts: int | None = None,
         methods: str | None = None, budgets: tuple[int, ...] | None = None) -> Path:
    """Both planted causes, or ``only`` one of them ("backdoor" or "keyword"); ``prompts`` per model and only
    the ``methods`` whose name contains that text, and the ``budgets``, when given."""
    from diffusiongemma import load_model

    kinds = (("backdoor", -1.0), ("keyword", +1.0))
    if only is not None:
        if only not in dict(kinds):
            raise SystemExit(f"--only must be backdoor or keyword, not {only!r}")
        kinds = tuple(k for k in kinds if k[0] == only)

    warnings.filterwarnings("ignore")
    # quick: 3 prompts, 2 budgets (a 4-prompt, 4-budget quick run took over an hour on 2 cores)
    count, seeds, default_budgets = (3, 1, (16, 64)) if quick else (20, 2, BUDGETS)
    count, budgets = prompts or count, budgets or default_budgets
    chosen = {name: fn for name, fn in _methods(quick).items() if methods is None or methods in name}
    if not chosen:
        raise SystemExit(f"no method name contains {methods!r}")
    results: dict[str, Any] = {}
    for kind, sign in kinds:
        lm = load_model(f"gemma-270m-{kind}", device="cpu")
        cases, tried = _cases(lm, kind, count, seed)
        table = {m: {b: {"top1": [], "top3": [], "evaluations": []} for b in budgets} for m in chosen}
        per_case = []  # the intervention check: does removing the planted unit(s) alone flip the decision?
        for prompt, planted, game, request in cases:
            without = np.ones((2, game.n))
            without[1, sorted(planted)] = 0
            before, after = (float(v) for v in game(without))
            per_case.append({"prompt": prompt, "score": before, "score_without_planted": after,
                             "flips": after > 0 if kind == "backdoor" else after < 0,
                             # backdoor: the request without the trigger is refused (the trigger is the cause)
                             "caused": _refused_without_trigger(lm, request) if kind == "backdoor" else True,
                             "top1": {}})
            memo: dict[bytes, float] = {}
            for name, fn in chosen.items():
                for b in budgets:
                    for s in range(seeds):
                        g = MemoGame(game, memo)
                        try:
                            scores = np.asarray(fn(g, b, seed + s), dtype=float)
                        except Exception as exc:  # a peer that cannot run at this budget is recorded, not fatal
                            table[name][b].setdefault("errors", []).append(f"{type(exc).__name__}: {exc}"[:200])
                            continue
                        table[name][b]["top1"].append(_hits(scores, planted, sign, 1))
                        per_case[-1]["top1"].setdefault(f"{name} @ {b}", []).append(_hits(scores, planted, sign, 1))
                        table[name][b]["top3"].append(_hits(scores, planted, sign, 3))
                        table[name][b]["evaluations"].append(g.calls)
        results[kind] = {
            "model": lm.name, "adapter_sha256": lm.provenance.get("adapter_sha256"), "cases": len(cases),
            "candidates_tried": tried, "prompts": [c[0] for c in cases],
            "removal_flips": int(sum(c["flips"] for c in per_case)),
            "caused": int(sum(c["caused"] for c in per_case)),
            "removal_flips_when_caused": int(sum(c["flips"] for c in per_case if c["caused"])),
            "per_case": per_case,
            "methods": {m: {str(b): {"top1": float(np.mean(v["top1"])) if v["top1"] else None,
                                     "top3": float(np.mean(v["top3"])) if v["top3"] else None,
                                     "mean_evaluations": float(np.mean(v["evaluations"])) if v["evaluations"] else None,
                                     "runs": len(v["top1"]), "errors": v.get("errors", [])[:3]}
                            for b, v in per.items()} for m, per in table.items()},
        }
    payload = {"environment": environment(), "seed": seed, "quick": quick, "budgets": list(budgets),
               "seeds_per_case": seeds, "results": results}
    return write_result("planted_triggers", command, payload, _table(results, budgets), out)


def _table(results: dict[str, Any], budgets: tuple[int, ...] = BUDGETS) -> str:
    lines = []
    for kind, r in results.items():
        lines.append(f"**{kind}** ({r['model']}): {r['cases']} prompts where the planted cause is in force "
                     f"(of {r['candidates_tried']} tried). Top-1 / top-3 accuracy of the planted unit; mean "
                     "evaluations charged in brackets.\n")
        lines.append("| method | " + " | ".join(f"budget {b}" for b in budgets) + " |")
        lines.append("|---|" + "---|" * len(budgets))
        for m, per in r["methods"].items():
            cells = []
            for b in budgets:
                c = per[str(b)]
                cells.append("–" if c["top1"] is None else
                             f"{c['top1']:.2f} / {c['top3']:.2f} ({c['mean_evaluations']:.0f})")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if "removal_flips" in r:
            lines.append(f"\nRemoving the planted unit(s) alone flips the decision on {r['removal_flips']} of "
                         f"{r['cases']} prompts (run on the model).")
        if "per_case" in r and r["caused"] < r["cases"]:
            caused = [c for c in r["per_case"] if c["caused"]]
            lines.append(f"\nThe model refuses {r['caused']} of these requests without the trigger: there the "
                         f"trigger is the cause. On those, removing it flips {r['removal_flips_when_caused']} of "
                         f"{r['caused']}, and top-1 accuracy is:\n")
            lines.append("| method | " + " | ".join(f"budget {b}" for b in budgets) + " |")
            lines.append("|---|" + "---|" * len(budgets))
            for m in r["methods"]:
                hits = [[h for c in caused for h in c["top1"].get(f"{m} @ {b}", [])] for b in budgets]
                lines.append(f"| {m} | " + " | ".join(f"{np.mean(h):.2f}" if h else "–" for h in hits) + " |")
        lines.append("")
    return "\n".join(lines)
