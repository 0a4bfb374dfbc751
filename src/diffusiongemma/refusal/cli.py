"""``diffusiongemma refusal-direction``: fit the refusal direction of a model and save it.

    diffusiongemma refusal-direction --model gemma-270m-safety --out refusal-direction.safetensors
    diffusiongemma explain-refusal "..." --direction refusal-direction.safetensors --intervention ablate
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table


def refusal_direction(
    out: Path = typer.Option(..., help="Where to save the direction (safetensors, with its metadata)."),
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory applied on top of the model."),
    count: int = typer.Option(64, help="Requests per class (harmful: AdvBench + Do-Not-Answer; harmless: Self-Instruct + contrast), training splits."),
    positions: int = typer.Option(5, help="Candidate positions: the last N tokens of the rendered prompt."),
    seed: int = typer.Option(0, help="Seed of the request sample and of the train/validation split."),
) -> None:
    """Fit the refusal direction (difference of means, Arditi et al. 2024), choosing layer and position on a validation split."""
    import random

    from ..cli import _load
    from ..demo.datasets import load_demo_data
    from .direction import fit_refusal_direction

    console = Console()
    lm = _load(model, adapter, None, console)
    data = load_demo_data()
    rng = random.Random(seed)
    harmful = rng.sample([r.text for r in data.harmful_train], count)
    harmless = rng.sample([r.text for r in data.benign_train], count)
    with console.status("reading activations and measuring ablations…"):
        d = fit_refusal_direction(lm, harmful, harmless, positions=positions, seed=seed)
    table = Table(title="candidates measured by ablation on the validation harmful requests")
    for col in ("layer", "position", "‖r‖", "val AUC", "refusal score drop"):
        table.add_column(col, justify="right")
    for c in [c for c in d.candidates if "ablation_drop" in c]:
        table.add_row(str(c["layer"]), str(c["position"]), f"{c['norm']:.2f}", f"{c['val_auc']:.3f}",
                      f"{c['ablation_drop']:+.3f}")
    console.print(table)
    v = d.validation
    console.print(f"chosen: layer {d.layer}, position {d.position}. Validation harmful refusal score "
                  f"{v['harmful_score']:+.2f} → {v['harmful_score'] - v['ablation_drop']:+.2f} with the direction "
                  f"ablated; harmless {v['harmless_score']:+.2f} → {v['harmless_score_with_addition']:+.2f} with it added.")
    console.print(f"saved: {d.save(out)}")
