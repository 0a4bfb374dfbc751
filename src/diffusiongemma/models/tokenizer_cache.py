"""Tokenizers read once per process: transformers parses Gemma's 33 MB ``tokenizer.json`` in Python on every
``AutoTokenizer.from_pretrained`` (3.6 s of a 5.1 s ``load_model`` on 2 cores, measured 2026-12-07), and every demo
model, adapter and patched model of the default Gemma reads the same files. Later loads from unchanged files get
a shallow copy of the first tokenizer: its own Python attributes (``chat_template``, ``padding_side``), the Rust
tokenizer shared (transformers sets its padding and truncation on every call, so nothing carries between calls).

Examples:
    >>> from diffusiongemma.models.tiny import ensure_tiny_model
    >>> a, b = load_tokenizer(ensure_tiny_model()), load_tokenizer(ensure_tiny_model())
    >>> a is b, a.backend_tokenizer is b.backend_tokenizer, a("Hi there")["input_ids"] == b("Hi there")["input_ids"]
    (False, True, True)
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

__all__ = ["load_tokenizer"]

_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
          "tokenizer.model", "added_tokens.json")
_CACHE: dict[tuple[str, str], tuple[tuple[tuple[str, int, int], ...], Any]] = {}  # one per directory
_LOCK = threading.Lock()


def _stats(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """The size and modification time of each tokenizer file in ``directory``: an edited file reads anew."""
    stats = []
    for name in _FILES:
        path = directory / name
        if path.is_file():
            st = path.stat()
            stats.append((name, st.st_size, st.st_mtime_ns))
    return tuple(stats)


def load_tokenizer(directory: str | Path, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained(directory, **kwargs)``, read once per process for the same files.

    Examples:
        >>> from diffusiongemma.models.tiny import ensure_tiny_model
        >>> load_tokenizer(ensure_tiny_model(), local_files_only=True).convert_tokens_to_ids("<start_of_turn>")
        105
    """
    from transformers import AutoTokenizer

    directory = Path(directory)
    key, stats = (str(directory.resolve()), repr(sorted(kwargs.items()))), _stats(directory)
    with _LOCK:
        seen = _CACHE.get(key)
    if seen is None or seen[0] != stats:  # first read, or the files changed since: the new parse replaces the old
        seen = (stats, AutoTokenizer.from_pretrained(str(directory), **kwargs))
        with _LOCK:
            _CACHE[key] = seen
    return copy.copy(seen[1])
