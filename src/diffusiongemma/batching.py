"""How many masked rows go through one forward: chosen from the device's free memory and the model's shape.

A row costs its activations (the widest layer's live tensors, the attention scores, the prefix KV cache
copied per row) plus its logits at the read positions (the vocabulary is wide: 262k words on Gemma). With a
backward pass the decoder layers are checkpointed (:mod:`diffusiongemma.checkpointing`): every layer's input is
kept and one layer at a time is recomputed with its gradients, so the [T, T] attention scores are held once.
The batch is the largest that fits in a fraction of the free memory, capped: on CPU at 64 rows (16 with a
backward pass; two cores gain nothing from more) and 2 GiB; on an accelerator at 4096 rows. A user's ``batch_size`` overrides it.

Example:
    >>> from types import SimpleNamespace
    >>> cfg = SimpleNamespace(hidden_size=640, intermediate_size=2048, num_attention_heads=4,
    ...                       num_key_value_heads=1, head_dim=256, num_hidden_layers=18, vocab_size=262144)
    >>> round(row_bytes(cfg, seq_len=32, reads=1, dtype_bytes=2) / 2**20, 1)  # MiB per row, bf16
    3.8
    >>> rows_that_fit(cfg, seq_len=32, reads=1, dtype_bytes=2, free=100 * 2**30, device_type="cuda")
    4096
    >>> rows_that_fit(cfg, seq_len=32, reads=1, dtype_bytes=4, free=100 * 2**30, device_type="cpu")
    64
    >>> rows_that_fit(cfg, seq_len=4147, reads=1, dtype_bytes=4, free=20 * 2**30, device_type="cpu", backward=True)
    1
    >>> rows_that_fit(cfg, seq_len=16000, reads=1, dtype_bytes=4, free=20 * 2**30, device_type="cpu", backward=True)
    Traceback (most recent call last):
    ...
    diffusiongemma.errors.InputError: one masked prompt of 16000 tokens needs about 29.0 GB for the gradient method's backward pass, more than the 12.0 GB it may take here; use a sampling method (method='shapley') or a shorter prompt
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .errors import InputError

__all__ = ["row_bytes", "rows_that_fit", "free_memory", "auto_batch_size"]

_FRACTION = 0.6  # of the free memory a batch may take
_CAPS = {"cpu": (64, 2 * 2**30)}  # device type -> (rows, bytes)
_ACCELERATOR_CAP = (4096, None)
_CPU_BACKWARD_ROWS = 16  # forward + backward rows at a time on CPU


def _dim(config: Any, *names: str, default: int | None = None) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value:
            return int(value)
    if default is None:
        raise ValueError(f"the model config has none of {names}")
    return default


def row_bytes(config: Any, seq_len: int, reads: int, dtype_bytes: int, *, backward: bool = False,
              checkpointed: bool = True) -> int:
    """Bytes one row of a batch needs at the peak of a forward (with ``backward``: every layer's input and one
    layer's activations with their gradients, or with ``checkpointed=False`` all layers' activations)."""
    d = _dim(config, "hidden_size", "n_embd")
    heads = _dim(config, "num_attention_heads", "n_head")
    kv = _dim(config, "num_key_value_heads", default=heads)
    head_dim = _dim(config, "head_dim", default=d // heads)
    ff = _dim(config, "intermediate_size", "n_inner", default=4 * d)
    layers = _dim(config, "num_hidden_layers", "n_layer")
    vocab = _dim(config, "vocab_size")
    per_token = 6 * d + (heads + 2 * kv) * head_dim + 2 * heads * seq_len + 3 * ff  # one layer's live tensors
    if backward and not checkpointed:
        per_token *= layers + 1
    elif backward:  # layers checkpointed: their inputs kept, one layer recomputed with its gradients at a time,
        types = len(set(getattr(config, "layer_types", None) or ["full"]))  # and a soft [T, T] mask per type
        per_token = layers * d + 3 * per_token + 3 * types * seq_len
    cache = 2 * layers * kv * head_dim  # the prefix KV cache, copied per row
    logits = reads * vocab * (dtype_bytes + 8)  # model-dtype logits, their float32 copy, log-softmax
    return dtype_bytes * seq_len * (per_token + cache) + logits


def rows_that_fit(config: Any, seq_len: int, reads: int, dtype_bytes: int, free: int, device_type: str,
                  *, backward: bool = False, checkpointed: bool = True) -> int:
    """The batch size for ``free`` bytes on a device of ``device_type``, within that type's caps."""
    max_rows, max_bytes = _CAPS.get(device_type, _ACCELERATOR_CAP)
    if backward and device_type == "cpu":
        max_rows = _CPU_BACKWARD_ROWS
    budget = _FRACTION * free if max_bytes is None else min(_FRACTION * free, max_bytes)
    need = row_bytes(config, seq_len, reads, dtype_bytes, backward=backward, checkpointed=checkpointed)
    if backward and need > _FRACTION * free:  # a clear error instead of the kernel's out-of-memory kill
        raise InputError(f"one masked prompt of {seq_len} tokens needs about {need / 2**30:.1f} GB for the gradient "
                         f"method's backward pass, more than the {_FRACTION * free / 2**30:.1f} GB it may take here; "
                         f"use a sampling method (method='shapley') or a shorter prompt")
    rows = int(budget // need)
    return max(1, min(max_rows, rows))


def free_memory(device: torch.device) -> int:
    """Free bytes on ``device``: the CUDA allocator's view on a GPU, available RAM on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        import psutil  # a dependency of accelerate

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def auto_batch_size(lm: Any, seq_len: int, reads: int, *, backward: bool = False, checkpointed: bool = True) -> int:
    """Rows per forward for a loaded model on its input device (for a sharded model, the device with the
    least free memory among those it uses bounds the batch).

    Example:
        >>> auto_batch_size(lm, seq_len=40, reads=1)  # doctest: +SKIP
        64
    """
    devices = {torch.device(v) for v in (getattr(lm.model, "hf_device_map", None) or {}).values()
               if v not in ("disk", "meta")} or {torch.device(lm.device)}
    dtype_bytes = torch.finfo(lm.model.dtype).bits // 8
    return min(rows_that_fit(lm.model.config, seq_len, reads, dtype_bytes, free_memory(dev), dev.type,
                             backward=backward, checkpointed=checkpointed) for dev in devices)
