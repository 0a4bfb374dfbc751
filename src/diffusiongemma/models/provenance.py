"""Content hashes of model weights, adapters, tokenizers and chat templates, for reproducible reports.

Hashing a 1 GB weight file takes seconds, so file hashes are remembered in the user cache, keyed by path,
size and modification time.

Examples:
    >>> from diffusiongemma.models.provenance import sha256_text
    >>> sha256_text("abc")[:8]
    'ba7816bf'
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["cache_root", "write_atomically", "library_versions", "sha256_text", "sha256_file", "sha256_files"]


def cache_root() -> Path:
    """The user cache of DiffusionGemma (``$DIFFUSIONGEMMA_CACHE`` or ``~/.cache/diffusiongemma``).

    Examples:
        >>> cache_root().name in ("diffusiongemma",) or "DIFFUSIONGEMMA_CACHE" in os.environ
        True
    """
    env = os.environ.get("DIFFUSIONGEMMA_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "diffusiongemma"
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_atomically(target: Path, marker: str, build: Callable[[Path], object]) -> Path:
    """The folder ``target``, written by ``build(folder)`` into a temporary sibling and renamed into place, so an
    interrupted or concurrent first use never leaves half of it behind (a process that finds ``target / marker``
    written by another in the meantime keeps that one).

    Examples:
        >>> import tempfile
        >>> out = write_atomically(Path(tempfile.mkdtemp()) / "x", "a.txt", lambda d: (d / "a.txt").write_text("1"))
        >>> (out / "a.txt").read_text()
        '1'
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def sha256_text(text: str) -> str:
    """SHA-256 of a string's UTF-8 bytes, hex.

    Examples:
        >>> sha256_text('abc')[:16]
        'ba7816bf8f01cfea'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hash_index() -> Path:
    return cache_root() / "file_hashes.json"


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, remembered by (path, size, mtime) so large weights are hashed once.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_text("abc")
        >>> sha256_file(p)[:8]
        'ba7816bf'
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    index_path = _hash_index()
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    index[key] = digest.hexdigest()
    tmp = index_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, index_path)
    return index[key]


def sha256_files(paths: list[Path]) -> str:
    """One hash over several files (sorted by name): the hash of their hashes."""
    parts = [f"{p.name}:{sha256_file(p)}" for p in sorted(paths, key=lambda p: p.name)]
    return sha256_text("\n".join(parts))


def library_versions() -> dict[str, str]:
    """The versions a result depends on: this library, torch, transformers, numpy and Python.

    Examples:
        >>> sorted(library_versions())
        ['diffusiongemma', 'numpy', 'python', 'torch', 'transformers']
    """
    import numpy
    import torch
    import transformers

    from .. import __version__

    return {"diffusiongemma": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}
