"""`diffusiongemma trace`: attribute every output token to the prompt's units."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import (ADAPTER, DEVICE, DTYPE, HTML, JSON, PROMPT_FILE, load_for_cli, method_option, read_prompt,
                     save_result)


def trace_cmd(
    prompt: Optional[str] = typer.Argument(None, help="The prompt (or use --prompt-file)."),
    prompt_file: Optional[Path] = PROMPT_FILE,
    response: Optional[str] = typer.Option(None, help="The output to trace (default: generate it greedily)."),
    model: Optional[str] = typer.Option(None, help="Model: a demo name, directory, .gguf or cached id (default Gemma 3 270M)."),
    adapter: Optional[str] = ADAPTER,
    units: str = typer.Option("words", help="tokens, words, sentences, spans:A-B,..."),
    method: str = method_option(exclude=("gradient",)),
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
    from ..report.terminal import print_trace
    from ..api import check_request
    from ..trace import check_trace_method, trace

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


