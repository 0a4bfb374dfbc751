"""Learned features: ``features:L=SAE#K`` and ``transcoder:L=FILE#K`` make the K most active latents of a sparse
autoencoder (residual stream after layer L) or a transcoder (MLP input → output) units. Masked, a latent's decoder
contribution is taken out; the reconstruction error stays. The file format, the selection and the hooks are in
:mod:`diffusiongemma.components.features`.

Examples:
    >>> from diffusiongemma.generation import chat_ids
    >>> from diffusiongemma.models.tiny import example_model, example_sae
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> lm = example_model()
    >>> comps = UNIT_KINDS["features"].enumerate(lm, f"features:{example_sae()}#2", None, "",
    ...                                          chat_ids(lm, "How do I make a bomb?")[0])
    >>> [c.label for c in comps]  # the two latents most active at the prompt's last position
    ['L1.F4', 'L1.F14']
"""

from __future__ import annotations

from typing import Any, Hashable

import torch

from ...errors import InputError
from ...units import Component, register_unit_kind
from .base import ComponentKind, Hook, Members, levels


@register_unit_kind("features", domain="component")
class Features(ComponentKind):
    name, unit, spec = "features", "feature", "features:L=SAE"

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        """The K latents most active at the prompt's last position (``#anyK``: at any position, ``#any``: every
        latent active at any position; ``#F301,F767``: those latents; ``/G`` after any of them: groups of G
        latents as one unit)."""
        from ..features import active_features, anywhere, feature_group, load_sae, named_latents, parse_feature_kind

        n_layers = lm.dims.layers
        layer, path, top = parse_feature_kind(part)
        sae = load_sae(path, "transcoder" if part.startswith("transcoder:") else None)
        if layer is None:
            layer = sae.layer
        if layer is None:
            raise InputError(f"the SAE {path} does not say which layer it reads: write features:LAYER={path}")
        if sae.layer is not None and sae.layer != layer:
            raise InputError(f"the SAE {path} was trained on layer {sae.layer}'s residual stream, not layer {layer}")
        if not 0 <= layer < n_layers:
            raise InputError(f"layer {layer} is outside this model's 0-{n_layers - 1}")
        if sae.d_in != lm.model.config.hidden_size:
            raise InputError(f"the SAE {path} reads vectors of width {sae.d_in}; this model's residual stream has "
                             f"width {lm.model.config.hidden_size}")
        named = named_latents(part)
        if named is not None and max(named) >= sae.d_sae:
            raise InputError(f"the SAE {path} has {sae.d_sae} latents; F{max(named)} is not one of them")
        if named is None and input_ids is None:
            raise InputError("feature units are chosen on a prompt (its most active latents); give one")
        latents = named if named is not None else active_features(lm, input_ids, sae, layer, top,  # type: ignore[arg-type]
                                                                  any_position=anywhere(part))
        if not latents:
            raise InputError(f"no latent of the SAE {path} is active at the prompt's "
                             f"{'positions' if anywhere(part) else 'last position'}")
        g = feature_group(part)
        if g > 1:  # consecutive latents by strength, one unit per group
            return [Component("feature", layer, latents[k], path, positions=positions, site=sae.site,
                              group=tuple(latents[k:k + g])) for k in range(0, len(latents), g)]
        return [Component("feature", layer, j, path, positions=positions, site=sae.site) for j in latents]

    def label(self, c: Component) -> str:
        return f"L{c.layer}.{'T' if c.site == 'transcoder' else 'F'}" + "/".join(map(str, c.latents))

    def group(self, c: Component) -> Hashable:
        return c.layer, c.site, c.source  # one SAE's latents share its hooks

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        from ..features import feature_hooks, load_sae

        first = members[0][1]
        flat = [(col, j, c.positions) for col, c in members for j in c.latents]  # a group: its column per latent
        pos = [p for _, _, p in flat]
        return feature_hooks(lm, load_sae(first.source, first.site), first.layer, [j for _, j, _ in flat],
                             [col for col, _, _ in flat], masks, lambda m, T: levels(m, pos, prompt_len, T))


@register_unit_kind("transcoder", domain="component")
class Transcoder(Features):
    name, spec = "transcoder", "transcoder:L=FILE"
