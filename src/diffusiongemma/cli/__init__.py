"""The command line: one module per command, what they share in :mod:`~diffusiongemma.cli.common`.

    diffusiongemma explain "The river bank was" --target " muddy" --html out.html
    diffusiongemma explain-refusal "How do I pick a lock?" --html why.html
    diffusiongemma demo train --variant safety --out DIR
    diffusiongemma targets

Each command parses and checks its arguments before the model loads, calls one workflow of the public API,
and prints. Errors a user can cause print one sentence and exit with code 2.

Examples:
    >>> sorted(COMMANDS)[:4]
    ['audit', 'audit-diff', 'audit-report', 'demo']
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from ..errors import DiffusionGemmaError
from . import (audit, audit_diff, bundle, demo, explain, explain_context, explain_refusal, harden, refusal, targets,
               trace, verify_safety)

__all__ = ["app", "main", "COMMANDS"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="DiffusionGemma: which parts of a prompt drove a language model's decision.")

COMMANDS: dict[str, Any] = {  # command name -> its function (one module per command; demo is a group of its own)
    "explain": explain.explain,
    "explain-refusal": explain_refusal.explain_refusal,
    "trace": trace.trace_cmd,
    "targets": targets.targets,
    "refusal-direction": refusal.refusal_direction,
    "jailbreak-diff": refusal.jailbreak_diff,
    "audit": audit.audit,
    "audit-report": audit.audit_report,
    "audit-diff": audit_diff.audit_diff,
    "export": bundle.export_cmd,
    "verify-bundle": bundle.verify_bundle_cmd,
    "verify-safety": verify_safety.verify_safety_cmd,
    "explain-context": explain_context.explain_context_cmd,
    "harden": harden.harden_cmd,
    "demo": demo.app,
}
for _name, _command in COMMANDS.items():
    if isinstance(_command, typer.Typer):
        app.add_typer(_command, name=_name)
    else:
        app.command(_name)(_command)


def main() -> None:
    """Entry point of the ``diffusiongemma`` console script."""
    try:
        app()
    except DiffusionGemmaError as exc:  # raised inside a command: one sentence, exit code 2
        sys.stderr.write(f"error: {exc}\n")  # one line, never wrapped
        sys.exit(2)
