"""The model adapter: everything the library asks of a loaded causal LM, in one public place.

A :class:`~diffusiongemma.models.LoadedModel` is a :class:`ModelAdapter`. Evaluation, stacking, the component
game and the workflows reach the model only through it:

* ``lm.layers`` (the decoder layers), ``lm.embedding`` (the token embedding), ``lm.dims`` (layers, heads, MLP
  neurons), each read from the architecture map (:mod:`diffusiongemma.models.architectures`);
* ``lm.forward_at(ids, attention, read)``: one forward whose logits are computed only at the read positions
  (the LM head of a 262k-word vocabulary runs nowhere else), or a probe's projection at one layer;
* ``lm.prefix_cache(ids)``: the KV cache of a prefix that every row shares, computed once;
* ``lm.rows_per_forward(seq_len, reads)``: how many rows fit one forward (:mod:`.batching`).

Examples:
    >>> import torch
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()
    >>> lm.dims, len(lm.layers)  # 2 layers, 4 heads, 128 MLP neurons
    (Dims(layers=2, heads=4, neurons=128), 2)
    >>> ids = torch.tensor([[2, 818, 5279, 529]])  # [b, T]
    >>> lm.forward_at(ids, torch.ones_like(ids), read=torch.tensor([[3]])).shape  # [b, r, V]
    torch.Size([1, 1, 262144])
    >>> prefix = lm.prefix_cache(ids[0, :2])  # the first two tokens, computed once
    >>> torch.allclose(lm.forward_at(ids, torch.ones_like(ids), torch.tensor([[3]]), prefix=prefix),
    ...                lm.forward_at(ids, torch.ones_like(ids), torch.tensor([[3]])), atol=1e-4)
    True
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple, Protocol, Sequence

import torch

from ..errors import InputError
from .architectures import Architecture
from .batching import auto_batch_size
from .forward import cache_kwarg, last_logits_only
from .hooks import scoped_hooks

__all__ = ["Dims", "ModelAdapter", "PrefixCache", "Probe"]


class Dims(NamedTuple):
    """A model's sizes: decoder layers, attention heads per layer, MLP hidden neurons per layer."""

    layers: int
    heads: int
    neurons: int


class Probe(Protocol):
    """What :meth:`ModelAdapter.forward_at` reads instead of logits: ``vector · h`` of layer ``layer``'s output."""

    layer: int
    vector: torch.Tensor  # [d]


class _Stop(Exception):
    """Raised by a probe's hook once it has what it reads: the rest of the forward is not needed."""


class PrefixCache:
    """The KV cache of ``ids`` (``[P]``), the start every row of a batch shares: computed on first use, then
    copied per row. ``length`` tokens are then not fed again."""

    def __init__(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        if len(ids) < 2:
            raise InputError("a prefix cache needs at least two tokens")
        self.adapter = adapter
        self.ids = ids  # [P]
        self.length = len(ids)
        self._cache: Any = None

    @property
    def computed(self) -> bool:
        """Whether the cache has been computed (on the first :meth:`rows`)."""
        return self._cache is not None

    def rows(self, b: int) -> Any:
        """A fresh copy of the cache for ``b`` rows (the forward writes into the cache it is given)."""
        if self._cache is None:
            model = self.adapter.model
            with torch.no_grad():
                out = model(input_ids=self.ids[None], use_cache=True, **last_logits_only(model))
            self._cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)  # "cache": transformers 5.2x
        batch = copy.deepcopy(self._cache)
        batch.batch_repeat_interleave(b)
        return batch


class ModelAdapter:
    """What the library asks of a causal LM (a mixin of :class:`~diffusiongemma.models.LoadedModel`)."""

    model: Any  # a transformers PreTrainedModel
    architecture: Architecture

    @property
    def device(self) -> Any:
        """Where inputs go: the embedding's execution device (a model sharded by ``device_map`` may hold
        its layers on several devices, or offloaded on ``meta``)."""
        embed = self.embedding
        where = getattr(getattr(embed, "_hf_hook", None), "execution_device", None)
        if where is not None:
            return torch.device(where)
        return next(embed.parameters()).device

    @property
    def layers(self) -> torch.nn.ModuleList:
        """The decoder layers, as the architecture map names them."""
        return self.model.get_submodule(self.architecture.layers)

    @property
    def embedding(self) -> torch.nn.Module:
        """The token embedding module (its output includes any scaling the model applies)."""
        return self.model.get_submodule(self.architecture.embed)

    @property
    def dims(self) -> Dims:
        """(layers, attention heads, MLP hidden neurons), read from the config under its usual names."""
        cfg = self.model.config
        n_layers = int(getattr(cfg, "num_hidden_layers", None) or cfg.n_layer)
        n_heads = int(getattr(cfg, "num_attention_heads", None) or cfg.n_head)
        inner = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * int(cfg.hidden_size)
        return Dims(n_layers, n_heads, int(inner))

    def rows_per_forward(self, seq_len: int, reads: int, *, backward: bool = False, checkpointed: bool = True) -> int:
        """Rows of ``seq_len`` tokens with ``reads`` read positions each that fit one forward (and backward) on
        this model's devices (see :mod:`.batching`)."""
        return auto_batch_size(self, seq_len, reads, backward=backward, checkpointed=checkpointed)

    def prefix_cache(self, ids: torch.Tensor) -> PrefixCache:
        """The KV cache of the prefix ``ids`` ``[P]`` (P ≥ 2), for :meth:`forward_at`'s ``prefix=``."""
        return PrefixCache(self, ids)

    def forward_at(self, ids: torch.Tensor, attention: Any, read: torch.Tensor, *,
                   positions: torch.Tensor | None = None, prefix: PrefixCache | None = None,
                   hooks: Sequence[tuple[Any, str, Any]] = (), first_read: torch.Tensor | None = None,
                   probe: Probe | None = None) -> torch.Tensor:
        """Logits ``[b, r, V]`` (float32 at least) at the read positions ``[b, r]`` of ids ``[b, T]``.

        ``attention``: ``[b, T]`` of 0/1, or a prepared 4-D additive mask. ``positions`` (``[T]`` or ``[b, T]``)
        overrides 0..T-1. ``prefix``: every row starts with its ids; they are not fed again. ``hooks`` are on
        for this forward only. ``first_read`` weights ``[b, T]``: the first read is that mixture of positions.
        ``probe``: instead of logits, ``probe.vector · h`` of layer ``probe.layer``'s output at the first read
        position, ``[b, 1, 1]``; the layers above it are not run."""
        b, T = ids.shape
        if positions is None:
            positions = torch.arange(T, device=ids.device)
        positions = positions.expand(b, -1) if positions.dim() == 1 else positions  # [b, T]
        kwargs: dict[str, Any] = {"logits_to_keep": 0, "use_cache": False}
        start = 0
        if prefix is not None:
            start = prefix.length
            kwargs.update({cache_kwarg(self.model): prefix.rows(b), "use_cache": True})
        index = (read - start).unsqueeze(-1)  # [b, r, 1], relative to the fed positions

        def gather(module: Any, args: Any) -> Any:
            hidden = args[0]  # [b, T', d]: the LM head's input at every fed position
            picked = hidden.gather(1, index.to(hidden.device).expand(-1, -1, hidden.shape[-1]))  # [b, r, d]
            if first_read is not None:
                mixed = torch.einsum("bt,btd->bd", first_read.to(hidden.device, hidden.dtype), hidden)  # [b, d]
                picked = torch.cat([mixed[:, None], picked[:, 1:]], dim=1)
            return (picked, *args[1:])

        got: list[torch.Tensor] = []
        read_hook: tuple[Any, str, Any]
        if probe is None:  # logits at the read positions only
            read_hook = (self.model.get_output_embeddings(), "forward_pre", gather)
        else:  # the probe's layer at the first read position, then stop the forward
            vector = probe.vector

            def grab(module: Any, inputs: Any, output: Any) -> None:
                hidden = output[0] if isinstance(output, tuple) else output  # [b, T', d]
                picked = gather(module, (hidden,))[0][:, 0]  # [b, d]
                got.append((picked.float() @ vector.to(picked.device, torch.float32))[:, None, None])  # [b, 1, 1]
                raise _Stop

            read_hook = (self.layers[probe.layer], "forward", grab)
        try:
            with scoped_hooks([*hooks, read_hook]):
                out = self.model(input_ids=ids[:, start:], attention_mask=attention,
                                 position_ids=positions[:, start:], **kwargs)
        except _Stop:
            return got[0].to(ids.device)
        return out.logits.to(torch.promote_types(out.logits.dtype, torch.float32))  # float32 at least
