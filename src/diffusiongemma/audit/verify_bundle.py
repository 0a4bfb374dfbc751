"""``diffusiongemma verify-bundle out/``: an evidence bundle checked without trusting the tool that wrote it.

1. Every file the manifest lists is hashed again; a changed, missing or unlisted file is named (a record by
   its item key and input line), and the root hash is recomputed from the entries.
2. The manifest's Ed25519 signature is checked, against ``--public-key`` when given (pinning the signer),
   else against the key in the bundle (which proves only that the manifest is unchanged since it was signed).
3. A random sample of audited items is audited again on the recorded model (its hashes checked first), in the
   same group of items the audit stacked them with, and must reproduce the stored record bit for bit
   (everything but wall-clock times).

Examples:
    >>> strip_times({"seconds": 1.2, "refused": 1, "result": {"wall_time": 3.0, "scores": [0.5]}})
    {'refused': 1, 'result': {'scores': [0.5]}}
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .bundle import BUNDLE_FORMAT, canonical_json, root_hash, sha256_bytes

__all__ = ["BundleCheck", "verify_bundle", "strip_times", "item_group", "rerun_items"]

_TIMES = ("seconds", "finished_at")


def strip_times(row: dict[str, Any]) -> dict[str, Any]:
    """A record without its wall-clock fields (the only parts a faithful re-run may change)."""
    out = {k: v for k, v in row.items() if k not in _TIMES}
    if isinstance(out.get("result"), dict):
        out["result"] = {k: v for k, v in out["result"].items() if k != "wall_time"}
    return out


@dataclass
class BundleCheck:
    """What ``verify-bundle`` found."""

    files_checked: int = 0
    problems: list[str] = field(default_factory=list)  # each names a file, a record or the signature
    signature: str = "none"  # none, valid (pinned key), valid (bundled key), INVALID
    reruns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.signature != "INVALID" and all(r["identical"] for r in self.reruns)


def _manifest(folder: Path) -> tuple[dict[str, Any], bytes]:
    path = folder / "manifest.json"
    if not folder.is_dir() or not path.is_file():
        raise InputError(f"{folder} is not an evidence bundle (no manifest.json); export one with: "
                         "diffusiongemma export audit.db --bundle DIR")
    data = path.read_bytes()
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{path} is not JSON ({exc}); the bundle's manifest was damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{path} is not a DiffusionGemma evidence bundle manifest")
    return manifest, data


def _check_files(folder: Path, manifest: dict[str, Any], check: BundleCheck) -> None:
    entries = list(manifest.get("records", [])) + list(manifest.get("reports", [])) + list(manifest.get("files", []))
    listed = {e["path"] for e in entries}
    records = {e["path"]: e for e in manifest.get("records", [])}
    for e in entries:
        path = folder / e["path"]
        r = records.get(e["path"])
        what = e["path"] if r is None else f"record {r.get('key')} (input line {r.get('line')}, {e['path']})"
        check.files_checked += 1
        if not path.is_file():
            check.problems.append(f"{what} is missing")
        elif sha256_bytes(path.read_bytes()) != e["sha256"]:
            check.problems.append(f"{what} was changed: its SHA-256 differs from the manifest's")
    if root_hash(entries) != manifest.get("root_sha256"):
        check.problems.append("the manifest's root hash does not match its file entries: the manifest was edited")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    bundle_own = {"manifest.json", "manifest.json.sig", "signer.pub.pem"}
    for name in extra:
        if name not in listed and name not in bundle_own:
            check.problems.append(f"{name} is in the folder but not in the manifest")


def _check_signature(folder: Path, data: bytes, public_key: Path | None, check: BundleCheck) -> None:
    sig = folder / "manifest.json.sig"
    if not sig.exists():
        if public_key is not None:
            check.problems.append("the bundle is not signed, but --public-key asks for a signature")
        return
    try:
        import base64

        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        raise InputError("checking the signature needs the cryptography package: "
                         "pip install 'diffusiongemma[evidence]'") from None
    source = public_key or folder / "signer.pub.pem"
    try:
        key = load_pem_public_key(Path(source).read_bytes())
        signature = base64.b64decode(sig.read_text().strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the public key {source} or the signature: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{source} is not an Ed25519 public key")
    try:
        key.verify(signature, data)
        check.signature = "valid (pinned key)" if public_key else "valid (key in the bundle: pass --public-key to pin the signer)"
    except InvalidSignature:
        check.signature = "INVALID"
        check.problems.append("the manifest's signature does not verify: the manifest was changed after signing"
                              + ("" if public_key is None else " or another key signed it"))


def item_group(rows: list[dict[str, Any]], key: str, grouping: dict[str, Any] | None) -> list[Any]:
    """The items the audit stacked together with item ``key`` (as :func:`~diffusiongemma.audit.runner.run_audit`
    formed them from the input), rebuilt from the bundle's records; an :class:`InputError` when they cannot be.

    Examples:
        >>> rows = [{"key": str(i), "line": i + 1, "prompt": p, "source": "jsonl", "response_given": 0,
        ...          "response": "r", "label": None, "meta": {}} for i, p in enumerate(["a b", "a b c d e", "c d"])]
        >>> [x.key for x in item_group(rows, "2", {"backend": "local", "window": 64, "group": 16, "spread": 2.0})]
        ['0', '2']
    """
    from .items import AuditItem
    from .runner import length_groups

    if not grouping:
        raise InputError("the audit recorded no grouping (a store written before it was kept): rerun not possible")
    by_key = {r["key"]: r for r in rows}

    def item(r: dict[str, Any]) -> AuditItem:
        meta = dict(r.get("meta") or {})
        messages = meta.pop("conversation", None)  # the audit stored a logged chat beside the reader's meta
        return AuditItem(int(r["key"]), r["line"], r["prompt"], r["source"],
                         r["response"] if r.get("response_given") else None, r["label"], meta, messages)

    if grouping.get("backend") == "ray":
        if grouping.get("group") != 1:
            raise InputError("this audit ran on Ray with items grouped as they arrived: its groups cannot be rebuilt")
        return [item(by_key[key])]
    window = int(grouping["window"])
    start = int(key) // window * window
    present = sorted(int(k) for k in by_key if start <= int(k) < start + window)
    if present != list(range(start, start + len(present))):
        raise InputError(f"records of item {key}'s window are missing from the bundle: its group cannot be rebuilt")
    items = [item(by_key[str(k)]) for k in present if by_key[str(k)].get("prompt") is not None]
    for group in length_groups(items, size=int(grouping["group"]), spread=float(grouping["spread"])):
        if any(x.key == key for x in group):
            return group
    raise InputError(f"item {key} is not an audited item")


def rerun_items(folder: Path, manifest: dict[str, Any], keys: list[str], lm: Any) -> list[dict[str, Any]]:
    """Audit the items ``keys`` again in their groups on ``lm``; each compared with its stored record."""
    from .runner import AuditSettings, audit_group

    rows = [json.loads((folder / e["path"]).read_text(encoding="utf-8")) for e in manifest["records"]]
    settings = AuditSettings(**manifest["audit"]["identity"]["settings"])
    out, fresh_rows = [], {}
    for key in keys:
        stored = next(r for r in rows if r["key"] == key)
        group = item_group(rows, key, manifest["audit"].get("grouping"))
        if key not in fresh_rows:  # each group is audited once, whichever of its items were sampled
            for r in audit_group(lm, group, settings):
                fresh_rows[r["key"]] = json.loads(json.dumps(r))  # the store's JSON round trip
        fresh = fresh_rows[key]
        a, b = strip_times(stored), strip_times({c: fresh.get(c) for c in stored})
        differ = sorted(c for c in a if canonical_json(a[c]) != canonical_json(b[c]))
        out.append({"key": key, "line": stored["line"], "group_size": len(group), "identical": not differ,
                    "differs_in": differ})
    return out


def verify_bundle(folder: str | Path, *, public_key: str | Path | None = None, rerun: int = 1, seed: int | None = None,
                  lm: Any = None) -> BundleCheck:
    """Check a bundle (see the module's text). ``rerun``: how many audited items to audit again (0: hashes and
    signature only); ``lm``: the model to rerun on (default: loaded from the recorded provenance, hashes
    checked).

    Examples:
        >>> import tempfile
        >>> from diffusiongemma.audit.bundle import export_bundle
        >>> from diffusiongemma.audit.example import example_store
        >>> folder = tempfile.mkdtemp() + "/evidence"
        >>> _ = export_bundle(example_store(), folder)
        >>> verify_bundle(folder, rerun=0).ok
        True
    """
    folder = Path(folder)
    manifest, data = _manifest(folder)
    check = BundleCheck()
    _check_files(folder, manifest, check)
    _check_signature(folder, data, None if public_key is None else Path(public_key), check)
    if rerun > 0 and not check.problems:  # a tampered bundle is not re-run: its records are not evidence
        done = []
        for e in manifest["records"]:
            row = json.loads((folder / e["path"]).read_text(encoding="utf-8"))
            if row["status"] == "done":
                done.append(row["key"])
        keys = sorted(random.Random(seed).sample(done, min(rerun, len(done))), key=int)
        if keys:
            if lm is None:
                from .recorded import load_recorded_model

                lm = load_recorded_model(manifest["audit"].get("provenance") or {}, "the bundle's audit")
            check.reruns = rerun_items(folder, manifest, keys, lm)
    return check

