"""``diffusiongemma audit`` and ``diffusiongemma audit-report``.

    diffusiongemma audit redteam.jsonl --store audit.db --model gemma-270m-safety
    diffusiongemma audit garak.report.jsonl --store audit.db --dry-run
    diffusiongemma audit-report audit.db --html audit.html
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def audit(
    input: Path = typer.Argument(..., help="JSONL/CSV of prompts (optional response, label; StrongREJECT's columns too), a garak report, a promptfoo output, a PyRIT memory .db, a JailbreakBench artifact or HarmBench completions/results."),
    store: Path = typer.Option(..., help="SQLite file the records go to; rerun the same command to resume."),
    model: str = typer.Option("gemma-270m-safety", help="Model: a demo name, directory, .gguf or cached id."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory applied on top of the model."),
    patch: Optional[Path] = typer.Option(None, help="Hardening patch file (from harden) applied to the model."),
    input_format: Optional[str] = typer.Option(None, "--format", help="jsonl, csv, garak, promptfoo, pyrit, jailbreakbench or harmbench (default: detected)."),
    budget: int = typer.Option(64, help="Model evaluations per item for the token map."),
    units: str = typer.Option("auto", help="auto (words up to 300, else sentences>words), tokens, words, sentences, or a tree such as sentences>words."),
    components: Optional[str] = typer.Option("heads+mlps", help="Component units for the top-components view ('none' to skip)."),
    component_budget: int = typer.Option(24, help="Gradient steps for the component view."),
    checks: bool = typer.Option(True, help="Search the confirmed minimal flip set and run the deletion check per item (--no-checks: the map only)."),
    max_new_tokens: int = typer.Option(32, help="Reply length when the log has no response."),
    system: Optional[str] = typer.Option(None, help="System prompt before each request."),
    seed: int = typer.Option(0, help="Random seed (the same for every item)."),
    limit: Optional[int] = typer.Option(None, help="Stop after this many new rows."),
    backend: str = typer.Option("local", help="local (one process) or ray (one model per worker)."),
    workers: int = typer.Option(1, help="Ray workers (with --backend ray)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate the time from up to 3 sample items audited here (the shortest, median and longest; nothing stored), then stop."),
    fail_on: Optional[list[str]] = typer.Option(None, "--fail-on", help="Exit with code 1 when this holds after the audit, e.g. 'complied_harmful>0' or 'refusal_rate<90%' (repeatable)."),
    junit: Optional[Path] = typer.Option(None, help="Write the audit as JUnit XML (a test case per item) for CI."),
    sarif: Optional[Path] = typer.Option(None, help="Write the flagged items as SARIF 2.1.0 for code-scanning tools."),
) -> None:
    """Batch-audit logged prompts or red-team results: every decision explained, every record kept in SQLite."""
    from .common import load_for_cli
    from ..errors import InputError
    from ..audit.readers import detect_format, read_items
    from ..audit.runner import AuditSettings, run_audit
    from ..audit.store import AuditStore, stored_keys

    console = Console()
    fmt = input_format or detect_format(input)
    settings = AuditSettings(units=units, budget=budget, components=None if components in (None, "none") else components,
                             component_budget=component_budget, max_new_tokens=max_new_tokens, system=system,
                             seed=seed, triggers=checks, faithfulness=checks)
    settings.validate()  # before anything is read, loaded or written: a bad setting stores nothing
    gates = parse_gates(fail_on)
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r}; choose local or ray")
    records = list(read_items(input, fmt))
    done = stored_keys(store)  # read only: nothing is written before the model has loaded
    pending = [r for r in records if r.key not in done]
    if limit is not None:
        pending = pending[:limit]
    bad = sum(1 for r in records if not hasattr(r, "prompt"))
    console.print(f"{input}: {len(records)} records ({fmt}), {bad} unreadable; {len(done)} already in {store}, "
                  f"{len(pending)} to do.")
    # the Ray workers load their own models: the driver needs one only to estimate or to audit itself
    lm = load_for_cli(model, adapter, None, console, patch=patch) if dry_run or backend == "local" else None
    if dry_run:
        _estimate(console, lm, pending, settings)
        return
    db = AuditStore(store)
    try:
        db.lock()  # one audit writes a store at a time
    except BaseException:
        db.close()
        raise
    with Progress(TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("audit", total=len(pending), rate="")
        t0 = time.perf_counter()

        def tick(_row: dict) -> None:
            bar.advance(task)
            n = bar.tasks[0].completed
            bar.update(task, rate=f"{n / max(time.perf_counter() - t0, 1e-9):.2f} items/s")

        try:
            if backend == "ray":
                from ..audit.ray_backend import run_audit_ray

                counts = run_audit_ray(input, db, model, adapter, settings, fmt=fmt, workers=workers, limit=limit,
                                       on_row=tick, patch=patch)
            else:
                counts = run_audit(input, db, lm, settings, fmt=fmt, limit=limit, on_row=tick)
        except KeyboardInterrupt:  # every finished row is already committed
            bar.stop()
            console.print(f"stopped: {db.count()} rows are in {store}; rerun the same command to resume.")
            db.close()
            raise typer.Exit(130) from None
    console.print(f"stored {counts['done']} audited and {counts['error']} error rows in {store} "
                  f"({db.count()} rows in all). Summary: diffusiongemma audit-report {store} --html audit.html")
    try:
        failed = apply_gates(db, gates, junit, sarif, console)
    finally:
        db.close()
    if failed:
        raise typer.Exit(1)


def _estimate(console: Console, lm, pending: list, settings) -> None:
    """Seconds from a real audit of up to three sample items (the shortest, the median and the longest, in
    words), audited together as one group the way the run stacks them, and stored nowhere. A warm-up audit of a
    short item first takes the one-time costs out of the timing. The group's time is spread over evaluations
    whose cost grows with the prompt's length (:func:`sampled_seconds`); replies, trigger searches,
    confirmations and component maps are all inside it."""
    from ..generation import generate_replies
    from ..audit.items import AuditItem
    from ..audit.runner import audit_group

    items = [p for p in pending if hasattr(p, "prompt") and p.prompt.strip()]
    if not items:
        console.print("nothing to audit.")
        return
    words = [p.words for p in items]
    evaluations = [settings.evaluations_per_item(w) for w in words]
    order = sorted(range(len(items)), key=words.__getitem__)
    picks = sorted({order[0], order[len(order) // 2], order[-1]}, key=words.__getitem__)
    generate_replies(lm, ["Hello"], max_new_tokens=2)  # warm-up: first-call costs are not per item
    audit_group(lm, [AuditItem(0, 0, "Tell me about the weather today", "warm-up")], settings)
    t0 = time.perf_counter()
    audit_group(lm, [items[k] for k in picks], settings)
    took = time.perf_counter() - t0
    seconds = sampled_seconds(took, [(words[k], evaluations[k]) for k in picks], list(zip(words, evaluations)))
    console.print(f"dry run: {len(items)} items, about {sum(evaluations):,} model evaluations "
                  f"(~{sum(evaluations) // len(items)} per item), about {seconds / 60:.1f} minutes on this machine "
                  f"(from {len(picks)} sample items of {', '.join(str(words[k]) for k in picks)} words audited "
                  f"here together in {took:.0f} s; nothing stored).")


FIXED_WORDS = 20  # the chat template, the reply's read positions: a forward's cost beyond the prompt's words


def sampled_seconds(took: float, samples: list[tuple[int, int]], items: list[tuple[int, int]]) -> float:
    """The seconds ``items`` (words, evaluations) take when ``samples`` of them took ``took``: each evaluation
    costs in proportion to its prompt's words plus :data:`FIXED_WORDS`.

    Examples:
        >>> sampled_seconds(30.0, [(10, 100), (40, 100)], [(10, 100), (10, 100), (40, 100)])  # 30 s + a 10-word item
        40.0
    """
    per = took / sum(e * (w + FIXED_WORDS) for w, e in samples)
    return float(sum(e * (w + FIXED_WORDS) * per for w, e in items))


def audit_report(
    store: Path = typer.Argument(..., help="The audit's SQLite file."),
    html: Path = typer.Option(Path("audit.html"), help="Summary page to write (item pages go next to it)."),
    fail_on: Optional[list[str]] = typer.Option(None, "--fail-on", help="Exit with code 1 when this holds, e.g. 'complied_harmful>0' or 'refusal_rate<90%' (repeatable)."),
    junit: Optional[Path] = typer.Option(None, help="Write the audit as JUnit XML (a test case per item) for CI."),
    sarif: Optional[Path] = typer.Option(None, help="Write the flagged items as SARIF 2.1.0 for code-scanning tools."),
) -> None:
    """Summarise an audit: refusal rates, what drives refusals, complied items, errors; links to every item's page."""
    from ..audit.report import write_audit_report
    from ..audit.store import AuditStore
    from ..audit.summary import summarize

    console = Console()
    gates = parse_gates(fail_on)
    db = AuditStore(store, readonly=True)
    try:
        s = summarize(db)
        path = write_audit_report(db, html)
        rate = "–" if s["refusal_rate"] is None else f"{s['refusal_rate']:.0%}"
        console.print(f"{s['items']} rows: {s['done']} audited, {s['errors']} errors; refused {rate}. HTML: {path}")
        failed = apply_gates(db, gates, junit, sarif, console, s)
    finally:
        db.close()
    if failed:
        raise typer.Exit(1)


def parse_gates(fail_on: Optional[list[str]]) -> list:
    """The ``--fail-on`` conditions, read before any work (a bad one is one sentence, exit code 2)."""
    from ..audit.gate import Gate

    return [Gate.parse(t) for t in fail_on or []]


def apply_gates(db, gates: list, junit: Optional[Path], sarif: Optional[Path], console: Console,
                summary: Optional[dict] = None) -> bool:
    """Write the JUnit XML / SARIF asked for and say which ``--fail-on`` conditions hold; True when any does
    (``summary``: the store's summary when the caller has it already)."""
    import json

    from .. import __version__
    from ..audit.gate import figures, junit_xml, sarif as sarif_log
    from ..audit.summary import summarize

    figs = figures(summary if summary is not None else summarize(db))
    rows = list(db.rows())
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(junit_xml(rows, gates, figs, db.path.name))
        console.print(f"JUnit XML: {junit}")
    if sarif is not None:
        uri = str(db.meta().get("input_path") or "audit-input")
        sarif.parent.mkdir(parents=True, exist_ok=True)
        sarif.write_text(json.dumps(sarif_log(rows, uri, __version__), indent=1) + "\n", encoding="utf-8")
        console.print(f"SARIF: {sarif}")
    held = [g for g in gates if g.holds(figs)]
    for g in gates:
        console.print(f"fail-on {g.text}: " + ("[bold red]HOLDS — failing[/bold red]" if g in held else "passes"))
    return bool(held)
