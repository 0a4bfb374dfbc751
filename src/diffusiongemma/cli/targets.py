"""`diffusiongemma targets`: the registered targets."""

from __future__ import annotations

from rich.console import Console


def targets() -> None:
    """List the registered targets."""
    from ..targets import TARGETS

    console = Console()
    for name, cls in TARGETS.items():
        console.print(f"[bold]{name}[/bold]  {cls.help}")


