"""``diffusiongemma harden``: attack suite, mechanism per attack, a patch (steering or LoRA), re-verification.

    diffusiongemma harden --model gemma-270m-safety --patch-out safety.patch.safetensors --html harden.html
    diffusiongemma harden --model gemma-270m-safety --patch-kind lora --patch-out lora.patch.safetensors
    diffusiongemma harden --model gemma-270m-safety --patch-kind gated-lora --hold-out translation
    diffusiongemma explain-refusal "..." --model gemma-270m-safety --patch safety.patch.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def harden_cmd(
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory applied on top of the model."),
    requests: int = typer.Option(12, help="Held-out harmful requests attacked."),
    calibration: int = typer.Option(16, help="Training-split harmful and benign requests the patch is fit on."),
    benign: int = typer.Option(100, help="Held-out benign requests, and as many everyday ones, for over-refusal."),
    safe: int = typer.Option(100, help="XSTest safe prompts for over-refusal."),
    templates: int = typer.Option(3, help="Jailbreak templates in the attack suite."),
    threshold: float = typer.Option(0.0, help="A prompt is refused when its refusal score is above this."),
    seed: int = typer.Option(0, help="Seed of every sample."),
    patch_kind: str = typer.Option("gated-lora", "--patch-kind", help="gated-lora (a LoRA trained to answer "
                                   "attacked requests as the plain ones, acting only where a harm gate fires), "
                                   "lora (that LoRA on every prompt) or steering (CAST: add the refusal "
                                   "direction where a harm signal fires)."),
    lora_steps: Optional[int] = typer.Option(None, help="LoRA patch: optimizer steps, batch 8 (default: one pass "
                                                        "over its training examples)."),
    replies: bool = typer.Option(True, help="Judge the greedy replies before and after (the verdict rests on them); "
                                            "--no-replies: refusal scores only (faster)."),
    max_new_tokens: int = typer.Option(24, help="Length of each judged reply."),
    hold_out: list[str] = typer.Option([], "--hold-out", help="An attack or attack family the patch is not fit on, "
                                       "only judged on (repeat it); its success is reported apart."),
    fpr: Optional[float] = typer.Option(None, help="The share of the training split's benign prompts the gate "
                                                   "(gated-lora, default 0.2) or harm condition (steering, default "
                                                   "0.02) may fire on; above it, more attacks caught."),
    alpha: Optional[float] = typer.Option(None, help="Steering strength (steering only); default: chosen from 0.25..8 "
                                                     "on calibration attacks."),
    patch_out: Path = typer.Option(Path("harden.patch.safetensors"), "--patch-out", help="Where the patch file goes."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write the report as a self-contained HTML page."),
    store: Optional[Path] = typer.Option(None, help="Also keep the report in this audit store (SQLite)."),
) -> None:
    """Attack the model's refusal, say how each attack works, fit a patch (steering or LoRA), verify again."""
    from .common import load_for_cli
    from ..errors import InputError
    from ..harden.lora import LoraPatchSettings
    from ..harden.fit_patch import check_fpr
    from ..harden.run import PATCH_KINDS, check_sizes, harden
    from ..validation import check_count

    check_sizes(requests, calibration, benign, safe, templates)  # bad sizes fail before the model loads
    if hold_out:
        from ..harden.attacks import attack_suite
        from ..harden.run import split_suite

        split_suite(attack_suite(templates), hold_out)  # an unknown name fails before the model loads
    if lora_steps is not None:
        check_count(lora_steps, "--lora-steps", "steps")
    check_count(max_new_tokens, "--max-new-tokens", "tokens")
    if patch_kind not in PATCH_KINDS:
        raise InputError(f"unknown --patch-kind {patch_kind!r}; choose one of {', '.join(PATCH_KINDS)}")
    check_fpr(patch_kind, fpr, "--fpr")
    if alpha is not None and patch_kind != "steering":
        raise InputError(f"--alpha applies to --patch-kind steering only, not {patch_kind}")
    if lora_steps is not None and patch_kind == "steering":
        raise InputError("--lora-steps applies to --patch-kind lora and gated-lora, not steering")
    if store:
        from ..audit.store import check_store

        check_store(store)
    console = Console()
    lm = load_for_cli(model, adapter, None, console)
    grid: dict[str, Any] = {"alpha_grid": (alpha,)} if alpha is not None else {}
    with console.status("hardening…") as status:
        report = harden(lm, requests=requests, calibration=calibration, benign=benign, safe=safe,
                        templates=templates, threshold=threshold, seed=seed, patch_out=patch_out, **grid,
                        patch_kind=patch_kind, lora=LoraPatchSettings(steps=lora_steps, seed=seed), replies=replies,
                        max_new_tokens=max_new_tokens, held_out=tuple(hold_out), fpr=fpr,
                        progress=lambda what: status.update(f"{what}…"))
    table = Table(title=f"harden {escape(report.model)}: attacks before → after the patch")
    for col in ("attack", "replies: success before", "after", "scores: before", "after", "patch fired",
                "direction supp.", "component supp.", "mechanism"):
        table.add_column(col)
    for a in report.attacks:
        table.add_row(escape(a["attack"]) + (" (held out)" if a.get("held_out") else ""), _pct(a.get("reply_success_before")), _pct(a.get("reply_success_after")),
                      _pct(a["success_before"]), _pct(a["success_after"]), _pct(a["patch_fired"]),
                      "–" if a["direction_suppression"] is None else f"{a['direction_suppression']:.2f}",
                      "–" if a["component_suppression"] is None else f"{a['component_suppression']:.2f}",
                      a["mechanism"] or "–")
    console.print(table)
    s = report.summary
    console.print(f"attack success ({s['judged_by']}): {_pct(s['attack_success']['before'])} → "
                  f"{_pct(s['attack_success']['after'])}")
    if "attack_success_held_out" in s:
        h = s["attack_success_held_out"]
        console.print(f"attacks the patch was not fit on ({', '.join(map(escape, h['attacks']))}): "
                      f"{_pct(h['before'])} → {_pct(h['after'])}")
    for name, o in report.overrefusal.items():
        by_reply = f"replies {_pct(o['reply_before'])} → {_pct(o['reply_after'])}, " if "reply_before" in o else ""
        lo, hi = o["rise_interval"]
        console.print(f"over-refusal {name} ({o['n']:.0f}): {by_reply}scores {_pct(o['before'])} → {_pct(o['after'])}; "
                      f"rise {100 * o['rise']:+.0f} points (95 % interval {100 * lo:+.1f} to {100 * hi:+.1f}), "
                      f"{len(o.get('changed', []))} prompts changed")
    console.print(f"verdict: [bold]{report.verdict}[/bold]  ({report.wall_time:.0f} s); patch: {report.patch_path}")
    if json_path:
        console.print(f"JSON: {report.to_json(json_path)}")
    if html_path:
        console.print(f"HTML: {report.to_html(html_path)}")
    if store:
        from ..audit.store import keep_report

        rid = keep_report(store, "harden", model=report.model, verdict=report.verdict, summary=report.summary,
                          report=report.to_dict())
        console.print(f"stored as report #{rid} in {store}")
