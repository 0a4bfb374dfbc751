"""Self-contained HTML page of a Trace: the output tokens, each showing the prompt's heat map under the mouse
(or keyboard focus) — pure CSS, no script, every piece of text escaped — and the whole token × unit matrix.

Examples:
    >>> from diffusiongemma.trace import trace
    >>> from diffusiongemma.models.tiny import example_model
    >>> html = render_trace_html(trace("Name a colour:", response=" red", model=example_model(), chat=False, budget=8))
    >>> html.startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from .colors import heat_color
from ..significance import resolve
from .html import ENV, UNRESOLVED, _segments

__all__ = ["render_trace_html"]


def render_trace_html(tr: Any) -> str:
    """Render the page (one shared colour scale for every output token, so maps compare)."""
    scale = float(np.max(np.abs(tr.scores))) if tr.scores.size else 1.0
    total_scale = float(np.max(np.abs(tr.total_scores))) if tr.total_scores.size else 1.0
    ok = [resolve(tr.scores[k], tr.stderr[k], evaluations=tr.evaluations).resolved for k in range(len(tr.tokens))]
    maps = [_segments(SimpleNamespace(text=tr.text, units=tr.units, scores=tr.scores[k], stderr=tr.stderr[k]), scale,
                      ok[k]) for k in range(len(tr.tokens))]
    total = _segments(SimpleNamespace(text=tr.text, units=tr.units, scores=tr.total_scores,
                                      stderr=tr.total_stderr), total_scale,
                      resolve(tr.total_scores, tr.total_stderr, evaluations=tr.evaluations).resolved)
    cells = [[{"score": float(tr.scores[k, i]), "stderr": float(tr.stderr[k, i]),
               "color": heat_color(float(tr.scores[k, i]), scale) if ok[k][i] else UNRESOLVED}
              for i in range(len(tr.units))] for k in range(len(tr.tokens))]
    top = [tr.units[int(np.argmax(np.abs(tr.scores[k])))].text if len(tr.units) else "" for k in range(len(tr.tokens))]
    return ENV.get_template("trace.html.j2").render(t=tr, maps=maps, total=total, cells=cells, top=top,
                                                     scale=scale)
