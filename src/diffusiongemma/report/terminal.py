"""Terminal rendering of an Attribution with rich: the prompt coloured by score, and a table with error bars.

Examples:
    >>> from rich.console import Console
    >>> from diffusiongemma import explain
    >>> from diffusiongemma.models.tiny import example_model
    >>> import io
    >>> console = Console(file=io.StringIO(), record=True, width=100)
    >>> print_attribution(explain("Paris is the capital of", " France", model=example_model(), budget=16), console)
    >>> "Paris" in console.export_text()
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_attribution", "print_trace"]

_BAR = 20


def _style(score: float, scale: float) -> str:
    level = min(abs(score) / scale, 1.0) if scale > 0 else 0.0
    if level < 0.15:
        return ""
    return ("bold " if level > 0.6 else "") + ("red" if score > 0 else "blue")


def _bar(score: float, scale: float) -> str:
    half = int(round(_BAR / 2 * min(abs(score) / scale, 1.0))) if scale > 0 else 0
    left = " " * (_BAR // 2 - half) + "█" * half if score < 0 else " " * (_BAR // 2)
    right = "█" * half + " " * (_BAR // 2 - half) if score >= 0 else " " * (_BAR // 2)
    return left + "│" + right


def print_attribution(attr: Any, console: Console, top: int | None = None) -> None:
    """Print the heat-mapped prompt and the score table (all units, or the ``top`` largest). Only resolved
    units are coloured (see :mod:`diffusiongemma.significance`); the others are marked "not resolved"."""
    scale = float(np.max(np.abs(attr.scores))) if len(attr.scores) else 0.0
    sig = attr.significance
    heat, pos = Text(), 0
    for i in sorted(range(len(attr.units)), key=lambda k: attr.units[k].start):
        u = attr.units[i]
        if u.start < pos:
            continue
        heat.append(attr.text[pos:u.start])
        heat.append(attr.text[u.start:u.end], style=_style(float(attr.scores[i]), scale) if sig.resolved[i] else "dim")
        pos = u.end
    heat.append(attr.text[pos:])
    target = attr.target.get("text", "")
    if attr.target.get("contrast"):
        target = f"{target!r} vs {attr.target['contrast']!r}"
    else:
        target = repr(target)
    if attr.decision and "documents" in attr.decision:
        _print_context(attr.decision, console)
    elif attr.decision:
        d = attr.decision
        verdict = "REFUSED" if d.get("refused") else "complied"
        console.print(Text("Decision: ") + Text(verdict, style="bold red" if d.get("refused") else "bold green")
                      + Text(f"  (refusal detector on the {'logged' if d.get('reply_source') == 'given' else 'generated'} "
                             f"reply; refusal score {attr.v_full:+.3f})"))
        if d.get("disagrees"):
            console.print(Text(f"DISAGREEMENT: the refusal score says {d.get('score_says')}, the detector on the "
                               f"reply says {'refuse' if d.get('refused') else 'comply'}", style="bold yellow"))
        console.print(Text("Reply: ") + Text(repr(d.get("reply", "")), style="italic"))
        if d.get("components_skipped"):
            console.print(Text(f"components skipped: {d['components_skipped']}", style="yellow"))
        if d.get("components"):
            console.print(Text(f"top components ({d['components_settings']['method']}): ") + Text("  ".join(
                f"{c['unit']} {c['score']:+.3f}" for c in d["components"][:6])))
    console.print(Text(f"Target ({attr.target.get('kind')}): ") + Text(target, style="bold"))
    mask = attr.settings.get("mask")
    if mask and mask != "component":
        console.print(f"masks: {mask}" + (" (each masked value is the edited text's value)" if attr.settings.get(
            "exact_edits") else " — not a text edit: a masked value may differ from the edited text's value"))
    console.print(heat)
    table = Table(show_lines=False)
    for col, just in (("#", "right"), ("unit", "left"), ("score", "right"), ("± s.e.", "right"), ("", "left"),
                      ("", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    order = range(len(attr.units)) if top is None else [attr.units.index(u) for u, _, _ in attr.top(top)]
    for i in order:
        s, e = float(attr.scores[i]), float(attr.stderr[i])
        ok = bool(sig.resolved[i])
        table.add_row(str(i), Text(attr.units[i].text), Text(f"{s:+.4f}", style=_style(s, scale) if ok else "dim"),
                      f"{e:.4f}" if np.isfinite(e) else "–",
                      Text(_bar(s, scale), style=("red" if s > 0 else "blue") if ok else "dim"),
                      "" if ok else "not resolved")
    console.print(table)
    console.print(f"resolved: {int(sig.resolved.sum())} of {len(sig.resolved)} units (interval excludes 0 after "
                  f"Holm's correction over {len(sig.resolved)} units, α = {sig.alpha}); the others are not findings")
    if sig.advice(attr.evaluations):
        head = "ranking only: " if sig.ranking_only else "budget: "
        console.print(Text(head + str(sig.advice(attr.evaluations)), style="bold yellow"))
    console.print(
        f"v(all kept) = {attr.v_full:.4f}   v(all removed) = {attr.v_empty:.4f}   "
        f"efficiency gap = {attr.efficiency_gap:.2e}   {attr.evaluations} evaluations   {attr.wall_time:.1f} s"
    )
    _print_features(attr, console)
    if attr.interactions:
        console.print("strongest interactions (Faith-Shap; + together more than apart, − redundant):")
        for i, j, v in attr.interactions[:5]:
            console.print(Text(f"  {attr.units[i].text!r} × {attr.units[j].text!r}: {v:+.4f}"))
    if attr.backups is not None:
        b = attr.backups
        found = [p for p in b.pairs if p.redundant]
        console.print(f"backups ({b.evaluations} model runs, {len(b.candidates)} units searched): "
                      + (f"{len(found)} redundant pair(s)" if found else "no pair passes the redundancy rule")
                      + "; drop = v(all) − v(without)")
        for p in b.pairs[:5]:
            i, j = p.units
            console.print(Text(f"  {attr.units[i].text!r} + {attr.units[j].text!r}: drops {p.drop_i:+.3f} and "
                               f"{p.drop_j:+.3f} alone, {p.drop_both:+.3f} together"
                               + ("  (redundant)" if p.redundant else "")))
    for kind, t in (attr.triggers or {}).items():
        what = "removing" if kind == "necessary" else "keeping only"
        verdict = "flips" if kind == "necessary" else "keeps"
        names = ", ".join(repr(attr.units[i].text) for i in t.units) or "nothing"
        line = (f"{kind} trigger set: {what} {names} {verdict} the decision under the mask (value "
                f"{t.value_clean:.3f} → {t.value_after:.3f}, threshold {t.threshold:.3f}) — {t.state.upper()}")
        if t.value_edited is not None:
            line += f"; the edited text sent again: {t.value_edited:.3f}"
        if t.reply is not None:
            line += f"; regenerated reply {'judged as claimed' if t.reply_agrees else 'NOT judged as claimed'}: {t.reply[:60]!r}"
        console.print(Text(line, style="bold green" if t.confirmed else ""))
    f = attr.faithfulness
    if f is not None:
        console.print(
            f"faithfulness: deletion AUC {f.deletion_auc:.3f} (lower is better), insertion AUC "
            f"{f.insertion_auc:.3f} (higher is better), comprehensiveness "
            + ", ".join(f"{k} {v:.2f}" for k, v in f.comprehensiveness.items())
            + "; sufficiency " + ", ".join(f"{k} {v:.2f}" for k, v in f.sufficiency.items())
            + f"   ({f.evaluations} evaluations)"
        )
    for w in attr.warnings():
        if "disagree" not in w:  # the disagreement is shown under the decision
            console.print(Text("check: " + w, style="bold yellow"))


def print_trace(tr: Any, console: Console, top: int = 3) -> None:
    """One line per output token: its log-probability and its ``top`` prompt units (score ± s.e.)."""
    console.print(Text("Output" + (" (generated)" if tr.generated else "") + ": ") + Text(repr(tr.response), style="bold"))
    table = Table(show_lines=False)
    for col in ("#", "output token", "log p", f"top {top} prompt units (score ± s.e.)"):
        table.add_column(col)
    for k, tok in enumerate(tr.tokens):
        order = np.argsort(-np.abs(tr.scores[k]), kind="stable")[:top]
        cells = Text()
        for j, i in enumerate(order):
            s = float(tr.scores[k, i])
            cells.append(("  " if j else "") + repr(tr.units[i].text))
            cells.append(f" {s:+.3f}±{float(tr.stderr[k, i]):.3f}", style="red" if s > 0 else "blue")
        table.add_row(str(k), Text(repr(tok)), f"{float(tr.logprobs[k]):.2f}", cells)
    console.print(table)
    order = np.argsort(-np.abs(tr.total_scores), kind="stable")[:5]
    console.print(Text("whole output, strongest units: ") + Text(", ".join(
        f"{tr.units[i].text!r} {float(tr.total_scores[i]):+.3f}" for i in order)))
    console.print(f"{tr.evaluations} model evaluations (one pass per mask for all {len(tr.tokens)} output tokens), "
                  f"{tr.wall_time:.1f} s")


def _print_context(d: dict, console: Console) -> None:
    """The reply, its reference, and each message's score and verdict (explain-context)."""
    console.print(Text("Reply: ") + Text(repr(d.get("reply", "")), style="italic") + Text(f"  ({d.get('reply_source')})"))
    console.print(Text("Reference: ") + Text(repr(d.get("reference")), style="italic")
                  + Text(f"  ({d.get('reference_source')})")
                  + Text("  — the reply is the reference: nothing to contrast" if d.get("same_as_reference") else ""))
    if d.get("follows") and not d.get("follows_matches_reply"):
        console.print(Text(f"The reply does not match --follows {d['follows']!r}: regenerated replies are judged by "
                           "their closeness to the reply instead.", style="bold yellow"))
    if d.get("components_skipped"):
        console.print(Text(f"components skipped: {d['components_skipped']}", style="yellow"))
    if d.get("components"):
        console.print(Text(f"top components ({d['components_settings']['method']}): ") + Text("  ".join(
            f"{c['unit']} {c['score']:+.3f}" + ("" if c["resolved"] else " (not resolved)")
            for c in d["components"][:6])))
    if not d.get("documents"):
        return
    table = Table(title="the context, message by message")
    # an earlier turn is removed with the rest of its exchange (the turns still alternate), a document alone
    without = "reply without its exchange" if d.get("suspects") == "earlier turns" else "reply without it"
    for col, just in (("#", "right"), ("role", "left"), ("text", "left"), ("score ± s.e.", "right"),
                      (without, "left"), ("verdict", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in d["documents"]:
        se = "" if row["stderr"] is None else f" ± {row['stderr']:.3f}"
        score = f"{row['score']:+.3f}{se}" if row["resolved"] else f"not resolved{se}"
        text = row["text"] if len(row["text"]) <= 60 else row["text"][:57] + "..."
        table.add_row(str(row["index"]), row["role"], Text(text), score, Text(row.get("reply_without", "")[:60]),
                      row.get("verdict", ""))
    console.print(table)
    r = d.get("restoring")
    if r and r["state"] == "confirmed":
        console.print(Text("Removing ", style="bold") + Text(" + ".join(repr(u) for u in r["units"]))
                      + Text(" stops the reply: CONFIRMED", style="bold green")
                      + Text(f" (edited context sent again, reply regenerated: {r['reply'][:80]!r})"))
    elif r:
        console.print(Text(f"No removal of the {len(r['tried'])} strongest spans, one more at a time, stops the "
                           "reply (each edited context sent again, its reply regenerated and judged)."))


def _print_features(attr: Any, console: Console, top: int = 8) -> None:
    """What the strongest feature units respond to: their label and top-activating context."""
    notes = attr.settings.get("features") or {}
    if not notes:
        return
    console.print("features (label; strongest context over the project's prompts, the token in ⟦⟧):")
    for u, s, _ in attr.top(len(attr.units)):
        n = notes.get(u.text)
        if n is None:
            continue
        ctx = n["contexts"][0] if n["contexts"] else None
        console.print(Text(f"  {u.text} {s:+.3f}: " + (f"{n['label']}; " if n.get("label") else "")
                           + (f"{ctx['text']!r} ({ctx['activation']:.2f})" if ctx else "fires on none of them")))
        top -= 1
        if top == 0:
            break
