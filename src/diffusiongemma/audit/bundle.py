"""An audit exported as evidence (``diffusiongemma export audit.db --bundle out/``): a self-contained folder an
auditor can check without the tool's word for it.

The folder holds:

* ``items/NNNNNN.json``: every stored row, the full map included, as canonical JSON (keys sorted);
* ``reports/NNNN.json``: the verify-safety and harden reports kept in the store;
* ``report/index.html`` and its item pages: the static audit report (no script, no external fetch);
* ``bom.cdx.json``: a CycloneDX 1.6 ML-BOM of the audited model with the audit's figures and what was
  attested (:mod:`diffusiongemma.audit.cyclonedx`);
* ``manifest.json``: the model's provenance (weights, adapter, patch, tokenizer and chat-template SHA-256), the
  library versions, the settings and seed, the input file's digest, and the SHA-256 of every file above with
  a root hash over them all;
* with ``--sign-key``, ``manifest.json.sig`` (Ed25519 over the manifest's bytes) and ``signer.pub.pem``.

``diffusiongemma verify-bundle`` (:mod:`diffusiongemma.audit.verify_bundle`) recomputes all of it.

Examples:
    >>> root_hash([{"path": "b", "sha256": "2"}, {"path": "a", "sha256": "1"}]) == root_hash(
    ...     [{"path": "a", "sha256": "1"}, {"path": "b", "sha256": "2"}])
    True
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .store import AuditStore

__all__ = ["BUNDLE_FORMAT", "canonical_json", "export_bundle", "root_hash", "record_path", "sha256_bytes"]

BUNDLE_FORMAT = "diffusiongemma-evidence-bundle"
BUNDLE_VERSION = 1


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of ``data``, hex.

    Examples:
        >>> sha256_bytes(b'abc')[:16]
        'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a record: keys sorted, UTF-8, one space of indent, a final newline.

    Examples:
        >>> canonical_json({"b": 1, "a": "é"})
        b'{\\n "a": "\\xc3\\xa9",\\n "b": 1\\n}\\n'
    """
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=True) + "\n").encode("utf-8")


def root_hash(entries: list[dict[str, str]]) -> str:
    """SHA-256 over ``"<path> <sha256>\\n"`` of every file entry, sorted by path.

    Examples:
        >>> a, b = {'path': 'a', 'sha256': '1'}, {'path': 'b', 'sha256': '2'}
        >>> root_hash([b, a]) == root_hash([a, b]) != root_hash([a])
        True
    """
    lines = "".join(f"{e['path']} {e['sha256']}\n" for e in sorted(entries, key=lambda e: e["path"]))
    return sha256_bytes(lines.encode("utf-8"))


def record_path(key: str) -> str:
    """The bundle path of the stored record of item ``key``.

    Examples:
        >>> record_path('7')
        'items/000007.json'
    """
    return f"items/{int(key):06d}.json"


def _write(out: Path, rel: str, data: bytes, entries: list[dict[str, str]], **extra: Any) -> None:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entries.append({"path": rel, "sha256": sha256_bytes(data), **extra})


def _headline(store: AuditStore) -> dict[str, Any]:
    from .summary import summarize

    s = summarize(store)
    keep = ("items", "done", "errors", "refusal_rate", "harmful_complied", "benign_refused", "flip_sets",
            "flip_sets_confirmed", "by_source", "by_label")
    return {k: s[k] for k in keep}


def export_bundle(store_path: str | Path, out: str | Path, *, sign_key: str | Path | None = None,
                  assessor: str | None = None) -> dict[str, Any]:
    """Write the evidence bundle of the audit at ``store_path`` into the new folder ``out``; returns the
    manifest. ``sign_key``: an Ed25519 private key (PEM, unencrypted) to sign the manifest with;
    ``assessor``: who attests, named in the BOM.

    Examples:
        >>> import tempfile
        >>> from diffusiongemma.audit.example import example_store
        >>> manifest = export_bundle(example_store(), tempfile.mkdtemp() + "/evidence")
        >>> len(manifest["root_sha256"])
        64
    """
    from ..models.provenance import library_versions
    from .report import write_audit_report
    from .cyclonedx import audit_bom

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; give a new folder for the bundle")
    key = _read_key(sign_key) if sign_key is not None else None  # a bad key fails before anything is written
    store = AuditStore(store_path, readonly=True)
    try:
        meta = store.meta()
        if "identity" not in meta:
            raise InputError(f"{store_path} holds no finished audit (no identity recorded); nothing to export")
        out.mkdir(parents=True, exist_ok=True)
        try:
            records: list[dict[str, str]] = []
            for row in store.rows(full=True):
                _write(out, record_path(row["key"]), canonical_json(row), records, key=row["key"], line=row["line"])
            reports: list[dict[str, str]] = []
            for rep in store.reports(full=True):
                _write(out, f"reports/{rep['id']:04d}.json", canonical_json(rep), reports)
            files: list[dict[str, str]] = []
            write_audit_report(store, out / "report" / "index.html")
            for page in sorted((out / "report").rglob("*")):
                if page.is_file():
                    files.append({"path": page.relative_to(out).as_posix(), "sha256": sha256_bytes(page.read_bytes())})
            headline = _headline(store)
            manifest: dict[str, Any] = {
                "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION,
                "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "exported_with": library_versions(),
                "audit": {"store": Path(store_path).name, "created": meta.get("created"),
                          "schema_version": meta.get("schema_version"), "identity": meta["identity"],
                          "grouping": meta.get("grouping"), "provenance": meta.get("provenance")},
                "summary": headline,
                "records": records, "reports": reports,
            }
            bom = audit_bom(manifest, root=root_hash(records + reports + files), assessor=assessor)
            _write(out, "bom.cdx.json", (json.dumps(bom, indent=1) + "\n").encode("utf-8"), files)
            manifest["files"] = files
            manifest["root_sha256"] = root_hash(records + reports + files)
            data = canonical_json(manifest)
            (out / "manifest.json").write_bytes(data)
            if key is not None:
                _sign(out, data, key)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # no half bundle is left behind
            raise
        return manifest
    finally:
        store.close()


def _read_key(path: str | Path) -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:
        raise InputError("signing needs the cryptography package: pip install 'diffusiongemma[evidence]'") from None
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"the signing key {path} is not an Ed25519 private key (make one with: openssl genpkey "
                         "-algorithm ed25519 -out key.pem)")
    return key


def _sign(out: Path, data: bytes, key: Any) -> None:
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    (out / "manifest.json.sig").write_text(base64.b64encode(key.sign(data)).decode("ascii") + "\n")
    (out / "signer.pub.pem").write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
