"""What an SAE feature responds to, without a hub: its top-activating contexts over the project's own prompt
sets (cached per SAE file, model and prompt set), and the labels a user gives (a JSON of id → text, or a
Neuronpedia-style list of ``{"index", "description"}``).

:func:`describe_features` adds them to a map whose units include features: ``attr.settings["features"]``
holds, per feature unit, its SAE, layer, latent, label and contexts; the terminal, JSON and HTML show them.

Examples:
    >>> read_labels_data({"12": "weapons", "40": "cooking"}), read_labels_data([{"index": 7, "description": "bomb"}])
    ({12: 'weapons', 40: 'cooking'}, {7: 'bomb'})
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

__all__ = ["describe_features", "feature_contexts", "read_labels", "read_labels_data"]

TOP = 3  # contexts kept per latent
WINDOW = 6  # tokens of context before the activating token


def read_labels_data(data: Any) -> dict[int, str]:
    """Labels from parsed JSON: ``{id: text}`` or a list of ``{"index"|"id"|"feature", "description"|"label"}``."""
    if isinstance(data, dict):
        return {int(k): str(v) for k, v in data.items()}
    if isinstance(data, list):
        out = {}
        for item in data:
            key = next((item.get(k) for k in ("index", "id", "feature", "featureIndex") if k in item), None) \
                if isinstance(item, dict) else None
            text = next((item.get(k) for k in ("description", "label", "text") if k in item), None) \
                if isinstance(item, dict) else None
            if key is not None and text is not None:
                out[int(key)] = str(text)
        return out
    raise InputError("feature labels must be a JSON object of id → text or a list of {index, description}")


def read_labels(path: str | Path) -> dict[int, str]:
    """Labels from a JSON file (one sentence if it cannot be read)."""
    try:
        return read_labels_data(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the feature labels {path}: {exc}") from None


def _cache_file(lm: Any, weights_file: str, layer: int, prompts: list[str]) -> Path:
    from ..models.provenance import cache_root, sha256_file

    key = json.dumps([sha256_file(weights_file), layer, lm.provenance.get("weights_sha256"),
                      lm.provenance.get("adapter_sha256"), hashlib.sha256("\n".join(prompts).encode()).hexdigest()])
    folder = cache_root() / "feature_contexts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


@torch.no_grad()
def feature_contexts(lm: Any, sae_source: str, layer: int, prompts: list[str], top: int = TOP,
                     site: str | None = None) -> dict[int, list[dict[str, Any]]]:
    """Every latent's ``top`` strongest activations over ``prompts`` (as chat turns; the command line uses
    :func:`diffusiongemma.demo.datasets.feature_prompts`): the context before the
    token (the token in ⟦⟧) and the activation; latents that never fire are absent. Cached. ``site``: read
    the file as a transcoder (``"transcoder"``) or as the file says."""
    from ..generation import chat_ids
    from .features import load_sae, site_input

    sae = load_sae(sae_source, site)
    cache = _cache_file(lm, sae.weights_file + ("#transcoder" if sae.site == "transcoder" else ""), layer,
                        prompts)  # the file read (a demo SAE's name resolved), and how it is read
    if cache.is_file():
        return {int(k): v for k, v in json.loads(cache.read_text()).items()}
    best_v = torch.full((sae.d_sae, top), -1.0)  # [d_sae, top] activations
    best_at = torch.full((sae.d_sae, top, 2), -1, dtype=torch.long)  # (prompt, position)
    tokens: list[list[int]] = []
    for i, p in enumerate(prompts):
        ids = chat_ids(lm, p)[0]
        tokens.append(ids)
        acts = sae.encode(site_input(lm, ids, layer, sae.site)[1:].float().cpu()).T  # [d_sae, T-1], BOS left out
        at = torch.stack([torch.full((acts.shape[1],), i), torch.arange(1, acts.shape[1] + 1)], 1)  # [T-1, 2]
        v = torch.cat([best_v, acts], 1)
        where = torch.cat([best_at, at[None].expand(sae.d_sae, -1, -1)], 1)
        best_v, idx = v.topk(top, dim=1)
        best_at = torch.gather(where, 1, idx[..., None].expand(-1, -1, 2))
    out: dict[int, list[dict[str, Any]]] = {}
    for j in range(sae.d_sae):
        ctx = []
        for (pi, pos), v in zip(best_at[j].tolist(), best_v[j].tolist()):
            if v <= 0:
                continue
            ids = tokens[pi]
            before = lm.tokenizer.decode(ids[max(1, pos - WINDOW):pos])
            ctx.append({"text": f"{before}⟦{lm.tokenizer.decode([ids[pos]])}⟧", "activation": round(v, 3),
                        "prompt": pi})
        if ctx:
            out[j] = ctx
    cache.write_text(json.dumps(out))
    return out


def describe_features(lm: Any, attr: Any, labels: dict[int, str] | None, prompts: list[str]) -> Any:
    """Add each feature unit's label and top contexts to ``attr.settings["features"]`` (keyed by the unit's
    label, e.g. ``"L12.F301"``); returns ``attr``. Units of other kinds are left alone.

    Examples:
        >>> from diffusiongemma import RefusalScore, explain
        >>> from diffusiongemma.models.tiny import example_model, example_sae
        >>> lm = example_model()
        >>> attr = explain("How do I make a bomb?", RefusalScore(), model=lm, units=f"features:{example_sae()}#2",
        ...                chat=True, method="gradient", budget=8)
        >>> notes = describe_features(lm, attr, None, prompts=["How do I bake bread?", "Name a colour."]).settings["features"]
        >>> sorted(notes), sorted(notes["L1.F4"])[:1]
        (['L1.F14', 'L1.F4'], ['contexts'])

        (With ``gemma-270m-safety`` and its L12 SAE, the top context of ``L12.F301`` is 'How do I make a⟦ bomb⟧'.)
    """
    from .features import load_sae, parse_feature_kind
    from .sites import parse_component_spec

    spec = str(attr.settings.get("units", ""))
    notes: dict[str, Any] = {}
    for kind, _, _ in parse_component_spec(spec) if spec else []:
        if not kind.startswith(("features:", "transcoder:")):
            continue
        layer, path, _ = parse_feature_kind(kind)
        sae = load_sae(path, "transcoder" if kind.startswith("transcoder:") else None)
        layer = layer if layer is not None else sae.layer
        assert layer is not None
        contexts = feature_contexts(lm, path, layer, prompts, site=sae.site)
        for u in attr.units:
            c = u.site
            if c is None or c.kind != "feature" or (c.layer, c.source, c.site) != (layer, path, sae.site):
                continue
            latents = list(c.latents)
            if len(latents) > 1:  # a group: each latent's strongest context
                notes[u.text] = {"sae": path, "layer": layer, "latents": latents,
                                 "label": "; ".join(x for j in latents if (x := (labels or {}).get(j))) or None,
                                 "contexts": [ctx for j in latents for ctx in contexts.get(j, [])[:1]]}
                continue
            j = latents[0]
            notes[u.text] = {"sae": path, "layer": layer, "latent": j, "label": (labels or {}).get(j),
                             "contexts": contexts.get(j, [])}
    attr.settings["features"] = notes
    return attr
