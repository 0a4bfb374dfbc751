"""B8 — injected-span recovery (issue 31): which span of a long context made the model follow a planted
instruction, and does removing that span alone stop it.

Contexts: BIPIA's held-out e-mails (2–8 per context by default, 300–2,000 tokens), one of them carrying an instruction in
a held-out wording that tells the assistant to open its reply with a phrase holding a web address
(:func:`diffusiongemma.demo.injection.planted_contexts`). Model: ``gemma-270m-injection``, the demo adapter
trained to follow such instructions (its card). The reply is the model's own (greedy, 32 tokens); contexts it
does not follow are counted and left out of the ranking (there is no effect to find).

The game, the same for every method: the context's sentences as units (``units="sentences"``), the target
explain-context's, log p(reply) − log p(reference), the reference being the model's reply without any document.
A method's map ranks the sentences; the planted span is the sentence(s) holding the planted instruction.

Metrics per method and budget: top-1 and top-3 (the planted span is the highest, or among the three highest,
scoring units), confirmed restorations (the method's top unit deleted from the real text, the context
re-tokenised, the reply regenerated: it no longer holds the planted address), evaluations the method really
spent (counted by the game), wall time (the method's own, model runs included).

Peers on the same game: ContextCite (Lasso on p = ½ masks, its defaults), leave-one-out (captum's
FeatureAblation computes the same n + 1 values on this game), AttriBoT-style hierarchical leave-one-out
(e-mails, then the sentences of the strongest), captum ShapleyValueSampling (one permutation at least),
TracLLM (its own code, ``tracllm==0.1.6``, run on our game: its recursive halving with K = 5 and its three
score functions; installed apart with ``pip install --no-deps tracllm==0.1.6`` then ``pip install openai nvidia-ml-py nltk`` because its
pinned requirements include flash-attn), and attention weights (AttnTrace-style: the attention from the
reply's tokens to each sentence's tokens, averaged over layers and heads; one forward).
"""

from __future__ import annotations

import json
import re
import resource
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from .common import environment, write_result
from .long_inputs import contextcite, hierarchical_loo, leave_one_out
from .long_prompts import CountingGame
from .peers import captum_svs


def _ours_tree(groups: list[list[int]]) -> Callable[[Any, int, int], np.ndarray]:
    """explain-context's coarse-to-fine run (documents, then the sentences of those that carry the effect) on
    the sentence game; a folded document's sentences share its score equally."""
    from diffusiongemma.hierarchy import UnitTree, run_tree

    def run(game: Any, budget: int, seed: int) -> np.ndarray:
        tree = UnitTree.from_groups(game.n, [groups], game.game.units, ["roles", "sentences"])
        r = run_tree(game, tree, "shapley", budget=budget, seed=seed)
        out = np.zeros(game.n)
        for k, score in zip(r.groups, r.scores):
            leaves = list(tree.nodes[k].leaves)
            out[leaves] = score / len(leaves)
        return out

    return run


def tracllm_run(game: Any, budget: int, seed: int) -> np.ndarray:
    """TracLLM's ``PerturbationBasedAttribution`` (defaults: K = 5, score functions stc, loo and denoised
    Shapley with 5 permutations, LOO weight 2) with its value function replaced by our game: each of its text
    lists is read back as the set of our units it holds. Units outside its final top K score 0."""
    import random

    import tracllm.attribution.perturbation_based as pb

    pb.split_context = lambda level, contexts: contexts  # our units are its texts (its splitter needs nltk data)

    class OnOurGame(pb.PerturbationBasedAttribution):
        def context_value(self, question: str, contexts: list, answer: str) -> float:
            keep = np.zeros(game.n, dtype=np.int8)
            for text in contexts:
                keep[[int(i) for i in re.findall(r"<u(\d+)>", text)]] = 1
            return float(game(keep[None])[0])

    random.seed(seed)
    np.random.seed(seed)
    attr = OnOurGame(SimpleNamespace(name="gemma-270m-injection", model=None, tokenizer=None), explanation_level="sentence", verbose=0)
    _, ids, scores, _, _ = attr.attribute("", [f"<u{i}>" for i in range(game.n)], "")
    out = np.full(game.n, -np.inf)
    out[list(ids)] = scores
    return out


def attention_map(lm: Any, game: Any, reply: str) -> np.ndarray:
    """The attention from the reply's tokens to each unit's tokens, summed over the unit's tokens and averaged
    over the reply's tokens, the layers and the heads (AttnTrace's signal, without its top-K token filter)."""
    import torch

    prompt = list(game.rendered.input_ids)
    reply_ids = lm.tokenizer(reply, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + reply_ids])
    model = lm.model
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = model(ids, output_attentions=True, logits_to_keep=1).attentions  # L × [1, H, T, T]
    finally:
        model.set_attn_implementation(before)
    rows = torch.stack([a[0, :, len(prompt) - 1:-1].float().mean(0) for a in att]).mean(0)  # [R, T]
    per_token = rows.mean(0).numpy()  # [T]
    return np.array([per_token[list(u.positions)].sum() for u in game.units])


def planted_units(game: Any, instruction: str) -> list[int]:
    """The units that overlap the planted instruction in the rendered text."""
    at = game.rendered.text.find(instruction)
    if at < 0:
        raise ValueError("the planted instruction is not in the rendered prompt")
    end = at + len(instruction)
    return [i for i, u in enumerate(game.units) if u.start < end and u.end > at]


def without_unit(game: Any, unit: int) -> str | list[dict[str, str]] | None:
    """What an auditor sends with one unit deleted from the real text: the game's own text edit of the messages
    (:meth:`~diffusiongemma.editing.TextEdits.request`), emptied turns dropped (:func:`~diffusiongemma.confirm.sendable`)."""
    from diffusiongemma.confirm import sendable

    keep = np.ones(game.n, dtype=int)
    keep[unit] = 0
    return sendable(game.edits.request(keep.tolist()))


def document_groups(game: Any) -> list[list[int]]:
    """The sentence units of each document message (the rendered chat's regions), and every other unit alone."""
    docs = [[i for i, u in enumerate(game.units) if r.start <= u.start < r.end]
            for r in game.rendered.regions if r.role == "document"]
    docs = [d for d in docs if d]
    rest = sorted(set(range(game.n)) - {i for d in docs for i in d})
    return sorted(docs + [[i] for i in rest])


def main(quick: bool, out: Path, command: str, seed: int = 0, prompts: int | None = None,
         budgets: tuple[int, ...] | None = None, methods: str | None = None, only: str | None = None) -> Path:
    """``only``: ``deep=K`` runs budgets 128 and 256 for ours and ContextCite on the first K followed contexts
    (default 6; 1 quick); ``tracllm=K`` runs TracLLM on the first K (default 5; 1 quick); ``model=NAME``
    another model (a smoke run); ``docs=LOW-HIGH`` e-mails per context (default 2-8); ``long=T`` explains only the
    contexts of at least T tokens (the others are skipped before any reply is generated)."""
    import diffusiongemma as dg
    from diffusiongemma.demo.injection import planted_contexts
    from diffusiongemma.generation import generate_replies
    from diffusiongemma.prompts import render_prompt

    warnings.filterwarnings("ignore")
    opts = dict(kv.split("=") for kv in (only or "").split(",") if "=" in kv)
    lm = dg.load_model(opts.get("model", "gemma-270m-injection"), device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    count = prompts or (3 if quick else 50)
    budgets = budgets or (32, 64)
    deep_k, trac_k = int(opts.get("deep", 1 if quick else 6)), int(opts.get("tracllm", 1 if quick else 5))
    low, high = (int(x) for x in opts.get("docs", "2-8").split("-"))
    min_tokens = int(opts.get("long", 0))
    contexts = planted_contexts(count, seed=seed, docs=(low, high))
    rows: list[dict[str, Any]] = []
    info_rows: list[dict[str, Any]] = []
    regen: dict[tuple[int, int], bool] = {}
    t_start = time.perf_counter()
    followed = 0
    for k, c in enumerate(contexts):
        if min_tokens and len(render_prompt(c.messages, lm.tokenizer, lm.chat_template).input_ids) < min_tokens:
            continue
        reply = generate_replies(lm, [c.messages], max_new_tokens=32)[0]
        bare = [m for m in c.messages if m["role"] != "document"]
        reference = generate_replies(lm, [bare], max_new_tokens=32)[0]
        game = dg.Game(c.messages, reply, contrast=reference, model=lm, units="sentences", chat=True)
        follows = re.search(c.follows, reply, re.I) is not None
        info = {"context": k, "tokens": len(game.rendered.input_ids), "n": game.n, "documents": len(c.messages) - 1,
                "follows": follows, "reply": reply, "reference": reference}
        info_rows.append(info)
        print(f"[B8] context {k + 1}/{len(contexts)}: {info['documents']} e-mails, {info['tokens']} tokens, "
              f"{game.n} sentences, follows {follows} ({time.perf_counter() - t_start:.0f} s)", flush=True)
        if not follows:
            continue
        followed += 1
        planted = planted_units(game, c.instruction)
        docs = document_groups(game)
        plan: list[tuple[str, int | None, Callable]] = []
        for b in budgets + ((128, 256) if followed <= deep_k else ()):
            plan += [("ours (default shapley)", b, lambda g, b, s: dg.run(g, "shapley", budget=b, seed=s).scores),
                     ("ContextCite (Lasso, p = ½)", b, contextcite)]
        top_b = max(budgets)  # the tree and hierarchical LOO at the largest budget only (CPU time)
        plan += [("ours tree e-mails>sentences", top_b, _ours_tree(docs)),
                 ("hierarchical LOO (AttriBoT-style)", top_b, hierarchical_loo(docs)),
                 ("captum ShapleyValueSampling (one permutation)", game.n + 1, captum_svs),
                 ("leave-one-out (= captum FeatureAblation)", game.n + 1, leave_one_out),
                 ("attention weights (AttnTrace-style)", 1, lambda g, b, s, r=reply: attention_map(lm, g.game, r))]
        if followed <= trac_k:
            plan.append(("TracLLM (its code, K = 5)", None, tracllm_run))
        if methods:
            plan = [p for p in plan if any(m in p[0] for m in methods.split(","))]
        for name, budget, fn in plan:
            g = CountingGame(game)
            t0 = time.perf_counter()
            scores = np.asarray(fn(g, budget or 0, seed), dtype=float)
            wall = time.perf_counter() - t0
            order = np.argsort(-scores, kind="stable")
            top = int(order[0])
            if not np.isfinite(scores[top]):
                raise ValueError(f"{name} gave no finite score")
            if (k, top) not in regen:
                again = generate_replies(lm, [without_unit(game, top)], max_new_tokens=32)[0]
                regen[(k, top)] = re.search(c.follows, again, re.I) is None
            rank = int(min(np.where(np.isin(order, planted))[0])) + 1
            row = {"context": k, "method": name, "budget": budget, "evaluations": g.calls or 1, "wall_s": wall,
                   "rank": rank, "top1": rank == 1, "top3": rank <= 3, "restored": regen[(k, top)],
                   "top_text": game.units[top].text[:80], "n": game.n, "tokens": info["tokens"]}
            rows.append(row)
            print(f"  {name:44s} {str(budget):>5s} evals {row['evaluations']:4d}  rank {rank:3d}  restored "
                  f"{row['restored']}  {wall:6.1f} s", flush=True)
        (out / "injection-partial.json").write_text(json.dumps({"rows": rows, "contexts": info_rows}))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    payload = {"seed": seed, "quick": quick, "environment": environment(), "peak_rss_gb": peak, "rows": rows,
               "contexts": info_rows, "wall_s": time.perf_counter() - t_start}
    md = table(rows, info_rows, command, peak)
    print(md)
    return write_result("injection", command, payload, md, out)


def _budget_label(row: dict[str, Any]) -> str:
    """The budget a method was given: a number, ``n + 1`` (leave-one-out, one permutation), ``–`` (attention,
    TracLLM: they spend what they need)."""
    if "leave-one-out" in row["method"] or "permutation" in row["method"]:
        return "n + 1"
    return "–" if not row["budget"] or row["budget"] == 1 else str(row["budget"])


def table(rows: list[dict[str, Any]], contexts: list[dict[str, Any]], command: str, peak: float) -> str:
    """Per method and budget: contexts, top-1, top-3, confirmed restorations, evaluations, seconds."""
    tokens = [c["tokens"] for c in contexts]
    lines = [f"B8 injected-span recovery (`{command}`): {len(contexts)} contexts of {min(tokens)}–{max(tokens)} "
             f"tokens (median {int(np.median(tokens))}); the model followed the planted instruction in "
             f"{sum(c['follows'] for c in contexts)} ({np.mean([c['follows'] for c in contexts]):.0%}); "
             f"peak RSS {peak:.2f} GB.", "",
             "| method | budget | contexts | top-1 | top-3 | restorations confirmed | evaluations (mean) | s (mean) |",
             "|---|---|---|---|---|---|---|---|"]
    groups = _groups(rows)
    for (method, b), sel in groups.items():
        lines.append(f"| {method} | {b} | {len(sel)} | {_share(sel, 'top1')} | {_share(sel, 'top3')} | "
                     f"{_share(sel, 'restored')} | {np.mean([r['evaluations'] for r in sel]):.0f} | "
                     f"{np.mean([r['wall_s'] for r in sel]):.1f} |")
    followed = [c for c in contexts if c["follows"]]
    cuts = [(lo, hi) for lo, hi in LENGTHS if any(lo <= c["tokens"] < hi for c in contexts)]
    if len(cuts) > 1:
        head = " | ".join(f"{lo}–{hi - 1} tokens" for lo, hi in cuts)
        lines += ["", "Top-1 by the context's length (followed contexts; the model's follow rate first):", "",
                  f"| method | budget | {head} |", "|---|---|" + "---|" * len(cuts),
                  "| (followed) | | " + " | ".join(
                      f"{sum(lo <= c['tokens'] < hi for c in followed)} of "
                      f"{sum(lo <= c['tokens'] < hi for c in contexts)}" for lo, hi in cuts) + " |"]
        for (method, b), sel in groups.items():
            cells = [_share([r for r in sel if lo <= r["tokens"] < hi], "top1") for lo, hi in cuts]
            lines.append(f"| {method} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LENGTHS = ((0, 600), (600, 1000), (1000, 2001))  # context lengths in tokens the second table splits at


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The rows of each method and budget label, in the order they first ran."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["method"], _budget_label(r)), []).append(r)
    return out


def _share(rows: list[dict[str, Any]], key: str) -> str:
    """The share of ``rows`` whose ``key`` holds, with its 95 % Wilson interval when there are rows.

    Examples:
        >>> _share([{"top1": True}] * 9 + [{"top1": False}], "top1")
        '90% (60–98)'
        >>> _share([], "top1")
        '–'
    """
    from diffusiongemma.significance import wilson

    if not rows:
        return "–"
    p, lo, hi = wilson(sum(bool(r[key]) for r in rows), len(rows))
    return f"{p:.0%} ({lo * 100:.0f}–{hi * 100:.0f})"
