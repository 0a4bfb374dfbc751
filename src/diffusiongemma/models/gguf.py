"""GGUF files as Hugging Face directories, converted once: transformers de-quantises a ``.gguf`` on every load
(a progress bar and seconds to minutes each time), so the weights, the tokenizer and a note of the source are
kept in the user cache under the file's SHA-256, and later loads read that directory.

Examples:
    >>> from pathlib import Path
    >>> cache_dir_for(Path("/m/tiny.gguf"), "0123456789abcdef").name
    'tiny-0123456789ab'
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .provenance import cache_root, sha256_file, write_atomically

__all__ = ["META", "cache_dir_for", "convert_gguf", "cached_gguf", "one_reader_per_file"]

META = "diffusiongemma_source.json"


def cache_dir_for(path: Path, sha256: str) -> Path:
    """Where the conversion of the GGUF ``path`` with this SHA-256 lives."""
    return cache_root() / "models" / f"{path.stem}-{sha256[:12]}"


@contextmanager
def one_reader_per_file() -> Iterator[None]:
    """Within this block a GGUF file is parsed once: transformers builds a fresh ``gguf.GGUFReader`` for the config,
    the tokenizer and the weights, and each parses every metadata field — Gemma's 262,144 tokenizer entries, about
    10 s a parse on 2 cores, so a third of a first conversion each. The reader is read-only (a memory map), so the
    three can share one.

    Examples:
        >>> import gguf
        >>> plain = gguf.GGUFReader
        >>> with one_reader_per_file():
        ...     gguf.GGUFReader is plain
        False
        >>> gguf.GGUFReader is plain
        True
    """
    import gguf as gguf_py

    original = gguf_py.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: Any = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf_py.GGUFReader = reader  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        gguf_py.GGUFReader = original  # type: ignore[misc]


def convert_gguf(gguf: Path, target: Path, meta: dict[str, Any], chat_template: str | None = None) -> Path:
    """De-quantise ``gguf`` into the Hugging Face directory ``target`` (float32 safetensors, tokenizer, ``META``
    with ``meta`` and the weights' hash). Written into a temporary folder and renamed into place, so an
    interrupted or concurrent conversion never leaves half a model behind.

    Examples:
        >>> # a real conversion takes minutes: the slow lane runs it (tests/contract/test_models.py)
        >>> convert_gguf(Path("model.gguf"), Path("out"), {"source": "model.gguf"})  # doctest: +SKIP
        PosixPath('out')
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with one_reader_per_file():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if chat_template:
        tokenizer.chat_template = chat_template
    if hasattr(model.config, "quantization_config"):  # de-quantised now: a plain float32 checkpoint
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / META).write_text(json.dumps({**meta, "weights_sha256": sha256_file(tmp / "model.safetensors")},
                                           indent=2))

    return write_atomically(target, META, build)


def cached_gguf(path: Path) -> Path:
    """The converted directory of a user's GGUF file, converting it on first use (keyed by its SHA-256, so an
    edited or replaced file is converted again).

    Examples:
        >>> # converts on first use (minutes): the slow lane runs it (tests/contract/test_models.py)
        >>> cached_gguf(Path("~/models/my-gemma.gguf").expanduser())  # doctest: +SKIP
        PosixPath('/root/.cache/diffusiongemma/models/my-gemma-3f2a9c0d1e4b')
    """
    digest = sha256_file(path)
    target = cache_dir_for(path, digest)
    if (target / META).exists():
        return target
    return convert_gguf(path, target, {"source": f"GGUF file {path}", "gguf_file": path.name, "gguf_sha256": digest})
