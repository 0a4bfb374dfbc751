"""The command line. It only calls the public API.

    diffusiongemma explain "The river bank was" --target " muddy" --html out.html
    diffusiongemma explain-refusal "How do I pick a lock?" --html why.html
    diffusiongemma demo train --variant safety --out DIR
    diffusiongemma targets

Errors a user can cause print one sentence and exit with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from .cli_common import (ADAPTER, DEVICE, DTYPE, HTML, JSON, PROMPT_FILE, load_for_cli, read_direction,
                         read_prompt, read_reference, save_result)
from .errors import DiffusionGemmaError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="DiffusionGemma: which parts of a prompt drove a language model's decision.")
_err = Console(stderr=True)


@app.command()
def explain(
    prompt: Optional[str] = typer.Argument(None, help="The prompt text (or use --prompt-file)."),
    prompt_file: Optional[Path] = PROMPT_FILE,
    target: Optional[str] = typer.Option(None, help="Continuation to explain (default: the model's greedy next token)."),
    contrast: Optional[str] = typer.Option(None, help="Explain log p(target) - log p(contrast)."),
    target_direction: Optional[Path] = typer.Option(None, help="Explain the residual stream's projection on this direction file (from refusal-direction or harden) at its layer and position, instead of a continuation."),
    model: Optional[str] = typer.Option(None, help="Model directory, .gguf file or cached id (default Gemma 3 270M)."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("auto", help="auto (words up to 300, else sentences>words), tokens, words, sentences, roles, spans:A-B,C-D (+special for template markers), a tree from coarse to fine such as sentences>words; or components: heads, mlps, layers, neurons:L or neurons:L/G (groups of G), direction:FILE joined by +, @A-B for layers, @last/@lastK/@tokA-B for positions."),
    method: str = typer.Option("shapley", help="shapley (picks gp, owen or regression by units and budget), banzhaf, paired, regression, kadd, gp, owen, exact, ablation (one at a time) or gradient (fast saliency)."),
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

    from .api import check_request
    from .api import explain as api_explain
    from .report.terminal import print_attribution

    prompt = read_prompt(prompt, prompt_file)
    check_request(prompt, target=target, method=method, budget=budget)  # before the model loads
    labels = None
    if feature_labels is not None:
        from .components.feature_notes import read_labels

        labels = read_labels(feature_labels)
    if target_direction is not None:
        from .errors import InputError
        from .refusal.projection import DirectionProjection

        if target is not None or contrast is not None:
            raise InputError("--target-direction replaces --target / --contrast; give one or the other")
    explained: Any = DirectionProjection(target_direction) if target_direction is not None else target
    console = Console()
    lm = load_for_cli(model, adapter, device, console, dtype)
    with Progress(TextColumn("evaluating masks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err, transient=True) as bar:
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


def describe_if_features(lm: Any, attr: Any, labels: Any, console: Console) -> None:
    """When the map's units are SAE features, what each responds to (top contexts, cached per SAE; labels)."""
    if any(u.role == "feature" for u in attr.units):
        from .components.feature_notes import describe_features

        with console.status("describing the features (top-activating contexts, cached)…"):
            describe_features(lm, attr, labels)


@app.command("explain-refusal")
def explain_refusal(
    prompt: Optional[str] = typer.Argument(None, help="The user's request (or use --prompt-file)."),
    prompt_file: Optional[Path] = PROMPT_FILE,
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("auto", help="auto (words up to 300, else sentences>words), tokens, words, sentences, spans:A-B,..., or a tree such as sentences>words (template markers are never units)."),
    method: str = typer.Option("shapley", help="shapley, banzhaf, paired, regression, kadd, gp, owen, exact or gradient."),
    budget: int = typer.Option(128, help="Model evaluations for the map (trigger search and checks count apart)."),
    seed: int = typer.Option(0, help="Random seed."),
    system: Optional[str] = typer.Option(None, help="System prompt before the request."),
    max_new_tokens: int = typer.Option(48, help="Length of the generated reply the refusal detector judges."),
    direction: Optional[Path] = typer.Option(None, help="A refusal direction (from 'refusal-direction') to intervene with."),
    intervention: str = typer.Option("ablate", help="With --direction: ablate (project it out everywhere) or add."),
    alpha: float = typer.Option(1.0, help="With --intervention add: how many times the direction to add."),
    patch: Optional[Path] = typer.Option(None, help="A hardening patch file (from harden) applied to the model."),
    json_path: Optional[Path] = JSON,
    html_path: Optional[Path] = HTML,
    device: Optional[str] = DEVICE,
    dtype: Optional[str] = DTYPE,
) -> None:
    """Why did the model refuse (or comply)? Decision, refusal score, map, confirmed minimal flip set, faithfulness."""
    from .refusal.forensics import explain_refusal as api_explain_refusal
    from .report.terminal import print_attribution

    from .api import check_request

    prompt = read_prompt(prompt, prompt_file)
    check_request(prompt, method=method, budget=budget)  # bad input fails before the model loads
    chosen_direction = read_direction(direction)  # bad input fails before the model loads
    console = Console()
    lm = load_for_cli(model, adapter, device, console, dtype, patch)
    with console.status("generating the reply and attributing the refusal score…"):
        attr = api_explain_refusal(prompt, model=lm, units=units, method=method, budget=budget, seed=seed,
                                   system=system, max_new_tokens=max_new_tokens, intervention=intervention,
                                   alpha=alpha, direction=chosen_direction)
    describe_if_features(lm, attr, None, console)
    print_attribution(attr, console)
    save_result(attr, json_path, html_path, console)


@app.command("trace")
def trace_cmd(
    prompt: Optional[str] = typer.Argument(None, help="The prompt (or use --prompt-file)."),
    prompt_file: Optional[Path] = PROMPT_FILE,
    response: Optional[str] = typer.Option(None, help="The output to trace (default: generate it greedily)."),
    model: Optional[str] = typer.Option(None, help="Model: a demo name, directory, .gguf or cached id (default Gemma 3 270M)."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("words", help="tokens, words, sentences, spans:A-B,..."),
    method: str = typer.Option("shapley", help="shapley, banzhaf, paired, regression, kadd, gp, owen or exact."),
    budget: int = typer.Option(256, help="Model evaluations (each teacher-forces the whole output once)."),
    seed: int = typer.Option(0, help="Random seed."),
    chat: bool = typer.Option(True, help="Render the prompt as a user turn (--no-chat: plain continuation)."),
    system: Optional[str] = typer.Option(None, help="System prompt (chat only)."),
    max_new_tokens: int = typer.Option(32, help="Length of the generated output when none is given."),
    json_path: Optional[Path] = JSON,
    html_path: Optional[Path] = HTML,
    device: Optional[str] = DEVICE,
    dtype: Optional[str] = DTYPE,
) -> None:
    """Attribute every output token to the prompt's units (all output tokens in one pass per mask)."""
    from .report.terminal import print_trace
    from .api import check_request
    from .trace import check_trace_method, trace

    prompt = read_prompt(prompt, prompt_file)
    check_request(prompt, budget=budget)
    check_trace_method(method)
    console = Console()
    lm = load_for_cli(model, adapter, device, console, dtype)
    with console.status("tracing the output…"):
        tr = trace(prompt, response, model=lm, units=units, method=method, budget=budget, seed=seed, chat=chat,
                   system=system, max_new_tokens=max_new_tokens)
    print_trace(tr, console)
    save_result(tr, json_path, html_path, console)


@app.command()
def targets() -> None:
    """List the registered targets."""
    from .targets import TARGETS

    console = Console()
    for name, cls in TARGETS.items():
        console.print(f"[bold]{name}[/bold]  {cls.help}")


def _add_subcommands() -> None:
    from .audit.cli import audit, audit_report
    from .audit.diff_cli import audit_diff
    from .audit.bundle_cli import export_cmd, verify_bundle_cmd
    from .demo.cli import app as demo_app
    from .refusal.cli import jailbreak_diff, refusal_direction
    from .harden.cli import harden_cmd
    from .verify.cli import verify_safety_cmd
    from .context.cli import explain_context_cmd

    app.add_typer(demo_app, name="demo")
    app.command("refusal-direction")(refusal_direction)
    app.command("jailbreak-diff")(jailbreak_diff)
    app.command("audit")(audit)
    app.command("audit-report")(audit_report)
    app.command("audit-diff")(audit_diff)
    app.command("export")(export_cmd)
    app.command("verify-bundle")(verify_bundle_cmd)
    app.command("verify-safety")(verify_safety_cmd)
    app.command("explain-context")(explain_context_cmd)
    app.command("harden")(harden_cmd)


_add_subcommands()


def main() -> None:
    """Entry point of the ``diffusiongemma`` console script."""
    try:
        app()
    except DiffusionGemmaError as exc:  # raised inside a command: one sentence, exit code 2
        sys.stderr.write(f"error: {exc}\n")  # one line, never wrapped
        sys.exit(2)


if __name__ == "__main__":
    main()
