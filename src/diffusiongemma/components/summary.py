"""The strongest components of a component map, as the workflows' decisions report them.

Examples:
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> comp = SimpleNamespace(scores=np.array([0.1, -2.0]), stderr=np.array([0.05, 0.1]), evaluations=8,
    ...     efficiency_gap=0.0, units=[SimpleNamespace(text="L0.MLP"), SimpleNamespace(text="L1.MLP")],
    ...     significance=SimpleNamespace(resolved=np.array([False, True])))
    >>> [c["unit"] for c in strongest_components(comp, "mlps", "gradient")["components"]]
    ['L1.MLP', 'L0.MLP']
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["strongest_components"]


def strongest_components(comp: Any, units: str, method: str, k: int = 10) -> dict[str, Any]:
    """``{"components": the k strongest by |score|, each with its s.e. and whether its interval excludes zero
    (Holm over every component of the map), "components_settings": how the map was made}``."""
    ok = comp.significance.resolved
    top = np.argsort(-np.abs(comp.scores), kind="stable")[:k]
    return {"components": [{"unit": comp.units[i].text, "score": float(comp.scores[i]),
                            "stderr": float(comp.stderr[i]), "resolved": bool(ok[i])} for i in top],
            "components_settings": {"units": units, "method": method, "evaluations": comp.evaluations,
                                    "efficiency_gap": comp.efficiency_gap}}
