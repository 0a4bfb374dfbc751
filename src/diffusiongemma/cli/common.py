"""What several commands share, defined once: their options, reading a prompt or a direction file, loading the
model quietly, writing JSON and HTML. The command modules import from here (never from the package root).

Examples:
    >>> DEVICE.help.split(",")[0]
    'cpu'
    >>> read_prompt("Why is the sky blue?", None)
    'Why is the sky blue?'
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

__all__ = ["PROMPT_FILE", "ADAPTER", "JSON", "HTML", "DEVICE", "DTYPE", "read_prompt", "save_result", "load_for_cli",
           "read_reference", "read_direction", "quiet_transformers", "describe_if_features", "err_console",
           "method_option"]

err_console = Console(stderr=True)  # progress bars and notes that must not mix into a command's stdout

PROMPT_FILE = typer.Option(None, help="Read the prompt from this file ('-' for stdin).")
ADAPTER = typer.Option(None, help="PEFT adapter directory applied on top of the model.")
JSON = typer.Option(None, "--json", help="Write the result as JSON.")
HTML = typer.Option(None, "--html", help="Write a self-contained HTML page.")
DEVICE = typer.Option(None, help="cpu, cuda, cuda:N, or auto: a model larger than one GPU spread over every GPU, then "
                      "CPU, then disk (accelerate's device_map). Default: cuda when present.")


def units_help() -> str:
    """``--units``'s help, its kinds read from the one unit-kind registry (:data:`diffusiongemma.units.UNIT_KINDS`).

    Examples:
        >>> "neurons:L" in units_help() and "sentences" in units_help()
        True
    """
    from ..components.sites import COMPONENT_KINDS
    from ..units import UNIT_KINDS

    text = ", ".join(k for k, v in UNIT_KINDS.items() if v.domain == "text" and k != "spans")
    return (f"auto (words up to 300, else sentences>words), {text}, spans:A-B,C-D (+special for template markers), a "
            f"tree from coarse to fine such as sentences>words; or components: {', '.join(COMPONENT_KINDS)} joined "
            "by + (neurons:L/G: groups of G; features:L=SAE#K: the K most active latents), @A-B for layers, "
            "@last/@lastK/@tokA-B for positions.")


def method_option(default: str = "shapley", *, exclude: tuple[str, ...] = ()) -> Any:
    """The ``--method`` option, its choices read from the registry (:data:`diffusiongemma.api.METHODS`).

    Examples:
        >>> "owen" in method_option().help and "gradient" not in method_option(exclude=("gradient",)).help
        True
    """
    from ..api import METHODS

    names = [m for m in METHODS if m not in exclude]
    notes = {"shapley": "picks gp, owen or regression by units and budget", "ablation": "one unit at a time",
             "gradient": "the fast saliency map"}
    said = "; ".join(f"{m} {notes[m]}" for m in names if m in notes)
    return typer.Option(default, help=f"One of {', '.join(names)}. {said}.")


DTYPE = typer.Option(None, help="float32 (default), bfloat16 or float16; targets are accumulated in float32.")


def read_prompt(prompt: Optional[str], prompt_file: Optional[Path]) -> str:
    """The prompt from the argument or from a file, exactly one of them."""
    from ..errors import InputError

    if (prompt is None) == (prompt_file is None):
        raise InputError("give the prompt either as an argument or with --prompt-file, not both or neither")
    if prompt_file is None:
        return prompt  # type: ignore[return-value]
    if str(prompt_file) == "-":
        return sys.stdin.read()
    try:
        return prompt_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the prompt file {prompt_file}: {exc}") from None


def save_result(result: Any, json_path: Optional[Path], html_path: Optional[Path], console: Console) -> None:
    """Write the result's JSON and HTML where asked."""
    if json_path:
        console.print(f"JSON: {result.to_json(json_path)}")
    if html_path:
        console.print(f"HTML: {result.to_html(html_path)}")


def load_for_cli(model: Optional[str], adapter: Optional[str], device: Optional[str], console: Console,
          dtype: Optional[str] = None, patch: Optional[Path] = None) -> Any:
    """Load the model quietly, with a status line (``device="auto"``: placed by accelerate; ``patch``: a
    hardening patch file from ``harden``)."""
    from ..models import load_model

    quiet_transformers()
    placement = {"device_map": "auto"} if device == "auto" else {"device": device}
    with console.status("loading the model…"):
        return load_model(model, adapter=adapter, dtype=dtype, patch=patch, **placement)


def read_reference(path: Optional[Path]) -> Optional[list[str]]:
    """Reference prompts, one per non-empty line of a file."""
    if path is None:
        return None
    from ..errors import InputError

    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the reference prompts {path}: {exc}") from None
    if not lines:
        raise InputError(f"the reference file {path} holds no prompt")
    return lines


def read_direction(path: Optional[Path]) -> Any:
    """A saved refusal direction, or None; a missing or unreadable file is a clear error."""
    if path is None:
        return None
    from ..errors import InputError
    from ..refusal.direction import RefusalDirection

    try:
        return RefusalDirection.load(path)
    except Exception as exc:  # safetensors raises several kinds for missing/corrupt files
        raise InputError(f"cannot read the refusal direction {path}: {exc}") from None


def quiet_transformers() -> None:
    """No per-tensor progress bars or load chatter in the terminal output."""
    from transformers.utils import logging as hf_logging

    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft on adapter load
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def describe_if_features(lm: Any, attr: Any, labels: Any, console: Console) -> None:
    """When the map's units are SAE features, what each responds to (top contexts, cached per SAE; labels)."""
    if any(u.site is not None and u.site.kind == "feature" for u in attr.units):
        from ..components.feature_notes import describe_features
        from ..demo.datasets import feature_prompts

        with console.status("describing the features (top-activating contexts, cached)…"):
            describe_features(lm, attr, labels, feature_prompts())
