"""Fitting the hardening patch of each kind on the training split: the steering patch (CAST), the LoRA patch
(consistency training) and the gated LoRA (the LoRA behind a harm gate), with their report entries.

Examples:
    >>> PATCH_KINDS
    ('steering', 'lora', 'gated-lora')
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch

from ..errors import InputError
from .attacks import Attack
from .fit import choose_alpha, fit_condition, pooled_states
from .gate import Gate
from .judge import patched_scores
from .lora import LoraPatch, LoraPatchSettings
from .lora_fit import fit_lora_patch
from .patch import SteeringPatch
from .sets import stable_sample

__all__ = ["PATCH_KINDS", "DEFAULT_FPR", "check_fpr", "harm_condition", "fit_steering", "fit_lora", "fit_gated_lora"]


PATCH_KINDS = ("steering", "lora", "gated-lora")
# how often each kind's condition may fire on the training split's benign prompts, unless told (the plain LoRA
# has none). Measured on gemma-270m-safety (docs/harden.md, runs 6 and 7): the gated LoRA at 0.02 cut attack
# success 79 % -> 40 %, at 0.2 79 % -> 24 % with over-refusal +2 points at most — the LoRA itself keeps benign
# prompts answered, so its gate may fire often. The steering patch acts on whatever fires, so it keeps 0.02.
DEFAULT_FPR: dict[str, float | None] = {"steering": 0.02, "lora": None, "gated-lora": 0.2}


def check_fpr(kind: str, fpr: float | None, name: str = "fpr") -> float | None:
    """The false-positive share a ``kind`` of patch is fit with: ``fpr``, or the kind's default when None.

    ``name``: what the errors call the setting (the command line passes ``--fpr``).

    Examples:
        >>> check_fpr("gated-lora", None), check_fpr("steering", None), check_fpr("steering", 0.1)
        (0.2, 0.02, 0.1)
        >>> check_fpr("lora", 0.1)
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: fpr applies to the steering and gated-lora patches, which fire on some prompts; the lora patch acts on every prompt
        >>> check_fpr("steering", 1.5, "--fpr")
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: --fpr must lie between 0 and 1 (a share of benign prompts), not 1.5
    """
    if kind not in PATCH_KINDS:
        raise InputError(f"unknown patch kind {kind!r}; choose one of {', '.join(PATCH_KINDS)}")
    if fpr is None:
        return DEFAULT_FPR[kind]
    if DEFAULT_FPR[kind] is None:
        raise InputError(f"{name} applies to the steering and gated-lora patches, which fire on some prompts; the "
                         f"{kind} patch acts on every prompt")
    if not 0 < fpr < 1:
        raise InputError(f"{name} must lie between 0 and 1 (a share of benign prompts), not {fpr}")
    return fpr


def harm_condition(lm: Any, sets: dict[str, list[Any]], suite: list[Attack], *, fpr: float, max_layer: int,
               seed: int) -> tuple[dict[str, Any], list[Any], torch.Tensor]:
    """The harm condition (:func:`.fit.fit_condition` on training-split harmful requests, plain and attacked,
    against benign ones, plain and attacked), its positive prompts and their pooled states ``[N, layers, d]``."""
    calib_h, calib_b = sets["calib_harmful"], sets["calib_benign"]
    wrapped_b = [a.apply(r) for a in suite for r in calib_b]
    pos_prompts = sets["plain_harmful"] + [a.apply(r) for a in suite for r in calib_h]
    neg_prompts = sets["plain_benign"] + wrapped_b
    pos, neg = pooled_states(lm, pos_prompts), pooled_states(lm, neg_prompts)  # [N, layers, d]
    groups = torch.tensor([0] * len(sets["plain_benign"]) + [1] * len(wrapped_b))  # plain / wrapped benign
    cond = fit_condition(pos, neg, min_layer=min(1, max_layer), max_layer=max_layer, fpr=fpr, groups=groups,
                         seed=seed)
    cond["calibration"] = {"harmful": len(pos_prompts), "benign": len(neg_prompts)}
    return cond, pos_prompts, pos


def fit_steering(lm: Any, sets: dict[str, list[Any]], suite: list[Attack], direction: Any, *, fpr: float,
                  alpha_grid: tuple[float, ...], threshold: float, seed: int) -> tuple[SteeringPatch, dict[str, Any]]:
    """The CAST patch (condition, threshold, strength) and its report entry."""
    behaviour_layer = max(direction.layer, 1)  # the condition is read at an earlier layer, in the same forward
    cond, pos_prompts, pos = harm_condition(lm, sets, suite, fpr=fpr, max_layer=behaviour_layer - 1, seed=seed)
    base = SteeringPatch(cond["vector"], cond["layer"], cond["threshold"], direction.vector, behaviour_layer, 1.0)
    caught = [p for p, x in zip(pos_prompts, (pos[:, cond["layer"]] @ base.condition) > base.threshold)
              if bool(x) and p not in sets["plain_harmful"]]
    # the strength is set on the calibration attacks that the condition catches *and* that beat the unpatched
    # model (most attacks fail anyway; judged on those, any alpha looks enough)
    caught = stable_sample(caught, 64, "alpha")
    unpatched, _ = patched_scores(lm, caught, None)
    winning = [p for p, v in zip(caught, unpatched) if v <= threshold]
    caught = stable_sample(winning, 24, "alpha") if winning else caught[:24]

    def scores_at(alpha: float) -> np.ndarray:
        base.alpha = alpha
        return patched_scores(lm, caught, base)[0]

    alpha, alpha_trace = choose_alpha(scores_at, alpha_grid, threshold=threshold)
    patch = SteeringPatch(cond["vector"], cond["layer"], cond["threshold"], direction.vector, behaviour_layer, alpha,
                          meta={"model": lm.name, "weights_sha256": lm.provenance.get("weights_sha256"),
                                "adapter_sha256": lm.provenance.get("adapter_sha256"),
                                "direction": {"layer": direction.layer, "position": direction.position,
                                              "validation": direction.validation},
                                "condition": {k: cond[k] for k in ("layer", "threshold", "val_tpr", "val_fpr")},
                                "alpha_trace": alpha_trace, "fpr": fpr, "calibration": cond["calibration"],
                                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    info = {"kind": "conditional activation steering (CAST)", "condition_layer": patch.condition_layer,
            "threshold": patch.threshold, "behaviour_layer": patch.behaviour_layer, "alpha": patch.alpha,
            "condition_val_tpr": cond["val_tpr"], "condition_val_fpr": cond["val_fpr"],
            "alpha_trace": alpha_trace, "condition_layers": cond["layers"]}
    return patch, info


def fit_lora(lm: Any, sets: dict[str, list[Any]], suite: list[Attack], settings: LoraPatchSettings,
              say: Callable[[str], None], gate: Gate | None = None) -> tuple[LoraPatch, dict[str, Any]]:
    """The LoRA patch (consistency training on the calibration sets) and its report entry; with a ``gate``, the
    LoRA changes the layers after the gate's only and acts where the gate fires."""
    if gate is not None and settings.layers is None:
        settings = replace(settings, layers=tuple(range(gate.layer + 1, len(lm.layers))))
    patch = fit_lora_patch(lm, sets["calib_harmful"], sets["calib_benign"], suite, settings,
                           plain_harmful=sets["plain_harmful"],
                           plain_benign=sets["plain_benign"] + 2 * sets["plain_everyday"], progress=say)
    patch.gate = gate
    info = {"kind": "LoRA (consistency training against the attack suite, benign twins)",
            **{k: patch.meta[k] for k in ("settings", "examples", "refused_examples", "steps_done", "stopped_by",
                                          "loss_first_10", "loss_last_10", "train_minutes")}}
    return patch, info


def fit_gated_lora(lm: Any, sets: dict[str, list[Any]], suite: list[Attack], settings: LoraPatchSettings, *,
                    fpr: float, seed: int, say: Callable[[str], None]) -> tuple[LoraPatch, dict[str, Any]]:
    """The gated LoRA patch: a harm condition read in the first half of the layers (as the steering patch's),
    then the LoRA on the layers after it, acting only on the prompts where the condition fires — benign prompts
    it leaves alone run exactly as before, which is what keeps over-refusal down."""
    say("fitting the gate")
    cond, _, _ = harm_condition(lm, sets, suite, fpr=fpr, max_layer=max(0, len(lm.layers) // 2 - 1), seed=seed)
    gate = Gate(cond["vector"], cond["layer"], cond["threshold"])
    patch, info = fit_lora(lm, sets, suite, settings, say, gate)
    figures = {k: cond[k] for k in ("layer", "threshold", "val_tpr", "val_fpr")}
    patch.meta.update({"gate": figures, "fpr": fpr, "calibration": cond["calibration"]})
    info.update({"kind": "gated LoRA (a harm gate, then consistency training against the attack suite)",
                 "gate_layer": gate.layer, "gate_threshold": gate.threshold, "gate_val_tpr": cond["val_tpr"],
                 "gate_val_fpr": cond["val_fpr"], "gate_layers": cond["layers"]})
    return patch, info
