"""Redundancy in the real Gemma 3 270M: pairs of components whose joint removal changes the target while
each alone barely does (backup heads, self-repair) — what one-at-a-time activation patching misses.

Game: the B5 game (heads + MLPs, mean ablation, answer-vs-foil contrast). Every single removal (90) and every
pair removal (4,005) is run, so each pair's effect is known exactly: ``d_i = v(N) − v(N∖i)`` and
``d_ij = v(N) − v(N∖{i, j})``; their interaction at the full model is ``I_ij = d_i + d_j − d_ij`` (negative:
either one suffices). A pair is called redundant when ``|d_ij| ≥ 0.5`` nats and each alone moves the target
by at most a fifth of that. The engine's own interaction scores (Faith-Shap pairs among the 16 strongest
units of a Shapley run, ``interactions=16``) are set beside them: does the Shapley view flag these pairs?
And the engine's backup search (``explain(backups=10)``, :mod:`diffusiongemma.redundancy`) from a
1,000-evaluation Shapley map: which of the redundant pairs it finds, at what cost, against the full scan.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .common import environment, write_result
from .component_attribution import PROMPTS, REFERENCE

SHAPLEY_BUDGET = 4000
SEARCH_BUDGET, SEARCH_TOP = 1000, 10


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
    search = _search(game, seed)
    truth = {(labels[i], labels[j]) for r, (i, j) in enumerate(pairs) if redundant[r]}
    search["recovered"] = sorted(" + ".join(p) for p in truth & {tuple(q.split(" + ")) for q in search["redundant"]})
    search["redundant_in_scan"] = len(truth)
    return {"prompt": prompt, "answer": answer, "foil": foil, "n": n, "v_full": full,
            "evaluations": 1 + n + len(pairs), "shapley_budget": budget, "redundant_pairs": int(redundant.sum()),
            "rows": rows, "search": search, "faith_shap_most_negative": [
                {"pair": [labels[i], labels[j]], "faith_shap": v, "drop_i": float(single[i]), "drop_j": float(single[j]),
                 "drop_both": float(joint[pairs.index((i, j))])} for (i, j), v in flagged]}


def _search(game: Any, seed: int) -> dict[str, Any]:
    """The backup search as a user runs it: a Shapley map at SEARCH_BUDGET, then ``find_backups``."""
    import time

    from diffusiongemma import run
    from diffusiongemma.redundancy import find_backups

    t0 = time.perf_counter()
    shap = run(game, "regression", budget=SEARCH_BUDGET, seed=seed)
    found = find_backups(game, shap.scores, top=SEARCH_TOP, min_effect=0.5)
    labels = [u.text for u in game.units]
    name = lambda p: " + ".join(labels[i] for i in p.units)  # noqa: E731
    return {"shapley_budget": SEARCH_BUDGET, "top": SEARCH_TOP, "evaluations": found.evaluations,
            "seconds": round(time.perf_counter() - t0, 1), "candidates": [labels[i] for i in found.candidates],
            "redundant": [name(p) for p in found.pairs if p.redundant],
            "strongest": [{"pair": name(p), "drop_i": p.drop_i, "drop_j": p.drop_j, "drop_both": p.drop_both,
                           "redundant": p.redundant} for p in found.pairs[:5]]}


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
        s = c.get("search")
        if s:
            lines += ["", f"Backup search (`explain(backups={s['top']})` after a {s['shapley_budget']}-evaluation Shapley "
                      f"map; {s['evaluations']} more model runs, {s['seconds']} s in all): redundant pairs found: "
                      + (", ".join(s["redundant"]) or "none") + f"; of the scan's {s['redundant_in_scan']}, recovered: "
                      + (", ".join(s["recovered"]) or "none") + "."]
        lines.append("")
    return "\n".join(lines)


def _search_only(lm: Any, out: Path, command: str, seed: int) -> Path:
    """``--only search``: the backup search alone, scored against the newest full scan in ``out`` (the scan is
    exact removals, so it does not change between runs of the same model and prompts)."""
    import json

    from diffusiongemma.components import ComponentGame

    runs = [json.loads(p.read_text()) for p in sorted(out.glob("redundancy-*.json"), reverse=True)]
    scan = next((r for r in runs if "evaluations" in r["cases"][0]), None)  # a full scan, not a search-only run
    if scan is None:
        raise SystemExit(f"no full redundancy scan in {out}: run `python -m bench.run redundancy` first")
    cases = []
    for c in scan["cases"]:
        game = ComponentGame(c["prompt"], c["answer"], contrast=c["foil"], model=lm, units="heads+mlps",
                             baseline="mean", reference=REFERENCE)
        search = _search(game, seed)
        truth = {tuple(r["pair"]) for r in c["rows"] if r["redundant"]}
        search["recovered"] = sorted(" + ".join(p) for p in truth & {tuple(q.split(" + ")) for q in search["redundant"]})
        search["redundant_in_scan"] = len(truth)
        cases.append({"prompt": c["prompt"], "answer": c["answer"], "foil": c["foil"], "scan_evaluations": c["evaluations"],
                      "search": search})
    lines = [f"Backup search only, scored against the full scan `{c['prompt']}` → `{c['answer']}` vs `{c['foil']}` "
             f"({c['scan_evaluations']} removals): after a {c['search']['shapley_budget']}-evaluation Shapley map, "
             f"`find_backups(top={c['search']['top']})` ran {c['search']['evaluations']} more removals "
             f"({c['search']['seconds']} s in all) and flagged: {', '.join(c['search']['redundant']) or 'none'}; "
             f"of the scan's {c['search']['redundant_in_scan']} redundant pairs it recovered "
             f"{len(c['search']['recovered'])} ({', '.join(c['search']['recovered']) or 'none'}). Units searched: "
             f"{', '.join(c['search']['candidates'])}.\n" for c in cases]
    return write_result("redundancy", command, {"environment": environment(), "seed": seed, "cases": cases,
                                                "scan": "newest full scan in " + str(out)}, "\n".join(lines), out)


def main(quick: bool, out: Path, command: str, seed: int = 0, only: str | None = None) -> Path:
    """Every single and pair removal on both prompts, the Faith-Shap view and the backup search; ``only="search"``
    runs the backup search alone against the newest full scan in ``out``."""
    from diffusiongemma.models import load_model

    lm = load_model(device="cpu")
    if only == "search":
        return _search_only(lm, out, command, seed)
    if only is not None:
        raise SystemExit(f"--only for redundancy is 'search', not {only!r}")
    cases = []
    for prompt, answer, foil in PROMPTS[:1] if quick else PROMPTS:
        cases.append(_case(lm, prompt, answer, foil, 1000 if quick else SHAPLEY_BUDGET, seed))
        print(_table(cases[-1:]), flush=True)
    return write_result("redundancy", command, {"environment": environment(), "seed": seed, "cases": cases},
                        _table(cases), out)
