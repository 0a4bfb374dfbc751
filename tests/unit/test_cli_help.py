"""Every command's --help prints and exits 0 (explain's once raised a rich MarkupError on 'neurons:L[/G]')."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from diffusiongemma.cli import app

COMMANDS = [["explain"], ["explain-refusal"], ["trace"], ["targets"], ["audit"], ["audit-report"], ["jailbreak-diff"],
            ["refusal-direction"], ["verify-safety"], ["harden"], ["demo", "train"], ["demo", "eval"], []]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "main")
def test_help_prints_without_a_traceback(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and "Traceback" not in result.output
