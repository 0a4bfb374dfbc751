"""``diffusiongemma verify-safety``: the six checks on a model, a verdict each, in the terminal, JSON, HTML.

    diffusiongemma verify-safety --model gemma-270m-keyword --html keyword.html
    diffusiongemma verify-safety --model my-model --harmful harmful.jsonl --benign safe.txt --json report.json
    diffusiongemma verify-safety --model gemma-270m-safety --harmful strongreject_dataset.csv   # a source never trained on
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def verify_safety_cmd(
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory applied on top of the model."),
    patch: Optional[Path] = typer.Option(None, help="A hardening patch file (from harden) applied to the model."),
    harmful: Optional[list[Path]] = typer.Option(None, help="Harmful requests: one per line, JSONL with prompt (and category), or CSV (StrongREJECT's too); repeat for several sources, each named by its file's stem in the generalization check."),
    reference: Optional[str] = typer.Option(None, help="The set that stands for the training distribution in the generalization check: a --harmful file's stem (default: the held-out demo requests)."),
    generalization: bool = typer.Option(True, help="Run the generalization check (refusal by source, category and phrasing style against the reference)."),
    benign: Optional[Path] = typer.Option(None, help="Safe prompts for over-refusal (default: 24 XSTest safe prompts)."),
    budget: int = typer.Option(32, help="Evaluations per word map."),
    component_budget: int = typer.Option(24, help="Evaluations per component map (gradient)."),
    components: str = typer.Option("heads+mlps", help="Component units of the consistency checks; add +direction:FILE to measure each category's share through a refusal direction."),
    features: str = typer.Option("auto", help="SAE feature units of the learned-features check (features:L=SAE#K, Gemma Scope or SAELens files); auto: the demo SAE of a demo model; none: skip."),
    seed: int = typer.Option(0, help="Seed of every sample."),
    threshold: float = typer.Option(0.0, help="A prompt is refused when its refusal score is above this."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write the report as a self-contained HTML page."),
    store: Optional[Path] = typer.Option(None, help="Also keep the report in this audit store (SQLite)."),
) -> None:
    """Verify that safety training stuck: keyword reliance, learned features, generalization, paraphrase and component consistency, over-refusal."""
    from .common import load_for_cli
    from ..verify.safety import read_prompt_file, verify_safety

    console = Console()
    if store:
        from ..audit.store import check_store

        check_store(store)  # before hours of work: a store the report could not be kept in
    from ..errors import InputError
    from ..verify.generalization import REFERENCE

    files = {p.stem: read_prompt_file(p) for p in harmful or []}
    if len(files) != len(harmful or []):
        raise InputError("two --harmful files have the same name; each source is named by its file's stem")
    if reference is not None and reference not in files:
        raise InputError(f"--reference {reference!r} is not the stem of a --harmful file "
                         f"({', '.join(files) or 'none given'})")
    harmful_sets = ({(f"{stem} / {c}" if len(files) > 1 else c): ps for stem, cats in files.items()
                     for c, ps in cats.items()} if files else None)
    safe = [p for ps in read_prompt_file(benign).values() for p in ps] if benign else None
    lm = load_for_cli(model, adapter, None, console, patch=patch)
    with console.status("checking…") as status:
        report = verify_safety(lm, harmful=harmful_sets, benign=safe, budget=budget, components=components,
                               features=None if features == "none" else features, sources=files or None,
                               generalize=generalization, reference=reference or REFERENCE,
                               component_budget=component_budget, seed=seed, threshold=threshold,
                               progress=lambda name: status.update(f"checking: {name}…"))
    table = Table(title=f"verify-safety {escape(report.model)}: {report.verdict}")
    for col in ("check", "verdict", "figures"):
        table.add_column(col)
    for c in report.checks:
        figures = "; ".join(f"{k}: {_fmt(v)}" for k, v in c.figures.items() if k not in ("phrasings",))
        table.add_row(c.name, c.verdict, escape(figures))
    console.print(table)
    console.print(f"overall: [bold]{report.verdict}[/bold]  ({report.wall_time:.0f} s)")
    if json_path:
        console.print(f"JSON: {report.to_json(json_path)}")
    if html_path:
        console.print(f"HTML: {report.to_html(html_path)}")
    if store:
        from ..audit.store import keep_report

        rid = keep_report(store, "verify-safety", model=report.model, verdict=report.verdict, summary=report.summary(),
                          report=report.to_dict())
        console.print(f"stored as report #{rid} in {store}")
