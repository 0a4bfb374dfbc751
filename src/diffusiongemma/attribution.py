"""The result of an explanation: scores with standard errors per unit, the target, the efficiency check and
the provenance that makes it reproducible. Saved and loaded as JSON; rendered as one self-contained HTML page.

Examples:
    >>> import numpy as np
    >>> from diffusiongemma.units import Unit
    >>> a = Attribution(units=[Unit("Hi", 0, 2, (1,), "prompt")], scores=np.array([0.5]),
    ...                 stderr=np.array([0.1]), text="Hi", target={"kind": "continuation", "text": "!"},
    ...                 v_full=0.0, v_empty=-0.5, evaluations=2, wall_time=0.1)
    >>> a.efficiency_gap
    0.0
    >>> a.top(1)[0][0].text
    'Hi'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .estimators import resolves
from .faithfulness import Faithfulness, TriggerSet
from .redundancy import Backups
from .significance import Resolution, resolve
from .units import Unit

__all__ = ["Attribution"]

FORMAT_VERSION = 1


@dataclass
class Attribution:
    """Scores of the units of one prompt for one target."""

    units: list[Unit]
    scores: np.ndarray  # [n]
    stderr: np.ndarray  # [n]
    text: str  # the rendered prompt text the unit spans refer to
    target: dict[str, Any]
    v_full: float  # target with every unit kept
    v_empty: float  # target with every unit removed
    evaluations: int
    wall_time: float
    method: str = "shapley"
    settings: dict[str, Any] = field(default_factory=dict)  # units, mask, schedule, estimator, budget, seed, ...
    provenance: dict[str, Any] = field(default_factory=dict)  # hashes, versions
    faithfulness: Faithfulness | None = None  # deletion/insertion check, when it was run
    interactions: list[tuple[int, int, float]] | None = None  # Faith-Shap pairs (i, j, value), strongest first
    triggers: dict[str, TriggerSet] | None = None  # "necessary" / "sufficient" sets, checked by the model
    backups: Backups | None = None  # pairs that cover for each other, checked by the model (redundancy.py)
    decision: dict[str, Any] | None = None  # what the model did: generated reply, refused or not (forensics)
    tree: dict[str, Any] | None = None  # unit tree (hierarchy.py): {"kinds", "roots", "nodes": [Node.to_dict()]}

    @property
    def efficiency_gap(self) -> float:
        """Σ scores − (v(all kept) − v(all removed)); ~0 for Shapley estimates with the constraint."""
        return float(np.sum(self.scores) - (self.v_full - self.v_empty))

    @property
    def significance(self) -> Resolution:
        """Which units are findings: Holm-corrected tests of each score against zero, and the budget that
        would resolve the strongest units when they are not (see :mod:`diffusiongemma.significance`); a map whose
        estimator ranks without resolving (``gradient``) resolves none."""
        return resolve(self.scores, self.stderr, evaluations=self.evaluations,
                       ranking_only=not resolves(self.settings.get("estimator")))

    def warnings(self) -> list[str]:
        """Figures that cannot be right, or should be read with care, each as one sentence: a deletion or
        insertion AUC outside [0, 1] (the curve leaves the range between v(all removed) and v(all kept)), an
        efficiency gap large against the scores, a refusal score that disagrees with the detector.

        Examples:
            >>> from diffusiongemma.units import Unit
            >>> a = Attribution(units=[Unit("Hi", 0, 2, (1,), "prompt")], scores=np.array([0.2]),
            ...                 stderr=np.array([0.1]), text="Hi", target={}, v_full=1.0, v_empty=0.0,
            ...                 evaluations=2, wall_time=0.1)
            >>> a.warnings()
            ['efficiency gap -0.8 is large against the scores (Σ|score| = 0.2): the scores do not add up to v(all kept) − v(all removed)']
        """
        out = []
        f = self.faithfulness
        if f is not None:
            for name, auc in (("deletion", f.deletion_auc), ("insertion", f.insertion_auc)):
                if not 0.0 <= auc <= 1.0:
                    out.append(f"{name} AUC {auc:.2f} is outside [0, 1]: the {name} curve leaves the range between "
                               "v(all removed) and v(all kept), so the map's order explains it poorly")
        gap, mass = self.efficiency_gap, float(np.sum(np.abs(self.scores)))
        if abs(gap) > 1e-6 and abs(gap) > 0.1 * max(mass, abs(self.v_full - self.v_empty)):
            out.append(f"efficiency gap {gap:.2g} is large against the scores (Σ|score| = {mass:.2g}): the scores "
                       "do not add up to v(all kept) − v(all removed)")
        added = self.settings.get("default_system_prompt")
        if added:
            out.append(f"the chat template added a system prompt of its own, {added[:120]!r}: the model saw it, "
                       "and it is not among the units (pass system=... to set or examine it)")
        d = self.decision or {}
        if d.get("disagrees"):
            out.append(f"the refusal score says {d.get('score_says')}, the detector on the reply says "
                       f"{'refuse' if d.get('refused') else 'comply'}")
        return out

    def top(self, k: int = 5) -> list[tuple[Unit, float, float]]:
        """The ``k`` units with the largest absolute score: (unit, score, stderr)."""
        order = np.argsort(-np.abs(self.scores), kind="stable")[:k]
        return [(self.units[i], float(self.scores[i]), float(self.stderr[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "text": self.text,
            "units": [u.to_dict() for u in self.units],
            "scores": [float(x) for x in self.scores],
            "stderr": [float(x) if np.isfinite(x) else None for x in self.stderr],
            "target": self.target,
            "v_full": self.v_full,
            "v_empty": self.v_empty,
            "efficiency_gap": self.efficiency_gap,
            "significance": self.significance.to_dict(),
            "warnings": self.warnings(),
            "evaluations": self.evaluations,
            "wall_time": self.wall_time,
            "method": self.method,
            "settings": self.settings,
            "provenance": self.provenance,
            "faithfulness": self.faithfulness.to_dict() if self.faithfulness else None,
            "interactions": [{"units": [i, j], "value": v} for i, j, v in self.interactions]
            if self.interactions is not None else None,
            "triggers": {k: t.to_dict() for k, t in self.triggers.items()} if self.triggers else None,
            "decision": self.decision,
            "backups": self.backups.to_dict() if self.backups else None,
            "tree": self.tree,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Attribution":
        return cls(
            units=[Unit.from_dict(u) for u in d["units"]],
            scores=np.asarray(d["scores"], dtype=float),
            stderr=np.asarray([np.inf if x is None else x for x in d["stderr"]], dtype=float),
            text=d["text"], target=d["target"], v_full=d["v_full"], v_empty=d["v_empty"],
            evaluations=d["evaluations"], wall_time=d["wall_time"], method=d.get("method", "shapley"),
            settings=d.get("settings", {}), provenance=d.get("provenance", {}),
            faithfulness=Faithfulness.from_dict(d["faithfulness"]) if d.get("faithfulness") else None,
            interactions=[(p["units"][0], p["units"][1], p["value"]) for p in d["interactions"]]
            if d.get("interactions") is not None else None,
            triggers={k: TriggerSet(**t) for k, t in d["triggers"].items()} if d.get("triggers") else None,
            decision=d.get("decision"),
            backups=Backups.from_dict(d["backups"]) if d.get("backups") else None,
            tree=d.get("tree"),
        )

    def to_json(self, path: str | Path) -> Path:
        """Write the result as JSON (UTF-8); returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> "Attribution":
        """Read a result written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_html(self, path: str | Path) -> Path:
        """Write one self-contained HTML page (heat map, error bars, provenance); all text is escaped."""
        from .report.html import render_attribution_html

        path = Path(path)
        path.write_text(render_attribution_html(self), encoding="utf-8")
        return path
