"""B3 — faithfulness of each method's map (BENCHMARKS.md), by the project's own ``faithfulness`` module.

On the B1 prompts (10- and 12-word AdvBench / Self-Instruct prompts, greedy next token of the real Gemma 3
270M, ``remove`` masks), every method's word map is judged by deletion and insertion AUC and by
comprehensiveness / sufficiency at 10 / 20 / 50 % of the words, all normalised by the clean and fully
masked values. Perturbation methods run on the exact value table of each prompt (so the budget is the
only difference); gradient and attention methods run on the model through Captum's LLM wrapper. The
curves are read from the same table, so they are exact for every method.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import environment, link, write_result
from .gradient_peers import GRADIENT_PEERS
from .peers import PEERS
from .prompts import with_words
from .tables import exact_tables

# metric -> True when higher is better
METRICS = {"deletion AUC": False, "insertion AUC": True, "comp@10%": True, "comp@20%": True, "comp@50%": True,
           "suff@10%": False, "suff@20%": False, "suff@50%": False}
OURS = "ours shapley (regression)"
REFERENCE = "exact Shapley (reference, 2^n ev.)"


def _sampling_methods(budget: int) -> dict[str, Callable[[Any, int], np.ndarray]]:
    from diffusiongemma import run

    chosen = ("captum ShapleyValueSampling", "captum KernelShap", "captum Lime", "captum FeatureAblation",
              "shapiq KernelSHAP")
    return {
        OURS: lambda g, s: run(g, "regression", budget=budget, seed=s).scores,
        "ours paired": lambda g, s: run(g, "paired", budget=budget, seed=s).scores,
        **{name: (lambda g, s, f=PEERS[name]: f(g, budget, s)) for name in chosen},
        "random order (floor)": lambda g, s: np.random.default_rng(1000 + s).permutation(g.n).astype(float),
    }


def _metrics(f: Any) -> dict[str, float]:
    return {"deletion AUC": f.deletion_auc, "insertion AUC": f.insertion_auc,
            **{f"comp@{k}": v for k, v in f.comprehensiveness.items()},
            **{f"suff@{k}": v for k, v in f.sufficiency.items()}}


def main(quick: bool, out: Path, command: str, seed: int = 0) -> Path:
    from diffusiongemma import load_model, run
    from diffusiongemma.estimators.exact import ValueTable
    from diffusiongemma.faithfulness import faithfulness

    warnings.filterwarnings("ignore")
    lm = load_model(device="cpu")
    sizes, per_size, seeds, budget = ((10,), 3, 2, 256) if quick else ((10, 12), 10, 3, 256)
    tables = exact_tables(lm, [p for n in sizes for p in with_words(n, per_size, seed)])
    sampling = _sampling_methods(budget)
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    t0 = time.perf_counter()
    for k, t in enumerate(tables):
        print(f"[B3] prompt {k + 1}/{len(tables)}: {time.perf_counter() - t0:.0f} s", flush=True)
        n, values = t["n"], t["values"]
        maps: list[tuple[str, int, np.ndarray, int]] = [
            (REFERENCE, 0, run(ValueTable(n, values), "exact").scores, 2**n)]
        for name, method in sampling.items():
            for s in range(seeds if name != "captum FeatureAblation" else 1):
                table = ValueTable(n, values)
                maps.append((name, seed + s, np.asarray(method(table, seed + s), float), table.calls))
        maps.append(("ours gradient", 0, run(t["game"], "gradient", budget=150, seed=seed).scores, 150))
        for name, method in GRADIENT_PEERS.items():
            scores, cost = method(t["game"])
            maps.append((name, 0, scores, cost))
        for name, s, scores, cost in maps:
            f = faithfulness(ValueTable(n, values), scores)
            rows.append({"method": name, "prompt": k, "seed": s, "evaluations": cost, **_metrics(f)})
            curves.setdefault(name, []).append((f.deletion, f.insertion))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    mean = {m: {k: float(np.mean([r[k] for r in rows if r["method"] == m])) for k in (*METRICS, "evaluations")}
            for m in methods}
    ranked = [m for m in methods if m != REFERENCE]
    ranks = {k: {m: 1 + sorted((mean[x][k] for x in ranked), reverse=hi).index(mean[m][k]) for m in ranked}
             for k, hi in METRICS.items()}
    mean_rank = {m: float(np.mean([ranks[k][m] for k in METRICS])) for m in ranked}
    head = "| method | mean ev. | " + " | ".join(f"{k} {'↑' if hi else '↓'}" for k, hi in METRICS.items())
    lines = [head + " | mean rank |", "|---|---|" + "---|" * (len(METRICS) + 1)]
    for m in methods:
        cells = [f"{mean[m][k]:.3f}" + (f" ({ranks[k][m]})" if m in ranks[k] else "") for k in METRICS]
        lines.append(f"| {m} | {mean[m]['evaluations']:.0f} | " + " | ".join(cells)
                     + (f" | {mean_rank[m]:.1f} |" if m in mean_rank else " | – |"))
    ours_ranks = {k: ranks[k][OURS] for k in METRICS}
    plot = _plot(curves, out)
    table = (f"Mean over {len(tables)} prompts ({', '.join(map(str, sizes))} words) × {seeds} seeds for sampling "
             f"methods (budget {budget} evaluations each); rank among the {len(ranked)} methods in brackets "
             "(the exact reference is not ranked). Curves normalised: clean prompt 1, all words removed 0. "
             "Gradient cost: 3 evaluations per forward+backward.\n\n" + "\n".join(lines)
             + "\n\n**Our rank (shapley, regression) per metric:** "
             + ", ".join(f"{k} {v}" for k, v in ours_ranks.items())
             + (f"\n\n![B3 curves]({link(plot)})" if plot else ""))
    payload = {"environment": environment(), "seed": seed, "quick": quick, "budget": budget,
               "prompts": [{k: v for k, v in t.items() if k not in ("values", "game")} for t in tables],
               "rows": rows, "mean": mean, "ranks": ranks, "mean_rank": mean_rank, "ours_ranks": ours_ranks}
    return write_result("faithfulness" + ("-quick" if quick else ""), command, payload, table, out)


def _plot(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    grid = np.linspace(0, 1, 41)
    for name, cs in curves.items():
        for ax, j in zip(axes, (0, 1)):
            ys = [np.interp(grid, np.linspace(0, 1, len(c[j])), c[j]) for c in cs]
            ax.plot(grid, np.mean(ys, axis=0), lw=2.5 if name.startswith("ours") else 1, label=name,
                    ls="--" if name == REFERENCE else "-")
    axes[0].set(title="deletion (lower is better)", xlabel="fraction of words removed, top first",
                ylabel="normalised target")
    axes[1].set(title="insertion (higher is better)", xlabel="fraction of words kept, top first")
    axes[1].legend(fontsize=7)
    fig.suptitle("B3: faithfulness on Gemma 3 270M (mean over prompts)")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "faithfulness.png"
    fig.savefig(path, dpi=120)
    return path
