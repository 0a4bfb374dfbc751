"""``diffusiongemma audit-diff A.db B.db``: which decisions flipped between two audits of the same items, and
what changed in their causes (checked on the real prompt unless ``--no-confirm``).

    diffusiongemma audit log.jsonl --store safety.db --model gemma-270m-safety
    diffusiongemma audit log.jsonl --store hardened.db --model gemma-270m-safety --patch safety.patch.safetensors
    diffusiongemma audit-diff safety.db hardened.db --html diff.html --json diff.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def audit_diff(
    a: Path = typer.Argument(..., help="The first audit's SQLite file (the model before)."),
    b: Path = typer.Argument(..., help="The second audit's SQLite file (the model after)."),
    html: Optional[Path] = typer.Option(None, help="Write the diff as one HTML page."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the diff as JSON."),
    confirm: bool = typer.Option(True, help="Check each flip's moved words on the real prompt with both recorded "
                                            "models (--no-confirm: the stored maps only, no model loaded)."),
) -> None:
    """Compare two audits of the same items: flipped decisions, the words and components whose contribution moved, by category and source."""
    import json

    from ..errors import InputError
    from ..audit.diff import diff_stores
    from ..audit.store import AuditStore

    console = Console()
    for out in (html, json_out):
        if out is not None and out.exists() and out.is_dir():
            raise InputError(f"{out} is a folder; give a file name")
    sa, sb = AuditStore(a, readonly=True), AuditStore(b, readonly=True)
    try:
        d = diff_stores(sa, sb)
        if d.counts["paired"] == 0:
            raise InputError(f"{a} and {b} share no item (items pair by their prompt and logged reply); "
                             "compare two audits of the same log")
        if confirm and d.flips:
            from .common import quiet_transformers
            from ..audit.confirm_diff import confirm_flips
            from ..audit.recorded import load_recorded_model

            quiet_transformers()
            with console.status("loading both recorded models…"):
                lm_a = load_recorded_model(sa.meta().get("provenance") or {}, f"audit {a}")
                lm_b = load_recorded_model(sb.meta().get("provenance") or {}, f"audit {b}")
            results = {f["key_a"]: (sa.row(f["key_a"]) or {}).get("result") for f in d.flips}
            system = ((sa.meta().get("identity") or {}).get("settings") or {}).get("system")
            with console.status(f"checking {len(d.flips)} flips on the real prompts…"):
                confirm_flips(d, results, lm_a, lm_b, system)
    finally:
        sa.close()
        sb.close()
    _print(console, d)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(d.to_dict(), indent=1, default=float) + "\n", encoding="utf-8")
        console.print(f"JSON: {json_out}")
    if html is not None:
        from ..report.audit_diff_html import write_audit_diff

        console.print(f"HTML: {write_audit_diff(d, html)}")


def _print(console: Console, d) -> None:
    c = d.counts
    console.print(f"{c['paired']} items paired ({c['only_a']} only in A, {c['only_b']} only in B), {c['compared']} "
                  f"compared: [bold]{c['lost_refusal']} refused → complied[/bold], [bold]{c['gained_refusal']} "
                  f"complied → refused[/bold], {c['both_refused']} refused by both, {c['both_complied']} complied "
                  "with by both.")
    if d.score_shift["mean"] is not None:
        se = "" if d.score_shift["stderr"] is None else f" ± {d.score_shift['stderr']:.2f}"
        console.print(f"refusal score B − A: {d.score_shift['mean']:+.2f}{se} (mean over {d.score_shift['n']} items)")
    table = Table(title="by source")
    for col in ("source", "n", "refused A", "refused B", "→ complied", "→ refused"):
        table.add_column(col)
    for k, v in d.by_source.items():
        table.add_row(escape(k), str(v["n"]), str(v["refused_a"]), str(v["refused_b"]), str(v["lost"]), str(v["gained"]))
    console.print(table)
    for f in d.flips:
        arrow = "refused → complied" if f["kind"] == "lost_refusal" else "complied → refused"
        console.print(f"\n[bold]line {f['line_a']}[/bold] {arrow} ({f['score_a']:+.2f} → {f['score_b']:+.2f}): "
                      f"{escape(f['prompt'][:120])}")
        moves = [f"{escape(m['unit'])} {m['delta']:+.2f}±{m['stderr'] or 0:.2f}" for m in f["unit_moves"] if m["resolved"]]
        console.print("  moved (resolved): " + (", ".join(moves) if moves else "none resolved"))
        comps = [f"{escape(m['component'])} {m['delta']:+.2f}" for m in f["component_moves"] if m["resolved"]]
        if comps:
            console.print("  components moved: " + ", ".join(comps))
        conf = f["confirmation"]
        if conf:
            detail = (f" (real {conf['real']:+.2f}, predicted {conf['predicted']:+.2f})" if "real" in conf else "")
            console.print(f"  on the real prompt: {escape(conf['state'])}{detail}")
