"""The model an audit ran on, loaded again from what its store recorded, and refused if it is not the same.

An audit keeps its model's provenance in the store (:func:`~diffusiongemma.audit.runner.keep_provenance`):
the demo name or the model's folder, the adapter and hardening patch with their SHA-256, the weights' hash
and the dtype. ``audit-diff`` (confirming flips) and ``verify-bundle`` (re-running items) load that model
again and check each hash, so a check never runs on a model other than the audited one.

Examples:
    >>> recorded_spec({"model": "gemma-270m-safety", "demo_card": {}, "adapter": "/x/gemma-270m-safety"})
    {'spec': 'gemma-270m-safety', 'adapter': None, 'patch': None, 'dtype': None}
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

__all__ = ["recorded_spec", "load_recorded_model", "same_model"]

_HASHES = (("weights_sha256", "weights"), ("adapter_sha256", "adapter"), ("tokenizer_sha256", "tokenizer"),
           ("chat_template_sha256", "chat template"))


def recorded_spec(provenance: dict[str, Any]) -> dict[str, Any]:
    """How to load the recorded model: ``load_model(spec, adapter=..., patch=..., dtype=...)`` arguments."""
    demo = "demo_card" in provenance  # a demo name: the base model and the packaged adapter
    patch = (provenance.get("patch") or {}).get("path")
    return {"spec": provenance.get("model") if demo else provenance.get("source"),
            "adapter": None if demo else provenance.get("adapter"), "patch": patch, "dtype": provenance.get("dtype")}


def same_model(recorded: dict[str, Any], loaded: dict[str, Any]) -> list[str]:
    """What differs between the recorded provenance and a loaded model's: names of the hashes that differ.

    Examples:
        >>> same_model({"weights_sha256": "a", "patch": {"sha256": "p"}}, {"weights_sha256": "a", "patch": {"sha256": "q"}})
        ['patch']
    """
    out = [name for key, name in _HASHES if recorded.get(key) != loaded.get(key)]
    if (recorded.get("patch") or {}).get("sha256") != (loaded.get("patch") or {}).get("sha256"):
        out.append("patch")
    return out


def load_recorded_model(provenance: dict[str, Any], what: str = "the audit", device: str | None = None) -> Any:
    """Load the model ``provenance`` describes and check it is the same one (one sentence if not).

    Examples:
        >>> from diffusiongemma.audit.store import AuditStore
        >>> from diffusiongemma.audit.example import example_store
        >>> lm = load_recorded_model(AuditStore(example_store(), readonly=True).meta()["provenance"])
        >>> lm.model.config.num_hidden_layers  # the recorded weights' hash matched: the same model
        2
    """
    from ..models import load_model

    if not provenance:
        raise InputError(f"{what} recorded no model provenance (an audit store written before it was kept); "
                         "rerun the audit into a new --store to record it")
    how = recorded_spec(provenance)
    lm = load_model(how["spec"], adapter=how["adapter"], patch=how["patch"], dtype=how["dtype"], device=device)
    differ = same_model(provenance, lm.provenance)
    if differ:
        raise InputError(f"the model loaded for {what} ({how['spec']}) is not the one it ran on: "
                         f"{', '.join(differ)} not as recorded (SHA-256)")
    return lm
