"""Batched masking of components: row ``r`` of a ``[b, n]`` mask (1 keeps, 0 masks, in between: a soft mask)
sets each component's output to ``m·activation + (1 − m)·baseline``.

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

Example:
    >>> import torch
    >>> from diffusiongemma.components.sites import enumerate_components
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()
    >>> comps = enumerate_components(lm, "heads+mlps")
    >>> hooks = component_hooks(lm, comps, torch.ones(4, len(comps)), {}, prompt_len=12)
    >>> len(comps), len(hooks) > 0  # (module, hook kind, function) triples, registered by the caller for one forward
    (10, True)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from .positions import position_mask
from .sites import Component, direction_vector

__all__ = ["component_hooks", "site_module"]


def site_module(lm: Any, kind: str, layer: int) -> torch.nn.Module:
    """The module whose input (heads, neurons) or output (mlp, layer) a component lives in."""
    arch = lm.architecture
    block = lm.layers[layer]
    if kind == "head":
        return block.get_submodule(f"{arch.attn}.{arch.attn_out}")
    if kind == "neuron":
        return block.get_submodule(f"{arch.mlp}.{arch.mlp_out}")
    if kind == "mlp":
        return block.get_submodule(arch.mlp)
    return block


def _mix(x: torch.Tensor, m: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
    """``m·x + (1 − m)·base``, on the device and in the dtype of ``x`` (a sharded model's layer may live on
    another device than the masks)."""
    m = m.to(x.device, x.dtype)
    return m * x if base is None else m * x + (1 - m) * base.to(x.device, x.dtype)


def _levels(m: torch.Tensor, positions: list[str], prompt_len: int | None, T: int) -> torch.Tensor:
    """Keep levels ``[b, T or 1, w]`` of ``w`` columns ``m`` ``[b, w]`` under their position restrictions."""
    if not any(positions):
        return m[:, None, :]
    masks = {s: position_mask(s, prompt_len or T, T, m.device) for s in set(positions)}
    p = torch.stack([masks[s] for s in positions], dim=1).to(m.dtype)  # [T, w]
    return 1 - p[None] * (1 - m[:, None, :])


def _stack_baselines(parts: list[tuple[slice, torch.Tensor | None]], width: int) -> torch.Tensor | None:
    """One ``[width]`` (or ``[T, width]``) baseline from the baselines of slices of it (zero elsewhere)."""
    given = [b for _, b in parts if b is not None]
    if not given:
        return None
    out = torch.zeros(*given[0].shape[:-1], width, dtype=given[0].dtype, device=given[0].device)
    for where, b in parts:
        if b is not None:
            out[..., where] = b
    return out


def component_hooks(lm: Any, components: list[Component], masks: torch.Tensor,
                    baselines: dict[Component, torch.Tensor], prompt_len: int | None = None
                    ) -> list[tuple[Any, str, Any]]:
    """Hooks that apply ``masks`` ``[b, n]`` (one row per batch row) to ``components``; position restrictions
    count from the start of a prompt of ``prompt_len`` tokens (default: the whole sequence)."""
    hooks: list[tuple[Any, str, Any]] = []
    grouped: dict[tuple[str, int, str], list[tuple[int, Component]]] = defaultdict(list)
    for col, c in enumerate(components):
        grouped[(c.kind, -1 if c.kind == "direction" else c.layer,
                 f"{c.site}:{c.source}" if c.kind == "feature" else "")].append((col, c))
    for (kind, layer, site_source), members in grouped.items():
        source = site_source.partition(":")[2]
        if kind == "direction":
            hooks += _direction_hooks(lm, members, masks, prompt_len)
        elif kind == "feature":
            from .features import feature_hooks, load_sae

            flat = [(col, j, c.positions) for col, c in members for j in c.latents]  # a group: its column per latent
            pos = [p for _, _, p in flat]
            hooks += feature_hooks(lm, load_sae(source, members[0][1].site), layer, [j for _, j, _ in flat],
                                   [col for col, _, _ in flat], masks,
                                   lambda m, T, pos=pos: _levels(m, pos, prompt_len, T))
        elif kind in ("head", "neuron"):
            hooks.append(_split_hook(lm, kind, layer, members, masks, baselines, prompt_len))
        else:
            for col, c in members:
                hooks.append(_output_hook(lm, c, masks[:, col:col + 1], baselines.get(c), prompt_len))
    return hooks


def _output_hook(lm: Any, c: Component, m: torch.Tensor, base: torch.Tensor | None,
                 prompt_len: int | None) -> tuple[Any, str, Any]:
    """An MLP's output, or a block's contribution, mixed with its baseline (``m`` ``[b, 1]``)."""
    pos = [c.positions]
    if c.kind == "mlp":
        def mlp_hook(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return _mix(output, _levels(m, pos, prompt_len, output.shape[1]), base)  # [b, T, d]

        return site_module(lm, "mlp", c.layer), "forward", mlp_hook

    def layer_hook(module: Any, args: Any, kwargs: Any, output: Any) -> Any:
        hidden_in = args[0] if args else kwargs["hidden_states"]
        out = output[0] if isinstance(output, tuple) else output  # [b, T, d]
        hidden_in = hidden_in.to(out.device)  # a shard's input arrives before accelerate moves it
        new = hidden_in + _mix(out - hidden_in, _levels(m, pos, prompt_len, out.shape[1]), base)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return site_module(lm, "layer", c.layer), "forward_kw", layer_hook


def _split_hook(lm: Any, kind: str, layer: int, members: list[tuple[int, Component]], masks: torch.Tensor,
                baselines: dict[Component, torch.Tensor], prompt_len: int | None) -> tuple[Any, str, Any]:
    """One pre-hook on the input of the attention output projection (heads) or of the MLP down projection
    (neurons), masking slices of its last dimension."""
    _, n_heads, inner = lm.dims
    if kind == "head":
        width = n_heads
        slices = [slice(c.index, c.index + 1) for _, c in members]
    else:
        width = inner
        slices = [slice(c.neurons.start, c.neurons.stop) for _, c in members]
    idx = torch.cat([torch.arange(s.start, s.stop) for s in slices]).to(masks.device)
    vals = torch.cat([masks[:, col:col + 1].expand(-1, s.stop - s.start) for (col, _), s in zip(members, slices)], 1)
    m_full = torch.ones(masks.shape[0], width, dtype=masks.dtype, device=masks.device).index_copy(1, idx, vals)  # [b, w]
    pos = [""] * width
    for (_, c), s in zip(members, slices):
        pos[s] = [c.positions] * (s.stop - s.start)
    if kind == "head":
        given = {c.index: baselines[c] for _, c in members if baselines.get(c) is not None}
        like = next(iter(given.values()), None)
        base = None if like is None else torch.stack(
            [given.get(h, torch.zeros_like(like)) for h in range(n_heads)], dim=-2)  # [(T,) H, dh]
    else:
        base = _stack_baselines([(s, baselines.get(c)) for (_, c), s in zip(members, slices)], width)  # [(T,) I]

    def hook(module: Any, args: Any) -> Any:
        x = args[0]  # [b, T, width·dh] (heads) or [b, T, inner] (neurons)
        b, T, full = x.shape
        lev = _levels(m_full, pos, prompt_len, T)  # [b, T|1, w]
        if kind == "neuron":
            return (_mix(x, lev, base), *args[1:])
        x4 = x.view(b, T, n_heads, full // n_heads)
        return (_mix(x4, lev[..., None], base).reshape(b, T, full), *args[1:])

    return site_module(lm, kind, layer), "forward_pre", hook


def _direction_hooks(lm: Any, directions: list[tuple[int, Component]], masks: torch.Tensor,
                     prompt_len: int | None) -> list[tuple[Any, str, Any]]:
    """Every decoder layer's output loses ``(1 − m)`` of its component along each masked direction."""
    units = torch.stack([direction_vector(c.source)[0] for _, c in directions])  # [k, d]
    cols = [col for col, _ in directions]
    pos = [c.positions for _, c in directions]

    def ablate(module: Any, inputs: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # [b, T, d]
        r = units.to(hidden.device, hidden.dtype)  # [k, d]
        drop = 1 - _levels(masks[:, cols], pos, prompt_len, hidden.shape[1]).to(hidden.device, hidden.dtype)  # [b, T|1, k]
        for j in range(r.shape[0]):
            hidden = hidden - drop[..., j, None] * (hidden @ r[j])[..., None] * r[j]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return [(layer, "forward", ablate) for layer in lm.layers]
