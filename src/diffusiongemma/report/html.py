"""Self-contained HTML page of an Attribution (no external resources; every piece of text escaped).

Examples:
    >>> from diffusiongemma import explain
    >>> from diffusiongemma.models.tiny import example_model
    >>> html = render_attribution_html(explain("<b>Hi</b> there", " you", model=example_model(), budget=16))
    >>> html.startswith("<!DOCTYPE html>"), "<b>Hi" in html, "&lt;b&gt;Hi" in html  # untrusted text escaped
    (True, False, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from .colors import heat_color

__all__ = ["render_attribution_html"]

ENV = Environment(loader=PackageLoader("diffusiongemma.report", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))


UNRESOLVED = "transparent"  # a unit that is not a finding gets no colour (see diffusiongemma.significance)


def _segments(attr: Any, scale: float, resolved: np.ndarray) -> list[dict[str, Any]]:
    """Cut the prompt text into plain and unit pieces, in order, for the heat map; only resolved units are
    coloured."""
    pieces, pos = [], 0
    spans = sorted(((u.start, u.end, i) for i, u in enumerate(attr.units) if u.end > u.start),  # components: none
                   key=lambda s: s[0])
    for start, end, i in spans:
        if start < pos:  # overlapping spans (custom units): show each piece once
            continue
        if start > pos:
            pieces.append({"text": attr.text[pos:start], "unit": None})
        ok = bool(resolved[i])
        pieces.append({"text": attr.text[start:end], "unit": i, "score": float(attr.scores[i]),
                       "stderr": float(attr.stderr[i]), "resolved": ok,
                       "color": heat_color(float(attr.scores[i]), scale) if ok else UNRESOLVED})
        pos = end
    if pos < len(attr.text):
        pieces.append({"text": attr.text[pos:], "unit": None})
    return pieces


def render_attribution_html(attr: Any) -> str:
    """Render the page."""
    finite = np.where(np.isfinite(attr.stderr), attr.stderr, 0.0)
    scale = float(np.max(np.abs(attr.scores) + finite)) if len(attr.scores) else 1.0
    sig = attr.significance
    rows = []
    for i, u in enumerate(attr.units):
        s, e = float(attr.scores[i]), float(attr.stderr[i])
        lo, hi = s - 2 * e, s + 2 * e
        rows.append({
            "index": i, "text": u.text, "role": u.site.kind if u.site else u.role, "score": s,
            "resolved": bool(sig.resolved[i]),
            "stderr": e if np.isfinite(e) else None,
            "color": heat_color(s, scale) if sig.resolved[i] else "#bbbbbb",
            # bar geometry in percent of a [-scale, scale] axis centred at 50 %
            "bar_left": 50 + 50 * min(s, 0) / scale if scale else 50,
            "bar_width": 50 * abs(s) / scale if scale else 0,
            "err_left": 50 + 50 * max(lo, -scale) / scale if scale and np.isfinite(e) else None,
            "err_width": 50 * (min(hi, scale) - max(lo, -scale)) / scale if scale and np.isfinite(e) else None,
        })
    return ENV.get_template("attribution.html.j2").render(
        a=attr, segments=_segments(attr, scale, sig.resolved), rows=rows, scale=scale, gap=attr.efficiency_gap,
        pairs=_pairs(attr), grid=_component_grid(attr, scale, sig.resolved), sig=sig,
        advice=sig.advice(attr.evaluations),
    )


def _pairs(attr: Any) -> list[dict[str, Any]]:
    """The pair view: each interaction with its two units' text and a bar on a shared axis."""
    pairs = attr.interactions or []
    top = max((abs(v) for _, _, v in pairs), default=0.0) or 1.0
    return [{"a": attr.units[i].text, "b": attr.units[j].text, "value": v, "color": heat_color(v, top),
             "bar_left": 50 + 50 * min(v, 0) / top, "bar_width": 50 * abs(v) / top} for i, j, v in pairs]


def _component_grid(attr: Any, scale: float, resolved: np.ndarray) -> dict[str, Any] | None:
    """Layer × head heat map with an MLP (and whole-layer) strip, when the units are model components (read from
    each unit's site, not its label)."""
    comps = [(i, u.site) for i, u in enumerate(attr.units) if u.site is not None and u.site.kind in ("head", "mlp", "layer")]
    if not comps:
        return None
    cells: dict[tuple[int, str], dict[str, Any]] = {}
    heads: set[tuple[str, int]] = set()  # (position restriction, head index)
    for i, c in comps:
        where = f"@{c.positions}" if c.positions else ""
        col = {"head": f"H{c.index}", "mlp": "MLP", "layer": "layer"}[c.kind] + where
        if c.kind == "head":
            heads.add((c.positions, c.index))
        s, e = float(attr.scores[i]), float(attr.stderr[i])
        cells[(c.layer, col)] = {"score": s, "stderr": e if np.isfinite(e) else None, "resolved": bool(resolved[i]),
                                 "color": heat_color(s, scale) if resolved[i] else UNRESOLVED,
                                 "label": attr.units[i].text}
    others = sorted({k[1] for k in cells if not k[1].startswith("H")}, key=lambda c: (c.partition("@")[2], c))
    columns = [f"H{h}" + (f"@{w}" if w else "") for w, h in sorted(heads)] + others
    layers = sorted({k[0] for k in cells})
    return {"columns": columns,
            "rows": [{"layer": layer, "cells": [cells.get((layer, c)) for c in columns]} for layer in layers]}
