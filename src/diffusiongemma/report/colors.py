"""Score → colour for heat maps: red pushes the target up, blue pushes it down.

Examples:
    >>> heat_color(1.0, 1.0)
    'rgba(214, 39, 40, 0.85)'
    >>> heat_color(0.0, 1.0)
    'rgba(214, 39, 40, 0.00)'
"""

from __future__ import annotations

__all__ = ["heat_color"]

_POS, _NEG = (214, 39, 40), (31, 119, 180)


def heat_color(score: float, scale: float) -> str:
    """CSS colour of a score relative to the largest absolute score ``scale``.

    Examples:
        >>> heat_color(1.0, 2.0), heat_color(-2.0, 2.0)
        ('rgba(214, 39, 40, 0.42)', 'rgba(31, 119, 180, 0.85)')
    """
    alpha = 0.0 if scale <= 0 else min(abs(score) / scale, 1.0) * 0.85
    r, g, b = _POS if score >= 0 else _NEG
    return f"rgba({r}, {g}, {b}, {alpha:.2f})"
