"""Command-line options that several commands share, defined once (the commands import them from here).

Example:
    >>> DEVICE.help.split(",")[0]
    'cpu'
"""

from __future__ import annotations

import typer

__all__ = ["PROMPT_FILE", "ADAPTER", "JSON", "HTML", "DEVICE", "DTYPE"]

PROMPT_FILE = typer.Option(None, help="Read the prompt from this file ('-' for stdin).")
ADAPTER = typer.Option(None, help="PEFT adapter directory applied on top of the model.")
JSON = typer.Option(None, "--json", help="Write the result as JSON.")
HTML = typer.Option(None, "--html", help="Write a self-contained HTML page.")
DEVICE = typer.Option(None, help="cpu, cuda, cuda:N, or auto: a model larger than one GPU spread over every GPU, then "
                      "CPU, then disk (accelerate's device_map). Default: cuda when present.")
DTYPE = typer.Option(None, help="float32 (default), bfloat16 or float16; targets are accumulated in float32.")
