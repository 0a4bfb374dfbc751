"""B2 — wall time per explanation at equal quality (BENCHMARKS.md), every method end to end, one process.

Same prompts (B1's 10- and 12-word sets, so exact Shapley values are known), same model, same target (the
greedy next token). Ours: ``diffusiongemma.explain`` at a ladder of budgets, giving our time-vs-error
curve. Peers through their own LLM wrappers as a user runs them: Captum ``LLMAttribution`` with
ShapleyValueSampling / KernelShap at a fixed evaluation budget and FeatureAblation at its default,
``LLMGradientAttribution`` with LayerIntegratedGradients at its defaults, and Inseq (occlusion, integrated
gradients) at its defaults where installed. Methods alternate order from prompt to prompt. Two figures per
peer: its time ÷ our time at 5 % error, and its time ÷ our time at *its own* error (our time interpolated
between the two measured budgets that bracket it). Plus whole-process times (model loading included) of
the ``diffusiongemma`` command against a Captum script, on one prompt.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import CountingForward, environment, write_result
from .gradient_peers import _to_units, captum_lig
from .prompts import with_words
from .tables import exact_tables, spearman


def _words(text: str) -> list[str]:
    words = text.split()
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _captum_perturbation(cls_name: str, **kw: Any) -> Callable[[Any], np.ndarray]:
    def method(game: Any) -> np.ndarray:
        import torch
        import captum.attr as ca

        lm, words = game.lm, _words(game.text)
        inp = ca.TextTemplateInput("{}" * len(words), values=words, baselines=[""] * len(words))
        llm = ca.LLMAttribution(getattr(ca, cls_name)(lm.model), lm.tokenizer)
        torch.manual_seed(0)
        res = llm.attribute(inp, target=torch.tensor(game.bound.description["tokens"]), **kw)
        return res.seq_attr.detach().float().cpu().numpy()

    return method


def _inseq(method_name: str) -> Callable[[Any], np.ndarray]:
    def method(game: Any) -> np.ndarray:
        import inseq

        model = inseq.load_model(game.lm.model, method_name, tokenizer=game.lm.tokenizer)
        out = model.attribute(game.text, game.text + game.bound.description["text"], show_progress=False)
        attr = out.sequence_attributions[0].target_attributions  # [L + 1, 1(, d)]; last row: the new token
        tokens = attr.reshape(attr.shape[0], -1).sum(-1)[:-1].float().numpy()  # [L]
        if len(tokens) != len(game.rendered.input_ids):
            raise RuntimeError("Inseq's tokenization differs from the game's")
        return _to_units(game, tokens)

    return method


def _peers(budget: int, n: int) -> dict[str, tuple[str, Callable[[Any], np.ndarray]]]:
    peers = {
        "Captum LLMAttribution + ShapleyValueSampling": (
            f"n_samples=⌊{budget}/n⌋", _captum_perturbation("ShapleyValueSampling", n_samples=max(1, budget // n))),
        "Captum LLMAttribution + KernelShap": (f"n_samples={budget}", _captum_perturbation("KernelShap", n_samples=budget)),
        "Captum LLMAttribution + FeatureAblation": ("defaults", _captum_perturbation("FeatureAblation")),
        "Captum LLMGradientAttribution + LayerIntegratedGradients": ("defaults (50 steps)", lambda g: captum_lig(g)[0]),
    }
    try:
        import inseq  # noqa: F401

        peers["Inseq occlusion"] = ("defaults", _inseq("occlusion"))
        peers["Inseq integrated_gradients"] = ("defaults", _inseq("integrated_gradients"))
    except ImportError:
        pass
    return peers


def _timed(lm: Any, fn: Callable[[], np.ndarray]) -> dict[str, Any]:
    with CountingForward(lm) as count:
        t0 = time.perf_counter()
        scores = np.asarray(fn(), dtype=float)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "rows": count.rows, "calls": count.calls, "scores": scores}


def _our_time_at(curve: list[tuple[float, float]], error: float) -> float | None:
    """Our time at ``error`` from measured (error, time) points, log-log interpolated; None if ours never
    gets that close; our cheapest time if the error is above all of ours (an upper bound on our time)."""
    pts = sorted(curve, key=lambda p: -p[0])  # error decreasing, time increasing
    if error >= pts[0][0]:
        return pts[0][1]
    for (e0, t0), (e1, t1) in zip(pts, pts[1:]):
        if e0 >= error >= e1:
            w = (np.log(error) - np.log(e0)) / (np.log(e1) - np.log(e0))
            return float(np.exp(np.log(t0) + w * (np.log(t1) - np.log(t0))))
    return None


def _whole_process(prompt: str, budget: int, n_samples: int) -> dict[str, float]:
    """Seconds from process start to exit: our command vs a Captum script, both loading the model."""
    from diffusiongemma.models.default_gemma import default_model_dir

    exe = Path(sys.executable).parent / "diffusiongemma"
    captum_script = (
        "import sys, torch, warnings; warnings.filterwarnings('ignore')\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "from captum.attr import LLMAttribution, ShapleyValueSampling, TextTemplateInput\n"
        f"d = {str(default_model_dir())!r}\n"
        "tok = AutoTokenizer.from_pretrained(d); model = AutoModelForCausalLM.from_pretrained(d).eval()\n"
        "ids = tok(sys.argv[1], return_tensors='pt').input_ids\n"
        "target = model(ids).logits[0, -1].argmax().reshape(1)\n"
        "w = sys.argv[1].split(); w = [x if i == 0 else ' ' + x for i, x in enumerate(w)]\n"
        "inp = TextTemplateInput('{}' * len(w), values=w, baselines=[''] * len(w))\n"
        f"print(LLMAttribution(ShapleyValueSampling(model), tok).attribute(inp, target=target, n_samples={n_samples}).seq_attr)\n")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in (
            ("ours", [str(exe), "explain", prompt, "--units", "words", "--budget", str(budget), "--device", "cpu",
                      "--json", f"{tmp}/a.json"]),
            ("captum_svs", [sys.executable, "-c", captum_script, prompt]),
        ):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            out[name] = time.perf_counter() - t0
    return out


def main(quick: bool, out: Path, command: str, seed: int = 0) -> Path:
    from diffusiongemma import explain, load_model, run
    from diffusiongemma.estimators.exact import ValueTable

    warnings.filterwarnings("ignore")
    lm = load_model(device="cpu")
    # B1 prompts (their exact tables are cached): harmful and benign 10-word ones, a harmful 12-word one
    ten, twelve = with_words(10, 10, seed), with_words(12, 10, seed)
    prompts = ten[:1] if quick else [ten[0], ten[5], twelve[0]]
    ladder, peer_budget = ((32, 128), 64) if quick else ((32, 64, 128, 256, 512, 1024), 256)
    tables = exact_tables(lm, prompts)
    rows: list[dict[str, Any]] = []
    settings: dict[str, str] = {}
    for k, t in enumerate(tables):
        exact = run(ValueTable(t["n"], t["values"]), "exact").scores
        jobs: list[tuple[str, Callable[[], np.ndarray]]] = [
            (f"ours budget {b}", lambda b=b, t=t: explain(t["prompt"], model=lm, units="words", budget=b,
                                                   seed=seed).scores)
            for b in ladder]
        jobs.append(("ours gradient budget 150", lambda t=t: explain(t["prompt"], model=lm, units="words", budget=150,
                                                                 method="gradient", seed=seed).scores))
        for name, (setting, fn) in _peers(peer_budget, t["n"]).items():
            settings[name] = setting
            jobs.append((name, lambda fn=fn, t=t: fn(t["game"])))
        for name, fn in (jobs if k % 2 == 0 else jobs[::-1]):
            print(f"[B2] prompt {k + 1}/{len(tables)}: {name}", flush=True)
            r = _timed(lm, fn)
            rows.append({"method": name, "prompt": k, "wall_s": r["wall_s"], "rows": r["rows"], "calls": r["calls"],
                         "rel_error": float(np.linalg.norm(r["scores"] - exact) / np.linalg.norm(exact)),
                         "spearman": spearman(r["scores"], exact)})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    mean = {m: {k: float(np.mean([r[k] for r in rows if r["method"] == m]))
                for k in ("wall_s", "rows", "calls", "rel_error", "spearman")} for m in methods}
    ours_curve = [(mean[f"ours budget {b}"]["rel_error"], mean[f"ours budget {b}"]["wall_s"]) for b in ladder]
    settings["ours gradient budget 150"] = "method='gradient' (50 levels, as LIG's 50 steps)"
    ours_5 = _our_time_at(ours_curve, 0.05)
    lines = ["| method | settings | wall time (s) | model rows | forward calls | rel. error vs exact Shapley | "
             "Spearman | peer ÷ ours at 5 % | peer ÷ ours at equal error |", "|---|" + "---|" * 8]
    ratios = {}
    for m in methods:
        s = mean[m]
        if m.startswith("ours"):
            extra = "– | – |"
        else:
            at_equal = _our_time_at(ours_curve, s["rel_error"])
            ratios[m] = {"at_5pct": s["wall_s"] / ours_5 if ours_5 else None,
                         "at_equal_error": s["wall_s"] / at_equal if at_equal else None}
            extra = " | ".join(f"**{v:.1f}×**" if v else "–" for v in ratios[m].values()) + " |"
        lines.append(f"| {m} | {settings.get(m, 'words, seed ' + str(seed))} | {s['wall_s']:.1f} | {s['rows']:.0f} | "
                     f"{s['calls']:.0f} | {s['rel_error']:.3f} | {s['spearman']:.2f} | " + extra)
    whole = _whole_process(tables[0]["prompt"], ladder[-2] if not quick else ladder[-1], max(1, peer_budget // tables[0]["n"]))
    table = (f"Mean over {len(tables)} prompts ({', '.join(sorted({str(t['n']) for t in tables}))} words), in-process "
             "(model loaded once), methods alternating order. Errors against exact Shapley values of our game "
             "(`remove` masks); when a peer's error is above all of ours, our cheapest measured time is used, so "
             "that ratio is a lower bound. Captum's wrapper deletes words from the text instead (positions shift), so part of "
             "its error is that difference. Our time at 5 % error: "
             + (f"{ours_5:.1f} s" if ours_5 else "not reached") + " (interpolated between measured budgets).\n\n"
             + "\n".join(lines)
             + f"\n\nWhole process, model loading included, prompt 1: `diffusiongemma explain` (budget "
             f"{ladder[-2] if not quick else ladder[-1]}) {whole['ours']:.1f} s; a Captum `LLMAttribution` + "
             f"ShapleyValueSampling script (n_samples={max(1, peer_budget // tables[0]['n'])}) {whole['captum_svs']:.1f} s.")
    payload = {"environment": environment(), "seed": seed, "quick": quick, "ladder": list(ladder),
               "peer_budget": peer_budget, "settings": settings,
               "prompts": [{k: v for k, v in t.items() if k not in ("values", "game")} for t in tables],
               "rows": rows, "mean": mean, "ours_time_at_5pct": ours_5, "ratios": ratios, "whole_process": whole}
    return write_result("wall_time" + ("-quick" if quick else ""), command, payload, table, out)
