"""``diffusiongemma refusal-direction``: fit the refusal direction of a model and save it.

    diffusiongemma refusal-direction --model gemma-270m-safety --out refusal-direction.safetensors
    diffusiongemma explain-refusal "..." --direction refusal-direction.safetensors --intervention ablate
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def refusal_direction(
    out: Path = typer.Option(..., help="Where to save the direction (safetensors, with its metadata)."),
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory applied on top of the model."),
    count: int = typer.Option(64, help="Requests per class (harmful: AdvBench + Do-Not-Answer; harmless: Self-Instruct + contrast), training splits."),
    positions: int = typer.Option(5, help="Candidate positions: the last N tokens of the rendered prompt."),
    seed: int = typer.Option(0, help="Seed of the request sample and of the train/validation split."),
) -> None:
    """Fit the refusal direction (difference of means, Arditi et al. 2024), choosing layer and position on a validation split."""
    import random

    from .common import load_for_cli
    from ..demo.datasets import load_demo_data
    from ..refusal.direction import fit_refusal_direction

    console = Console()
    lm = load_for_cli(model, adapter, None, console)
    data = load_demo_data()
    rng = random.Random(seed)
    harmful = rng.sample([r.text for r in data.harmful_train], count)
    harmless = rng.sample([r.text for r in data.benign_train], count)
    with console.status("reading activations and measuring ablations…"):
        d = fit_refusal_direction(lm, harmful, harmless, positions=positions, seed=seed)
    table = Table(title="candidates measured by ablation on the validation harmful requests")
    for col in ("layer", "position", "‖r‖", "val AUC", "refusal score drop"):
        table.add_column(col, justify="right")
    for c in [c for c in d.candidates if "ablation_drop" in c]:
        table.add_row(str(c["layer"]), str(c["position"]), f"{c['norm']:.2f}", f"{c['val_auc']:.3f}",
                      f"{c['ablation_drop']:+.3f}")
    console.print(table)
    v = d.validation
    console.print(f"chosen: layer {d.layer}, position {d.position}. Validation harmful refusal score "
                  f"{v['harmful_score']:+.2f} → {v['harmful_score'] - v['ablation_drop']:+.2f} with the direction "
                  f"ablated; harmless {v['harmless_score']:+.2f} → {v['harmless_score_with_addition']:+.2f} with it added.")
    console.print(f"saved: {d.save(out)}")


def jailbreak_diff(
    plain: Optional[str] = typer.Argument(None, help="The plain request."),
    jailbroken: Optional[str] = typer.Argument(None, help="The same request inside a jailbreak (or use --template)."),
    template: Optional[str] = typer.Option(None, help="A jailbreak template ({{ prompt }} marks the request), or a file holding one, wrapped around PLAIN."),
    pairs: Optional[Path] = typer.Option(None, help="JSONL of pairs: {\"plain\", \"jailbroken\"} or {\"plain\", \"template\"} per line."),
    out: Optional[Path] = typer.Option(None, help="With --pairs: a directory for pair-N.json and pair-N.html."),
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory applied on top of the model."),
    budget: int = typer.Option(128, help="Model evaluations per map (each of the two prompts)."),
    components: Optional[str] = typer.Option("heads+mlps", help="Component units to compare ('none' to skip); SAE features (features:L=SAE#K) are the plain request's most active, measured on both prompts."),
    component_budget: int = typer.Option(32, help="Gradient steps per component map."),
    direction: Optional[Path] = typer.Option(None, help="A refusal direction (from 'refusal-direction'): report its projection on both."),
    max_new_tokens: int = typer.Option(32, help="Reply length the refusal detector judges."),
    seed: int = typer.Option(0, help="Random seed."),
    checks: bool = typer.Option(True, help="Also check each map by its own minimal trigger sets and deletion curves (--no-checks: about a third of the model runs; the restoring set is still confirmed)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the diff as JSON."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write the diff as a self-contained HTML page."),
) -> None:
    """What a jailbreak changed: both decisions, template vs request units, suppressed refusal components, and the template units whose removal restores the refusal (confirmed)."""
    import json

    from .common import load_for_cli, read_direction
    from ..errors import InputError
    from ..jsontext import NotJSON, loads
    from ..report.jailbreak_html import render_jailbreak_html
    from ..refusal.jailbreak import jailbreak_diff as api_diff
    from ..refusal.jailbreak import wrap

    def template_text(t: str) -> str:
        p = Path(t)
        return p.read_text(encoding="utf-8") if len(t) < 4096 and p.is_file() else t

    jobs: list[tuple[str, str]] = []
    if pairs is not None:
        if plain or jailbroken:
            raise InputError("give PLAIN [JAILBROKEN] or --pairs, not both")
        if not pairs.is_file():
            raise InputError(f"pairs file not found: {pairs}")
        for n, line in enumerate(pairs.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = loads(line)
                jobs.append((rec["plain"], rec.get("jailbroken") or wrap(template_text(rec["template"]), rec["plain"])))
            except (NotJSON, KeyError, TypeError) as exc:
                Console(stderr=True).print(f"line {n} of {pairs} skipped: needs plain and jailbroken or template ({exc})")
        if not jobs:
            raise InputError(f"{pairs} holds no usable pair (each line: a JSON object with plain, and jailbroken or "
                             "template)")
    else:
        if not plain:
            raise InputError("give the plain request (and the jailbroken prompt or --template), or --pairs FILE")
        if (jailbroken is None) == (template is None):
            raise InputError("give exactly one of JAILBROKEN and --template")
        jobs.append((plain, jailbroken if jailbroken is not None else wrap(template_text(str(template)), plain)))
    chosen = read_direction(direction)
    console = Console()
    lm = load_for_cli(model, adapter, None, console)
    table = Table(title="jailbreak diff")
    for col in ("#", "plain", "jailbroken", "template Σ", "request Σ", "suppressed components",
                "refusal features (activation)", "restoring set"):
        table.add_column(col)
    results = []
    for k, (p, j) in enumerate(jobs, start=1):
        with console.status(f"pair {k}/{len(jobs)}: explaining both prompts…"):
            d = api_diff(p, j, model=lm, budget=budget, seed=seed, max_new_tokens=max_new_tokens,
                         components=None if components in (None, "none") else components,
                         component_budget=component_budget, direction=chosen, checks=checks)
        results.append(d)
        rs = d.restoring_set or {}
        split = d.split_scores()
        plain_refused, jb_refused = (bool((a.decision or {}).get("refused")) for a in (d.plain, d.jailbroken))
        table.add_row(str(k), f"{'refused' if plain_refused else 'complied'} {d.plain.v_full:+.2f}",
                      f"{'refused' if jb_refused else 'complied'} {d.jailbroken.v_full:+.2f}",
                      f"{split['template']:+.2f}", f"{split['request']:+.2f}",
                      "ranking only (gradient)" if d.components_ranking_only
                      else escape(", ".join(c["unit"] for c in d.suppressed[:5]) or "–"),
                      escape(", ".join(f"{c['unit']} {c['state']} ({c['act_plain']:.1f}→{c['act_jailbroken']:.1f})"
                                       for c in d.refusal_features[:5]) or "–"),
                      escape(("confirmed: " if rs.get("confirmed") else f"{rs.get('state', 'not confirmed')}: ") + " · ".join(rs.get("units", []))
                             if rs and not rs.get("skipped") else "–"))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"pair-{k}.json").write_text(json.dumps(d.to_dict(), indent=1) + "\n", encoding="utf-8")
            (out / f"pair-{k}.html").write_text(render_jailbreak_html(d), encoding="utf-8")
    console.print(table)
    if len(results) == 1:
        if json_path:
            json_path.write_text(json.dumps(results[0].to_dict(), indent=1) + "\n", encoding="utf-8")
            console.print(f"JSON: {json_path}")
        if html_path:
            html_path.write_text(render_jailbreak_html(results[0]), encoding="utf-8")
            console.print(f"HTML: {html_path}")
    elif out is not None:
        console.print(f"pages: {out}/pair-N.html")
