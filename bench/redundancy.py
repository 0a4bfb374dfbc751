"""Redundancy in the real Gemma 3 270M: pairs of components whose joint removal changes the target while
each alone barely does (backup heads, self-repair) — what one-at-a-time activation patching misses.

Game: the B5 game (heads + MLPs, mean ablation, answer-vs-foil contrast). Every single removal (90) and every
pair removal (4,005) is run, so each pair's effect is known exactly: ``d_i = v(N) − v(N∖i)`` and
``d_ij = v(N) − v(N∖{i, j})``; their interaction at the full model is ``I_ij = d_i + d_j − d_ij`` (negative:
either one suffices). A pair is called redundant when ``|d_ij| ≥ 0.5`` nats and each alone moves the target
by at most a fifth of that. The engine's own interaction scores (Faith-Shap pairs among the 16 strongest
units of a Shapley run, ``interactions=16``) are set beside them: does the Shapley view flag these pairs?
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .common import environment, write_result
from .component_attribution import PROMPTS, REFERENCE

SHAPLEY_BUDGET = 4000


def _case(lm: Any, prompt: str, answer: str, foil: str, budget: int, seed: int) -> dict[str, Any]:
    from diffusiongemma import run
    from diffusiongemma.components import ComponentGame

    game = ComponentGame(prompt, answer, contrast=foil, model=lm, units="heads+mlps", baseline="mean",
                         reference=REFERENCE)
    n, labels = game.n, [u.text for u in game.units]
    full = float(game(np.ones((1, n)))[0])
    single = full - game(1 - np.eye(n))  # [n]
    pairs = list(combinations(range(n), 2))
    masks = np.ones((len(pairs), n))
    for r, (i, j) in enumerate(pairs):
        masks[r, [i, j]] = 0
    joint = full - game(masks)  # [pairs]
    di, dj = single[[i for i, _ in pairs]], single[[j for _, j in pairs]]
    interaction = di + dj - joint
    redundant = (np.abs(joint) >= 0.5) & (np.maximum(np.abs(di), np.abs(dj)) <= 0.2 * np.abs(joint))
    shap = run(game, "regression", budget=budget, seed=seed, interactions=16)
    faith = {(min(i, j), max(i, j)): v for i, j, v in shap.interactions or []}
    order = np.argsort(interaction)  # most negative first
    top = [int(r) for r in order[:8]] + [int(r) for r in np.flatnonzero(redundant) if r not in order[:8]][:8]
    rows = [{"pair": [labels[pairs[r][0]], labels[pairs[r][1]]], "drop_i": float(di[r]), "drop_j": float(dj[r]),
             "drop_both": float(joint[r]), "interaction_at_full": float(interaction[r]), "redundant": bool(redundant[r]),
             "faith_shap": faith.get(pairs[r]), "shapley_i": float(shap.scores[pairs[r][0]]),
             "shapley_j": float(shap.scores[pairs[r][1]])} for r in top]
    flagged = sorted(faith.items(), key=lambda kv: kv[1])[:5]
    return {"prompt": prompt, "answer": answer, "foil": foil, "n": n, "v_full": full,
            "evaluations": 1 + n + len(pairs), "shapley_budget": budget, "redundant_pairs": int(redundant.sum()),
            "rows": rows, "faith_shap_most_negative": [
                {"pair": [labels[i], labels[j]], "faith_shap": v, "drop_i": float(single[i]), "drop_j": float(single[j]),
                 "drop_both": float(joint[pairs.index((i, j))])} for (i, j), v in flagged]}


def _table(cases: list[dict[str, Any]]) -> str:
    lines = []
    for c in cases:
        lines += [f"`{c['prompt']}` → `{c['answer']}` vs `{c['foil']}` (v(all) {c['v_full']:.2f}): "
                  f"{c['evaluations']} removals run; {c['redundant_pairs']} of {c['n'] * (c['n'] - 1) // 2} pairs are "
                  "redundant by the rule above.", "",
                  "| pair | drop i | drop j | drop both | I at full model | redundant | Faith-Shap | Shapley i, j |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            fs = "—" if r["faith_shap"] is None else f"{r['faith_shap']:.3f}"
            lines.append(f"| {' + '.join(r['pair'])} | {r['drop_i']:.3f} | {r['drop_j']:.3f} | {r['drop_both']:.3f} | "
                         f"{r['interaction_at_full']:.3f} | {'yes' if r['redundant'] else 'no'} | {fs} | "
                         f"{r['shapley_i']:.3f}, {r['shapley_j']:.3f} |")
        lines += ["", f"Most negative Faith-Shap pairs of the Shapley run ({c['shapley_budget']} evaluations), checked:", "",
                  "| pair | Faith-Shap | drop i | drop j | drop both |", "|---|---|---|---|---|"]
        lines += [f"| {' + '.join(r['pair'])} | {r['faith_shap']:.3f} | {r['drop_i']:.3f} | {r['drop_j']:.3f} | "
                  f"{r['drop_both']:.3f} |" for r in c["faith_shap_most_negative"]]
        lines.append("")
    return "\n".join(lines)


def main(quick: bool, out: Path, command: str, seed: int = 0) -> Path:
    from diffusiongemma.models import load_model

    lm = load_model(device="cpu")
    cases = []
    for prompt, answer, foil in PROMPTS[:1] if quick else PROMPTS:
        cases.append(_case(lm, prompt, answer, foil, 1000 if quick else SHAPLEY_BUDGET, seed))
        print(_table(cases[-1:]), flush=True)
    return write_result("redundancy", command, {"environment": environment(), "seed": seed, "cases": cases},
                        _table(cases), out)
