"""B5 — component attribution (BENCHMARKS.md): how well each method ranks heads, MLPs and neurons.

Units: all attention heads and MLPs of Gemma 3 270M (18 × 4 + 18 = 90), and the MLP neurons of one layer in
groups of 16 (2048 / 16 = 128 units). Target: the logit-difference contrast log p(answer) − log p(foil);
a masked component takes its mean over neutral reference sentences (mean ablation). Both are the usual
choice of circuit analysis and keep the game tame: under zero ablation of all 90 units log p(" Paris") falls
to −715 and random coalitions spread with a standard deviation of 63 nats, so no estimator's sample mean
settles (a 2,000-evaluation reference had a relative standard error of 1.1). Ground truths: exact
single-unit activation patching (n + 2 evaluations) and a high-budget Shapley reference (our regression
estimator at the ``PLAN``'s reference budget, another seed). Methods: ours (Shapley at several budgets, the
integrated gradient map), attribution patching (AtP: activation × gradient from one forward and one
backward, written here with plain hooks as TransformerLens / nnsight users compute it — an independent
implementation of what our ``gradient`` of the soft mask at ``m = 1`` is), Captum's ShapleyValueSampling
and shapiq's KernelSHAP at our largest budget. Metrics: Spearman, and top-10 recall by magnitude, against
each truth; cost in model evaluations (a forward + backward counts 3).

The features case (``--only features``, :mod:`bench.feature_case`): Shapley over SAE latents on the refusal
decision against single-feature ablation and attribution patching, exact Shapley as the truth.

Redundancy: the reference run's Faith-Shap pair interactions among its 16 strongest units (the most
negative: either one suffices), and the units whose Shapley value most exceeds their single-unit effect;
the candidate pairs are checked by running the model with each unit removed alone and with both removed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .common import environment, write_result
from .peers import PEERS
from .tables import spearman

PROMPTS = [("The Eiffel Tower is in the city of", " Paris", " London"),
           ("The capital of Japan is the city of", " Tokyo", " Beijing")]
REFERENCE = ["The weather today is mild and pleasant.", "She bought three apples at the market.",
             "In 1990 the company moved its offices to Berlin.", "Please send me the report by Friday.",
             "The river flows slowly through the valley.", "He plays the piano every evening after dinner.",
             "The museum opens at nine in the morning.", "Our team won the final match last year."]
# (prompt index, units, reference evaluations, our budgets). B5's criterion is Spearman >= 0.9 against the
# reference at <= 10 % of its evaluations; both estimates are noisy, so what that takes is an absolute budget:
# against a 10,000-evaluation reference (relative stderr 0.18 on heads+mlps) even the reference's own estimator at
# a tenth reaches only ~0.7 (the noise ceiling below). The heads+mlps references use 100,000 evaluations.
PLAN = [(0, "heads+mlps", 100_000, (1000, 10_000)), (1, "heads+mlps", 100_000, (1000, 10_000)),
        (0, "neurons:6/16", 10_000, (256, 512, 1000))]
QUICK_PLAN = [(0, "heads+mlps", 2000, (128, 256))]


def atp(game: Any) -> np.ndarray:
    """Attribution patching: Σ_t (a_t − baseline) · ∂f/∂a_t per component, from plain hooks that keep every
    site's activation and its gradient (one forward, one backward)."""
    lm, comps = game.lm, game.components
    from diffusiongemma.components.hooks import site_module
    from diffusiongemma.components.sites import model_dims

    _, n_heads, _ = model_dims(lm)
    acts: dict[tuple[str, int], torch.Tensor] = {}
    handles = []
    for kind, layer in {(c.kind, c.layer) for c in comps}:
        module = site_module(lm, kind, layer)
        if kind in ("head", "neuron"):
            def pre(m, args, key=(kind, layer)):
                acts[key] = args[0]
            handles.append(module.register_forward_pre_hook(pre))
        else:
            def post(m, inputs, out, key=(kind, layer)):
                acts[key] = out
            handles.append(module.register_forward_hook(post))
    conts = game.bound.continuations  # one token each here: the answer (and the foil)
    assert all(len(c) == 1 for c in conts), "this AtP reads one next-token position"
    try:
        ids = torch.tensor([game.rendered.input_ids])
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, -1].float(), -1)  # [V]
        value = logp[conts[0][0]] - (logp[conts[1][0]] if len(conts) > 1 else 0)
        keys = list(acts)
        grads = dict(zip(keys, torch.autograd.grad(value, [acts[k] for k in keys])))
    finally:
        for h in handles:
            h.remove()
    out = []
    for c in comps:
        key = (c.kind, c.layer)
        a, g = acts[key].detach()[0], grads[key][0]  # [T, width]
        base = game.baselines.get(c)
        if c.kind == "head":
            a, g = a.view(a.shape[0], n_heads, -1)[:, c.index], g.view(g.shape[0], n_heads, -1)[:, c.index]
        elif c.kind == "neuron":
            a, g = a[:, c.neurons.start: c.neurons.stop], g[:, c.neurons.start: c.neurons.stop]
        out.append(float(((a - (0 if base is None else base.float())) * g).sum()))
    return np.array(out)


def recall10(scores: np.ndarray, truth: np.ndarray) -> float:
    """Share of the truth's 10 largest-magnitude units among the method's 10 largest."""
    top = lambda x: set(np.argsort(-np.abs(x))[:10].tolist())  # noqa: E731
    return len(top(scores) & top(truth)) / 10


def _redundancy(game: Any, ref: Any, ablation: np.ndarray) -> list[dict[str, Any]]:
    """Redundant pairs, checked by running the model: the 5 most negative interaction indices of the
    reference, and the 3 strongest joint effects among the 12 units whose Shapley value most exceeds their
    single-unit effect (the mark of a unit that another one backs up)."""
    from itertools import combinations

    full = float(game(np.ones((1, game.n)))[0])
    by_index = [(i, j, float(b), "interaction index") for i, j, b in sorted(ref.interactions or [], key=lambda p: p[2])[:5]]
    gap = np.abs(ref.scores) - np.abs(ablation)
    cand = np.argsort(-gap)[:12].tolist()
    pairs = list(combinations(sorted(cand), 2))
    masks = np.ones((len(pairs), game.n))
    for r, (i, j) in enumerate(pairs):
        masks[r, [i, j]] = 0
    joint = full - game(masks)
    synergy = np.abs(joint) - np.abs(ablation[[i for i, _ in pairs]]) - np.abs(ablation[[j for _, j in pairs]])
    by_gap = [(pairs[r][0], pairs[r][1], None, "Shapley − patching gap") for r in np.argsort(-synergy)[:3]]
    rows = []
    for i, j, b, found in by_index + by_gap:
        masks = np.ones((3, game.n))
        masks[0, i] = masks[1, j] = 0
        masks[2, [i, j]] = 0
        vi, vj, vij = game(masks)
        rows.append({"pair": [game.units[i].text, game.units[j].text], "found by": found, "interaction": b,
                     "drop_i": full - float(vi), "drop_j": full - float(vj), "drop_both": full - float(vij),
                     "shapley_i": float(ref.scores[i]), "shapley_j": float(ref.scores[j])})
    return rows


def noise_ceiling(scores: np.ndarray, stderr: np.ndarray, noise: float, draws: int = 500,
                  seed: int = 0) -> float:
    """Expected Spearman against a reference (``scores`` with per-unit ``stderr``) of an estimator whose noise
    is ``noise`` × the reference's own (0: the true values; √10: the reference's estimator at a tenth of its
    evaluations), both Gaussian around the truth, the truth taken as the reference (a simulation).

    Example:
        >>> round(noise_ceiling(np.arange(10.0), np.full(10, 1e-6), 1.0), 3)
        1.0
    """
    rng = np.random.default_rng(seed)
    return float(np.mean([spearman(scores + stderr * rng.standard_normal(len(scores)),
                                   scores + noise * stderr * rng.standard_normal(len(scores)))
                          for _ in range(draws)]))


def _case(lm: Any, prompt: str, answer: str, foil: str, units: str, budgets: tuple[int, ...], ref_budget: int,
          seed: int) -> dict[str, Any]:
    from diffusiongemma import run
    from diffusiongemma.components import ComponentGame

    game = ComponentGame(prompt, answer, contrast=foil, model=lm, units=units, baseline="mean", reference=REFERENCE)
    t = time.time()
    ref = run(game, "regression", budget=ref_budget, seed=seed + 100, interactions=16)
    ref_time = time.time() - t
    ablation = run(game, "ablation").scores
    truths = {"ablation": ablation, "shapley reference": ref.scores}
    methods: dict[str, tuple[np.ndarray, int, float]] = {}

    def timed(name: str, cost: int, fn: Any) -> None:
        t0 = time.time()
        methods[name] = (np.asarray(fn(), dtype=float), cost, time.time() - t0)

    timed("exact single-unit patching", game.n + 2, lambda: ablation)
    timed("AtP (activation × gradient, plain hooks)", 3, lambda: atp(game))
    timed("ours: gradient of the soft mask at m = 1", 3, lambda: game.gradient(np.ones((1, game.n)))[1][0])
    timed("ours: integrated gradient map (96)", 96, lambda: run(game, "gradient", schedule="shapley", budget=96,
                                                                seed=seed).scores)
    for b in budgets:
        timed(f"ours: shapley ({b})", b, lambda b=b: run(game, "regression", budget=b, seed=seed).scores)
    for peer in ("captum ShapleyValueSampling", "shapiq KernelSHAP"):
        timed(f"{peer} ({budgets[-1]})", budgets[-1], lambda peer=peer: PEERS[peer](game, budgets[-1], seed))
    rows = [{"method": name, "evaluations": cost, "seconds": round(sec, 2),
             **{f"spearman vs {t}": spearman(s, truth) for t, truth in truths.items()},
             **{f"top10 vs {t}": recall10(s, truth) for t, truth in truths.items()}}
            for name, (s, cost, sec) in methods.items()]
    ref_rel_se = float(np.linalg.norm(ref.stderr) / max(np.linalg.norm(ref.scores), 1e-12))
    return {"prompt": prompt, "answer": answer, "foil": foil, "units": units, "baseline": "mean",
            "v_full": float(ref.v_full), "v_empty": float(ref.v_empty), "n": game.n, "reference_budget": ref_budget,
            "reference_seconds": round(ref_time, 1), "reference_relative_stderr": ref_rel_se,
            "reference_efficiency_gap": float(ref.scores.sum() - (ref.v_full - ref.v_empty)),
            "ceiling_spearman_truth": noise_ceiling(ref.scores, ref.stderr, 0.0),
            "ceiling_spearman_tenth": noise_ceiling(ref.scores, ref.stderr, float(np.sqrt(ref_budget / budgets[-1]))),
            "largest_budget": budgets[-1],
            "atp_vs_our_gradient_max_abs_diff": float(np.abs(methods["AtP (activation × gradient, plain hooks)"][0]
                                                             - methods["ours: gradient of the soft mask at m = 1"][0]).max()),
            "rows": rows, "labels": [u.text for u in game.units], "reference": ref.scores.tolist(),
            "ablation": ablation.tolist(), "redundancy": _redundancy(game, ref, ablation)}


def _table(cases: list[dict[str, Any]]) -> str:
    lines = []
    for c in cases:
        lines += [f"**{c['units']}** ({c['n']} units, mean ablation), `{c['prompt']}` → `{c['answer']}` vs "
                  f"`{c['foil']}` (v(all) {c['v_full']:.2f}, v(none) {c['v_empty']:.2f}). Shapley reference: "
                  f"{c['reference_budget']} evaluations ({c['reference_seconds']} s), relative stderr "
                  f"{c['reference_relative_stderr']:.3f}; AtP and our m = 1 gradient agree to "
                  f"{c['atp_vs_our_gradient_max_abs_diff']:.1e}. Noise ceiling (simulated from the "
                  f"reference's stderr): the true values would reach Spearman {c['ceiling_spearman_truth']:.3f} "
                  f"against this reference, and the reference's own estimator at our largest budget ({c['largest_budget']}) "
                  f"{c['ceiling_spearman_tenth']:.3f}.", "",
                  "| method | evaluations | Spearman vs patching | top-10 vs patching | Spearman vs Shapley ref | "
                  "top-10 vs Shapley ref |", "|---|---|---|---|---|---|"]
        for r in c["rows"]:
            lines.append(f"| {r['method']} | {r['evaluations']} | {r['spearman vs ablation']:.3f} | "
                         f"{r['top10 vs ablation']:.1f} | {r['spearman vs shapley reference']:.3f} | "
                         f"{r['top10 vs shapley reference']:.1f} |")
        lines += ["", "Most redundant pairs by the reference's interaction index, checked by the model (drop of "
                  "the target when removed):", "",
                  "| pair | found by | interaction | Shapley i, j | drop i | drop j | drop both |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {' + '.join(r['pair'])} | {r['found by']} | "
                  f"{'—' if r['interaction'] is None else format(r['interaction'], '.3f')} | "
                  f"{r['shapley_i']:.3f}, {r['shapley_j']:.3f} | {r['drop_i']:.3f} | {r['drop_j']:.3f} | "
                  f"{r['drop_both']:.3f} |" for r in c["redundancy"]]
        lines.append("")
    return "\n".join(lines)


def main(quick: bool, out: Path, command: str, seed: int = 0, only: str | None = None) -> Path:
    """Run the plan (``only``: the 1-based case numbers to run, e.g. ``"2,3"``: a case of 100,000 reference
    evaluations takes ~40 minutes on 2 cores, so the cases can go in separate runs; ``"features"``: the SAE
    features case of :mod:`bench.feature_case`, on the safety demo model)."""
    from diffusiongemma.models import load_model

    if only == "features":
        from .feature_case import PROMPTS as FEATURE_PROMPTS
        from .feature_case import feature_case, feature_table

        safety = load_model("gemma-270m-safety", device="cpu")
        fcases = []
        for p in FEATURE_PROMPTS[:1] if quick else FEATURE_PROMPTS:
            fcases.append(feature_case(safety, p, seed))
            print(feature_table(fcases[-1:]), flush=True)
        return write_result("component_attribution", command, {"environment": environment(), "seed": seed,
                                                                "features": fcases}, feature_table(fcases), out)

    plan = QUICK_PLAN if quick else PLAN
    if only:
        plan = [plan[int(k) - 1] for k in only.split(",")]
    lm = load_model(device="cpu")
    cases = []
    for k, units, ref_budget, budgets in plan:
        prompt, answer, foil = PROMPTS[k]
        cases.append(_case(lm, prompt, answer, foil, units, budgets, ref_budget, seed))
        print(_table(cases[-1:]), flush=True)
    payload = {"environment": environment(), "seed": seed, "cases": cases}
    return write_result("component_attribution", command, payload, _table(cases), out)
