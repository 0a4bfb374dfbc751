"""``diffusiongemma export`` and ``diffusiongemma verify-bundle``: an audit handed over as evidence, and the
check an auditor runs on it.

    diffusiongemma export audit.db --bundle evidence/ --sign-key key.pem --assessor "ACME red team"
    diffusiongemma verify-bundle evidence/ --public-key signer.pub.pem --rerun 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape


def export_cmd(
    store: Path = typer.Argument(..., help="The audit's SQLite file."),
    bundle: Path = typer.Option(..., help="New folder for the evidence bundle."),
    sign_key: Optional[Path] = typer.Option(None, help="Ed25519 private key (PEM) to sign the manifest with."),
    assessor: Optional[str] = typer.Option(None, help="Who attests the audit (named in the CycloneDX BOM)."),
) -> None:
    """Export an audit as a self-contained evidence bundle: records, static report, CycloneDX ML-BOM, hashed manifest."""
    from ..audit.bundle import export_bundle

    console = Console()
    manifest = export_bundle(store, bundle, sign_key=sign_key, assessor=assessor)
    n = len(manifest["records"])
    console.print(f"bundle {bundle}: {n} records, {len(manifest['reports'])} reports, {len(manifest['files'])} "
                  f"report/BOM files; root SHA-256 {manifest['root_sha256']}"
                  + ("; manifest signed (manifest.json.sig, signer.pub.pem)" if sign_key else "; not signed"))
    console.print(f"check it with: diffusiongemma verify-bundle {bundle}")


def verify_bundle_cmd(
    bundle: Path = typer.Argument(..., help="The evidence bundle's folder."),
    public_key: Optional[Path] = typer.Option(None, help="The signer's Ed25519 public key (PEM) to pin."),
    rerun: int = typer.Option(1, help="Audited items to audit again on the recorded model (0: hashes only)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the random sample of items to rerun (default: random)."),
) -> None:
    """Recompute every hash of an evidence bundle, check its signature, and rerun a sample of items bit for bit."""
    import secrets

    from .common import quiet_transformers
    from ..errors import InputError
    from ..audit.verify_bundle import verify_bundle

    if rerun < 0:
        raise InputError(f"--rerun must be 0 or more, got {rerun}")
    quiet_transformers()
    console = Console()
    seed = secrets.randbelow(2**31) if seed is None else seed
    with console.status("checking the bundle…"):
        check = verify_bundle(bundle, public_key=public_key, rerun=rerun, seed=seed)
    console.print(f"{check.files_checked} files hashed; signature: {check.signature}")
    for p in check.problems:
        console.print(f"[red]✗[/red] {escape(p)}")
    for r in check.reruns:
        state = "reproduced bit for bit" if r["identical"] else f"[red]differs[/red] in {', '.join(r['differs_in'])}"
        console.print(f"item {r['key']} (line {r['line']}, audited in a group of {r['group_size']}): {state}")
    if rerun and check.problems:
        console.print("no item was rerun: the bundle's records are not intact")
    elif rerun:
        console.print(f"(sample seed {seed})")
    if not check.ok:
        console.print("[bold red]bundle NOT verified[/bold red]")
        raise typer.Exit(1)
    console.print("[bold green]bundle verified[/bold green]")
