"""`diffusiongemma explain`: attribute the model's decision on a prompt to its units, with standard errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from .common import (ADAPTER, DEVICE, DTYPE, HTML, JSON, PROMPT_FILE, describe_if_features, err_console,
                     load_for_cli, method_option, read_prompt, read_reference, save_result, units_help)


def explain(
    prompt: Optional[str] = typer.Argument(None, help="The prompt text (or use --prompt-file)."),
    prompt_file: Optional[Path] = PROMPT_FILE,
    target: Optional[str] = typer.Option(None, help="Continuation to explain (default: the model's greedy next token)."),
    contrast: Optional[str] = typer.Option(None, help="Explain log p(target) - log p(contrast)."),
    target_direction: Optional[Path] = typer.Option(None, help="Explain the residual stream's projection on this direction file (from refusal-direction or harden) at its layer and position, instead of a continuation."),
    model: Optional[str] = typer.Option(None, help="Model directory, .gguf file or cached id (default Gemma 3 270M)."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("auto", help=units_help()),
    method: str = method_option(),
    schedule: Optional[str] = typer.Option(None, help="Override the noise schedule: shapley, banzhaf, fixed:T, beta:A,B."),
    mask: str = typer.Option("edit", help="edit (delete the units' text and tokenise again: what a hand edit sends), remove (drop their tokens from attention) or replace (by a baseline token)."),
    baseline: Optional[str] = typer.Option(None, help="replace: the baseline token text; component units: zero, mean or resample."),
    reference: Optional[Path] = typer.Option(None, help="Component units with --baseline mean: reference prompts, one per line."),
    counterfactual: Optional[str] = typer.Option(None, help="Component units with --baseline resample: the corrupted prompt (same token length) whose activations replace masked components."),
    budget: int = typer.Option(256, help="Model evaluations to spend."),
    seed: int = typer.Option(0, help="Random seed (fixes every sample)."),
    tolerance: Optional[float] = typer.Option(None, help="Stop when every standard error is below this."),
    chat: bool = typer.Option(False, help="Wrap the prompt as a user turn of the model's chat template."),
    system: Optional[str] = typer.Option(None, help="System prompt (implies --chat)."),
    faithfulness: bool = typer.Option(False, help="Check the map by deletion/insertion (about 2·min(n, 20) more evaluations)."),
    interactions: bool = typer.Option(False, help="Also show pair interactions among the 6 strongest units (shapley; no extra evaluations)."),
    triggers: bool = typer.Option(False, help="Also find the minimal trigger sets (removal flips / alone keeps the decision), checked by the model."),
    backups: int = typer.Option(0, help="Also search K units for a backup: each removed with every other unit; pairs whose joint removal does more than apart (n + K·(n−1) model runs)."),
    trigger_threshold: Optional[float] = typer.Option(None, help="Decision is value > this (default 0 for contrasts, else halfway)."),
    feature_labels: Optional[Path] = typer.Option(None, help="With features: units, a JSON of feature id → label (or a list of {index, description}, as Neuronpedia exports)."),
    json_path: Optional[Path] = JSON,
    html_path: Optional[Path] = HTML,
    device: Optional[str] = DEVICE,
    dtype: Optional[str] = DTYPE,
) -> None:
    """Attribute the model's decision on PROMPT to its units, with standard errors."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..api import check_request
    from ..api import explain as api_explain
    from ..report.terminal import print_attribution

    prompt = read_prompt(prompt, prompt_file)
    check_request(prompt, target=target, method=method, budget=budget)  # before the model loads
    labels = None
    if feature_labels is not None:
        from ..components.feature_notes import read_labels

        labels = read_labels(feature_labels)
    if target_direction is not None:
        from ..errors import InputError
        from ..refusal.projection import DirectionProjection

        if target is not None or contrast is not None:
            raise InputError("--target-direction replaces --target / --contrast; give one or the other")
    explained: Any = DirectionProjection(target_direction) if target_direction is not None else target
    console = Console()
    lm = load_for_cli(model, adapter, device, console, dtype)
    with Progress(TextColumn("evaluating masks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("masks", total=None)
        attr = api_explain(
            prompt, explained, contrast=contrast, model=lm, units=units, method=method, schedule=schedule,
            mask=mask, baseline=baseline, reference=read_reference(reference), counterfactual=counterfactual,
            budget=budget, seed=seed,
            tolerance=tolerance, chat=chat, system=system,
            faithfulness=faithfulness, interactions=interactions, triggers=triggers, backups=backups,
            trigger_threshold=trigger_threshold,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    describe_if_features(lm, attr, labels, console)
    print_attribution(attr, console)
    save_result(attr, json_path, html_path, console)


