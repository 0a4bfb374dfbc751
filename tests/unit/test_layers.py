"""The package's import rules (issue 28): no module imports another package's private name (a leading
underscore); the command line (``cli/``, one module per command) is the top layer: nothing below imports it, and its
command modules share only ``cli/common.py``. Read from the source with ``ast``, so a new violation fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import diffusiongemma

ROOT = Path(diffusiongemma.__file__).parent


def _imports() -> list[tuple[str, list[str], str]]:
    """(importing file, the imported module's path parts, the imported name) for every relative import."""
    out = []
    for path in ROOT.rglob("*.py"):
        here = list(path.relative_to(ROOT).parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                target = base + (node.module.split(".") if node.module else [])
                out += [(str(path.relative_to(ROOT)), target, a.name) for a in node.names]
    return out


def _owner(parts: list[str]) -> str:
    """The package a module belongs to: its first folder, or the module itself at the root."""
    return parts[0] if len(parts) > 1 or (ROOT / parts[0]).is_dir() else parts[0] + ".py"


def test_no_private_name_crosses_a_package():
    crossing = [(f, ".".join(t), n) for f, t, n in _imports() if t and n.startswith("_") and not n.startswith("__")
                and _owner(t) != _owner(Path(f).with_suffix("").parts)]
    assert crossing == []


def test_nothing_below_the_command_line_imports_it():
    up = [(f, ".".join(t)) for f, t, n in _imports() if t[:1] == ["cli"] and not f.startswith("cli/")
          and f != "__main__.py"]  # the package's entry point
    assert up == []


def test_command_modules_share_only_common():
    cross = [(f, ".".join(t), n) for f, t, n in _imports() if f.startswith("cli/") and f not in ("cli/__init__.py",
             "cli/__main__.py") and t[:1] == ["cli"] and t != ["cli", "common"]]
    assert cross == []


def test_models_know_no_layer_above_them():
    """``models/`` is the lowest layer: loading, architectures, provenance. What the workflows add to loading (demo
    model names, the harden patch) they register in ``models/named.py``."""
    allowed = {"models", "errors.py", "validation.py", "jsontext.py", "_quiet.py"}
    up = [(f, ".".join(t)) for f, t, n in _imports() if f.startswith("models/") and t and _owner(t) not in allowed]
    assert up == []


# torch keeps no public count of a module's hooks; models/hooks.py reads these two to check none is left behind
_TORCH_INTERNALS = {"_forward_hooks", "_forward_pre_hooks"}


def test_no_private_attribute_of_another_object_is_read():
    """Objects talk through public methods (the model adapter, the evaluator's rows/forward/finish): ``x._name`` is
    read only on ``self`` or ``cls``."""
    reads = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and node.attr not in _TORCH_INTERNALS):
                reads.append((str(path.relative_to(ROOT)), node.lineno, ast.unparse(node)))
    assert reads == []


def test_no_import_cycle_between_packages():
    """Layers only point down: the packages and root modules, joined by every relative import (lazy ones inside
    functions included), form no cycle. A cycle is printed as the imports that close it."""
    edges: dict[str, set[str]] = {}
    for f, target, _ in _imports():
        here = _owner(list(Path(f).with_suffix("").parts))
        if not target or not ((ROOT / target[0]).exists() or (ROOT / f"{target[0]}.py").exists()):
            continue
        there = _owner(target)
        if there != here:
            edges.setdefault(here, set()).add(there)

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in (cycle_from(p) for p in sorted(edges)) if c]
    assert cycles == []
