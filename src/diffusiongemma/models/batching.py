"""How many masked rows go through one forward: chosen from the device's free memory and the model's shape.

A row costs its activations (the widest layer's live tensors, the attention scores, the prefix KV cache
copied per row) plus its logits at the read positions (the vocabulary is wide: 262k words on Gemma). With a
backward pass the decoder layers are checkpointed (:mod:`diffusiongemma.checkpointing`): every layer's input is
kept and one layer at a time is recomputed with its gradients, so the [T, T] attention scores are held once.
The batch is the largest that fits in a fraction of the free memory, capped: on CPU at 64 rows (16 with a
backward pass; two cores gain nothing from more) and 2 GiB; on an accelerator at 4096 rows. A user's ``batch_size`` overrides it.

Examples:
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
    diffusiongemma.errors.MemoryLimitError: one masked prompt of 16000 tokens needs about 29.0 GB for the gradient method's backward pass, more than the 12.0 GB it may take here; use a sampling method (method='shapley') or a shorter prompt
    >>> rows_that_fit(cfg, seq_len=40000, reads=1, dtype_bytes=4, free=20 * 2**30, device_type="cpu")
    Traceback (most recent call last):
    ...
    diffusiongemma.errors.MemoryLimitError: one prompt of 40000 tokens needs about 50.8 GB for one forward pass, more than the 12.0 GB it may take here; use a shorter prompt, or free memory (or raise DIFFUSIONGEMMA_MAX_MEMORY)

The ceiling is the device's free memory; on CPU a user may lower it for the whole process with the environment
variable ``DIFFUSIONGEMMA_MAX_MEMORY`` (``8GB``, ``512MiB``, or bytes): the process's own resident memory counts
against it, and a request above it is refused with :class:`~diffusiongemma.errors.MemoryLimitError` (one sentence,
exit code 2 on the command line; an error row in an audit), not killed by the kernel.

    >>> parse_size("8GB"), parse_size("512MiB"), parse_size("1000")
    (8000000000, 536870912, 1000)
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from ..errors import InputError, MemoryLimitError

__all__ = ["row_bytes", "rows_that_fit", "free_memory", "auto_batch_size", "parse_size", "memory_limit", "LIMIT_ENV"]

LIMIT_ENV = "DIFFUSIONGEMMA_MAX_MEMORY"

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
    linear = 6 * d + (heads + 2 * kv) * head_dim + 3 * ff  # one layer's live tensors but its attention scores
    per_token = linear + 2 * heads * seq_len
    if backward and not checkpointed:  # every layer's tensors kept for the backward; the [T, T] attention scores
        per_token = linear * (layers + 1) + 3 * 2 * heads * seq_len  # are not (one layer's at a time, measured:
        # 3.4 GB peak for heads+mlps gradients at 1,036 tokens where keeping them in every layer predicts 11 GB)
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
    if need > _FRACTION * free:  # a clear error instead of the kernel's out-of-memory kill
        room = f"more than the {_FRACTION * free / 2**30:.1f} GB it may take here"
        if backward:
            raise MemoryLimitError(f"one masked prompt of {seq_len} tokens needs about {need / 2**30:.1f} GB for the "
                                   f"gradient method's backward pass, {room}; use a sampling method "
                                   f"(method='shapley') or a shorter prompt")
        raise MemoryLimitError(f"one prompt of {seq_len} tokens needs about {need / 2**30:.1f} GB for one forward "
                               f"pass, {room}; use a shorter prompt, or free memory (or raise {LIMIT_ENV})")
    rows = int(budget // need)
    return max(1, min(max_rows, rows))


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``8GB``, ``512MiB``, ``1.5 GiB`` or ``1000``.

    Examples:
        >>> parse_size("1.5 GiB")
        1610612736
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        raise InputError(f"{text!r} is not a memory size; write it like 8GB, 512MiB or a number of bytes")
    return int(float(m.group(1)) * _UNITS[unit])


def memory_limit() -> int | None:
    """The process's memory ceiling in bytes from ``DIFFUSIONGEMMA_MAX_MEMORY``, or None when it is not set.

    Examples:
        >>> os.environ[LIMIT_ENV] = "6GB"; memory_limit()
        6000000000
        >>> del os.environ[LIMIT_ENV]; memory_limit() is None
        True
    """
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return None
    try:
        return parse_size(text)
    except InputError:
        raise InputError(f"{LIMIT_ENV}={text!r} is not a memory size; write it like 8GB, 512MiB or a number "
                         f"of bytes") from None


def free_memory(device: torch.device) -> int:
    """Free bytes on ``device``: the CUDA allocator's view on a GPU; on CPU the available RAM, and no more than
    ``DIFFUSIONGEMMA_MAX_MEMORY`` less what this process already holds."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    import psutil  # a dependency of accelerate

    available = int(psutil.virtual_memory().available)
    limit = memory_limit()
    if limit is None:
        return available
    return max(0, min(available, limit - psutil.Process().memory_info().rss))


def auto_batch_size(lm: Any, seq_len: int, reads: int, *, backward: bool = False, checkpointed: bool = True) -> int:
    """Rows per forward for a loaded model on its input device (for a sharded model, the device with the
    least free memory among those it uses bounds the batch).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> auto_batch_size(example_model(), seq_len=40, reads=1) >= 1
        True
    """
    devices = {torch.device(v) for v in (getattr(lm.model, "hf_device_map", None) or {}).values()
               if v not in ("disk", "meta")} or {torch.device(lm.device)}
    dtype_bytes = torch.finfo(lm.model.dtype).bits // 8
    return min(rows_that_fit(lm.model.config, seq_len, reads, dtype_bytes, free_memory(dev), dev.type,
                             backward=backward, checkpointed=checkpointed) for dev in devices)
