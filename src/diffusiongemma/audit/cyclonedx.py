"""The audit as a CycloneDX 1.6 ML-BOM: the audited model (``machine-learning-model``, its weights' SHA-256)
with the files it was built from (adapter, hardening patch, tokenizer) and the audited log, the audit's
figures in the model card's ``quantitativeAnalysis`` (refusal rate with a 95 % Wilson interval, overall and per
source), and a CycloneDX attestation (``declarations``: assessor, claims, evidence) of what was tested,
pointing at the bundle's root hash. Field names follow the CycloneDX 1.6 JSON schema
(``tests/data/cyclonedx/bom-1.6.schema.json``, against which the tests validate it).

Examples:
    >>> _rate_metric("refusal rate", 0.8, 10)["confidenceInterval"]  # Wilson, 8 of 10
    {'lowerBound': '0.4902', 'upperBound': '0.9433'}
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from ..significance import wilson

__all__ = ["audit_bom"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _hashes(digest: str | None) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": digest}] if digest and _HEX64.match(digest) else []


def _file(ref: str, name: str, digest: str | None, description: str) -> dict[str, Any]:
    return {"type": "file", "bom-ref": ref, "name": name, "description": description, "hashes": _hashes(digest)}


def _rate_metric(label: str, rate: float | None, n: int, slice_: str | None = None) -> dict[str, Any] | None:
    if rate is None or n == 0:
        return None
    k = round(rate * n)
    _, lo, hi = wilson(k, n)
    m: dict[str, Any] = {"type": label, "value": f"{k / n:.4f}",
                         "confidenceInterval": {"lowerBound": f"{lo:.4f}", "upperBound": f"{hi:.4f}"}}
    if slice_ is not None:
        m["slice"] = slice_
    return m


def audit_bom(manifest: dict[str, Any], *, root: str, assessor: str | None = None) -> dict[str, Any]:
    """The BOM of a bundle's ``manifest`` (see :mod:`diffusiongemma.audit.bundle`); ``root``: the hash over
    the bundle's records, reports and pages."""
    audit = manifest["audit"]
    prov = audit.get("provenance") or {}
    ident = audit["identity"]
    s = manifest["summary"]
    versions = prov.get("versions") or manifest["exported_with"]
    metrics = [_rate_metric("refusal rate", s["refusal_rate"], s["done"])]
    metrics += [_rate_metric("refusal rate", v["refusal_rate"], v["n"], f"source={k}") for k, v in s["by_source"].items()]
    model: dict[str, Any] = {
        "type": "machine-learning-model", "bom-ref": "model", "name": str(prov.get("model") or ident.get("model")),
        "description": f"{prov.get('model_type') or 'causal LM'} as audited (weights, adapter and patch below)",
        "hashes": _hashes(prov.get("weights_sha256")),
        "modelCard": {
            "quantitativeAnalysis": {"performanceMetrics": [m for m in metrics if m is not None]},
            "properties": [{"name": f"diffusiongemma:audit:{k}", "value": str(v)} for k, v in (
                ("items", s["items"]), ("audited", s["done"]), ("error_rows", s["errors"]),
                ("harmful_complied", s["harmful_complied"]), ("benign_refused", s["benign_refused"]),
                ("flip_sets_confirmed", f"{s['flip_sets_confirmed']} of {s['flip_sets']}"))],
        },
        "properties": [{"name": "diffusiongemma:dtype", "value": str(prov.get("dtype"))}],
    }
    parts = [_file("tokenizer", "tokenizer", prov.get("tokenizer_sha256"), "tokenizer the audit used"),
             _file("chat-template", "chat template", prov.get("chat_template_sha256"), "chat template the audit used")]
    if prov.get("adapter_sha256"):
        parts.append(_file("adapter", str(prov.get("adapter")), prov["adapter_sha256"], "PEFT adapter merged into the model"))
    if prov.get("patch"):
        parts.append(_file("patch", str(prov["patch"].get("path")), prov["patch"].get("sha256"),
                           "hardening patch (conditional activation steering) applied to the model"))
    model["components"] = parts
    log = _file("input", f"audited log ({ident.get('format')})", ident.get("input_sha256"), "the audited input file")
    log["type"] = "data"
    now = manifest["exported"]
    rate = "–" if s["refusal_rate"] is None else f"{s['refusal_rate']:.1%}"
    claims = [
        {"bom-ref": "claim-audited", "target": "model",
         "predicate": f"{s['done']} of {s['items']} logged requests were audited with DiffusionGemma "
                      f"{versions.get('diffusiongemma')} (settings {ident.get('settings')}); the model refused {rate}, "
                      f"complied with {s['harmful_complied']} harmful requests and refused {s['benign_refused']} benign ones",
         "evidence": ["evidence-bundle"]},
        {"bom-ref": "claim-confirmed", "target": "model",
         "predicate": f"{s['flip_sets_confirmed']} of {s['flip_sets']} minimal flip sets were confirmed on the real "
                      "edited prompt, re-tokenised and sent again",
         "evidence": ["evidence-bundle"]},
    ]
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": f"urn:uuid:{uuid.uuid4()}", "version": 1,
        "metadata": {"timestamp": now,
                     "tools": {"components": [{"type": "application", "name": "diffusiongemma",
                                               "version": str(manifest["exported_with"]["diffusiongemma"])}]},
                     "component": {"type": "machine-learning-model", "bom-ref": "audited-model",
                                   "name": model["name"], "hashes": model["hashes"]}},
        "components": [model, log],
        "declarations": {
            "assessors": [{"bom-ref": "assessor", "thirdParty": False,
                           "organization": {"name": assessor or "unnamed (export --assessor NAME)"}}],
            "attestations": [{"summary": "DiffusionGemma audit: what was tested and what it found", "assessor": "assessor",
                              "map": [{"claims": [c["bom-ref"] for c in claims]}]}],
            "claims": claims,
            "evidence": [{"bom-ref": "evidence-bundle", "propertyName": "diffusiongemma:bundle:root_sha256",
                          "description": "the evidence bundle's root hash over every record, report and page; "
                                         "diffusiongemma verify-bundle recomputes it",
                          "data": [{"name": "root_sha256", "contents": {"attachment": {"contentType": "text/plain",
                                                                                      "content": root}}}],
                          "created": now}],
        },
        "properties": [{"name": "diffusiongemma:bundle:root_sha256", "value": root}],
    }
