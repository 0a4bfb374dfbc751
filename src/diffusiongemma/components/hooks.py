"""Batched masking of components: row ``r`` of a ``[b, n]`` mask (1 keeps, 0 masks, in between: a soft mask)
sets each component's output to ``m·activation + (1 − m)·baseline``. Where and how is the kind's (one module of
:mod:`.kinds` each):

* head ``h`` of layer ``l``: the input of the layer's attention output projection, split per head;
* MLP of layer ``l``: the MLP module's output;
* neuron group of layer ``l``: its slice of the input of the MLP's down projection (the hidden neurons);
* layer ``l``: the block's contribution ``out − in`` (masked, the block passes its input on unchanged, plus
  the baseline contribution);
* direction ``r̂``: its component of every decoder layer's output, ``h ← h − (1 − m)(h·r̂) r̂`` (masked: projected
  out everywhere; no baseline);
* SAE feature ``j`` at layer ``l``: its decoder contribution to the layer's output, ``h ← h − (1 − m) f_j(h)
  W_dec[j]``; the reconstruction error stays (:mod:`.features`); a transcoder latent's contribution to the
  MLP's output, read from the MLP's normalised input.

A component restricted to positions (``@last``, see :mod:`.positions`) is masked there only: its keep level
is ``1 − p_t (1 − m)`` at position ``t``. Baselines are ``[dh]`` per head, ``[size]`` per neuron group and
``[d]`` per MLP / layer (``None``: zero), or the same with a leading ``[T]`` (resampled from a counterfactual
run, position by position). Everything goes through :func:`~diffusiongemma.models.hooks.scoped_hooks`, so no hook
outlives the forward.

Examples:
    >>> import torch
    >>> from diffusiongemma.components.sites import enumerate_components
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()
    >>> comps = enumerate_components(lm, "heads+mlps")
    >>> hooks = component_hooks(lm, comps, torch.ones(4, len(comps)), {}, prompt_len=12)
    >>> len(comps), len(hooks)  # one hook per layer's heads, one per MLP: (module, hook kind, function) triples
    (10, 4)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Hashable

import torch

from ..units import Component, component_kind
from .kinds.base import Hook, Members

__all__ = ["component_hooks"]


def component_hooks(lm: Any, components: list[Component], masks: torch.Tensor,
                    baselines: dict[Component, torch.Tensor], prompt_len: int | None = None) -> list[Hook]:
    """Hooks that apply ``masks`` ``[b, n]`` (one row per batch row) to ``components``; position restrictions
    count from the start of a prompt of ``prompt_len`` tokens (default: the whole sequence)."""
    grouped: dict[tuple[str, Hashable], Members] = defaultdict(list)
    for col, c in enumerate(components):
        grouped[(c.kind, component_kind(c.kind).group(c))].append((col, c))
    hooks: list[Hook] = []
    for (kind, _), members in grouped.items():
        hooks += component_kind(kind).hooks(lm, members, masks, baselines, prompt_len)
    return hooks
