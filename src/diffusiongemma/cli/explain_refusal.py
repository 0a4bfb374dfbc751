"""`diffusiongemma explain-refusal`: why did the model refuse (or comply)?"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import (ADAPTER, DEVICE, DTYPE, HTML, JSON, PROMPT_FILE, describe_if_features, load_for_cli,
                     method_option, read_direction, read_prompt, save_result)


def explain_refusal(
    prompt: Optional[str] = typer.Argument(None, help="The user's request (or use --prompt-file)."),
    prompt_file: Optional[Path] = PROMPT_FILE,
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("auto", help="auto (words up to 300, else sentences>words), tokens, words, sentences, spans:A-B,..., or a tree such as sentences>words (template markers are never units)."),
    method: str = method_option(),
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
    from ..refusal.forensics import explain_refusal as api_explain_refusal
    from ..report.terminal import print_attribution

    from ..api import check_request

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


