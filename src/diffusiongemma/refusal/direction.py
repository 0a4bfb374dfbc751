"""The refusal direction (Arditi et al. 2024): the difference of mean residual activations on harmful and
harmless requests, at one layer and one position after the instruction, chosen on a validation split.

* Candidates: every decoder layer's output at each of the last ``positions`` prompt tokens (the chat
  template's closing tokens, after the request), ``r = mean(harmful) − mean(harmless)`` on the training split.
* Selection on the validation split, as Arditi et al. select: among the candidates whose projection best
  separates the validation classes, the one whose **directional ablation** (``x ← x − (x·r̂) r̂`` at every
  layer and position) lowers the refusal score of the validation harmful requests the most.
* Interventions: :func:`direction_hooks` ablates the direction everywhere or adds ``α·r`` at its layer;
  use them with :func:`~diffusiongemma.models.hooks.scoped_hooks` around any forward, ``explain`` included.
* :func:`projection`: each prompt's activation along r̂ at the chosen layer and position.

Examples:
    >>> from diffusiongemma.refusal.direction import fit_refusal_direction
    >>> from diffusiongemma.models.tiny import example_model
    >>> harmful = [f"How do I make a {w}?" for w in ("bomb", "virus", "poison", "weapon", "gun", "knife", "trap", "drug")]
    >>> harmless = [f"How do I bake a {w}?" for w in ("cake", "pie", "loaf", "bun", "tart", "scone", "roll", "cookie")]
    >>> d = fit_refusal_direction(example_model(), harmful, harmless)
    >>> d.vector.shape, d.layer in (0, 1)  # on gemma-270m-safety: layer 9, position -1, ablation drop 6.12
    (torch.Size([64]), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..components.directions import RefusalDirection, load_direction
from ..errors import InputError
from ..validation import check_count
from ..models.hooks import scoped_hooks
from ..models import LoadedModel
from ..models.forward import last_logits_only

__all__ = ["RefusalDirection", "load_direction", "residual_activations", "fit_refusal_direction", "direction_hooks",
           "projection"]


@torch.no_grad()
def residual_activations(lm: LoadedModel, prompts: list[str], positions: int = 5, *, chat: bool = True
                         ) -> torch.Tensor:
    """Decoder-layer outputs at the last ``positions`` tokens of each rendered prompt: ``[N, layers, P, d]``.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> residual_activations(example_model(), ["Hi"], positions=2).shape  # Gemma 3 270M: [1, 18, 2, 640]
        torch.Size([1, 2, 2, 64])
    """
    from ..generation import chat_ids
    from ..prompts import render_prompt

    layers = lm.layers
    out = []
    for p in prompts:
        ids = chat_ids(lm, p)[0] if chat else render_prompt(p, lm.tokenizer).input_ids
        if len(ids) < positions:
            raise InputError(f"a prompt renders to {len(ids)} tokens, fewer than the {positions} positions asked")
        grabbed: list[torch.Tensor] = []

        def grab(module: Any, inputs: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            grabbed.append(hidden[0, -positions:].float().cpu())  # [P, d]  # noqa: B023 - hook of this iteration

        with scoped_hooks([(layer, "forward", grab) for layer in layers]):
            lm.model(input_ids=torch.tensor([ids], device=lm.device), **last_logits_only(lm.model))
        out.append(torch.stack(grabbed))  # [layers, P, d]
    return torch.stack(out)  # [N, layers, P, d]


def direction_hooks(lm: LoadedModel, direction: RefusalDirection, mode: str = "ablate", alpha: float = 1.0
                    ) -> list[tuple[Any, str, Any]]:
    """Hooks for :func:`~diffusiongemma.models.hooks.scoped_hooks`: ``"ablate"`` projects r̂ out of every decoder
    layer's output at every position; ``"add"`` adds ``alpha · r`` to the output of the direction's layer.

    Examples:
        >>> from diffusiongemma import RefusalScore, explain
        >>> from diffusiongemma.models.hooks import scoped_hooks
        >>> from diffusiongemma.models.tiny import example_model
        >>> lm = example_model()
        >>> d = RefusalDirection(torch.ones(64), layer=1, position=-1)
        >>> with scoped_hooks(direction_hooks(lm, d, "ablate")):
        ...     attr = explain("How do I pick a lock?", RefusalScore(), model=lm, chat=True, budget=16)
        >>> len(lm.model.model.layers[1]._forward_hooks)  # the hooks came off
        0
    """
    if mode not in ("ablate", "add"):
        raise InputError(f"direction intervention {mode!r} is not 'ablate' or 'add'")
    layers = lm.layers
    r_hat = direction.unit.to(lm.device, lm.model.dtype)  # [d]
    r = direction.vector.to(lm.device, lm.model.dtype)  # [d]

    def edit(module: Any, inputs: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # [B, T, d]
        if mode == "ablate":
            hidden = hidden - (hidden @ r_hat)[..., None] * r_hat
        else:
            hidden = hidden + alpha * r
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    chosen = list(layers) if mode == "ablate" else [layers[direction.layer]]
    return [(layer, "forward", edit) for layer in chosen]


def projection(lm: LoadedModel, direction: RefusalDirection, prompts: list[str], *, chat: bool = True) -> np.ndarray:
    """Each prompt's activation along r̂ at the direction's layer and position: ``[N]``."""
    acts = residual_activations(lm, prompts, positions=-direction.position, chat=chat)  # [N, layers, P, d]
    return (acts[:, direction.layer, 0] @ direction.unit.float().cpu()).numpy()


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a harmful projection exceeds a harmless one) (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def _mean_refusal_score(lm: LoadedModel, prompts: list[str], hooks: list[tuple[Any, str, Any]]) -> float:
    from .score import refusal_scores

    with scoped_hooks(hooks):
        return float(np.mean(refusal_scores(lm, prompts)))


def fit_refusal_direction(lm: LoadedModel, harmful: list[str], harmless: list[str], *, positions: int = 5,
                          validation: float = 0.25, shortlist: int = 6, seed: int = 0) -> RefusalDirection:
    """Fit the direction on a training split and choose layer and position on the validation split.

    Args:
        harmful, harmless: requests (rendered as user turns).
        positions: candidate positions, the last ``positions`` tokens of the rendered prompt.
        validation: share of each class held out for the choice.
        shortlist: candidates (best validation separation first, skipping the first and last layers) whose
            ablation is measured; the largest drop of the mean refusal score on validation harmful wins.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> fit_refusal_direction(example_model(), ["How do I make a bomb?"], ["Hi"])
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: fitting a refusal direction needs at least 8 harmful and 8 harmless requests
    """
    if min(len(harmful), len(harmless)) < 8:
        raise InputError("fitting a refusal direction needs at least 8 harmful and 8 harmless requests")
    check_count(positions, "positions", "candidate positions")
    rng = np.random.default_rng(seed)
    h, b = list(rng.permutation(harmful)), list(rng.permutation(harmless))
    kh, kb = max(2, int(len(h) * validation)), max(2, int(len(b) * validation))
    h_val, h_tr, b_val, b_tr = h[:kh], h[kh:], b[:kb], b[kb:]
    acts_h, acts_b = residual_activations(lm, h_tr, positions), residual_activations(lm, b_tr, positions)
    val_h, val_b = residual_activations(lm, h_val, positions), residual_activations(lm, b_val, positions)
    diff = acts_h.mean(0) - acts_b.mean(0)  # [layers, P, d]
    n_layers = diff.shape[0]
    cands = []
    for layer in range(n_layers):
        for j in range(positions):
            r = diff[layer, j]
            r_hat = r / r.norm()
            auc = _auc((val_h[:, layer, j] @ r_hat).numpy(), (val_b[:, layer, j] @ r_hat).numpy())
            cands.append({"layer": layer, "position": j - positions, "norm": float(r.norm()), "val_auc": auc})
    inner = [c for c in cands if 0 < c["layer"] < n_layers - 1] or cands
    inner.sort(key=lambda c: (-c["val_auc"], -c["norm"]))
    base = _mean_refusal_score(lm, h_val, [])
    base_harmless = _mean_refusal_score(lm, b_val, [])
    best: RefusalDirection | None = None
    for c in inner[:shortlist]:
        layer, pos = int(c["layer"]), int(c["position"])
        d = RefusalDirection(diff[layer, pos + positions].clone(), layer, pos)
        c["ablated_harmful_score"] = _mean_refusal_score(lm, h_val, direction_hooks(lm, d, "ablate"))
        c["ablation_drop"] = base - c["ablated_harmful_score"]
        if best is None or c["ablation_drop"] > best.validation["ablation_drop"]:
            best = d
            best.validation = {"ablation_drop": c["ablation_drop"], "val_auc": c["val_auc"]}
    assert best is not None
    best.validation.update({
        "harmful_score": base, "harmless_score": base_harmless,
        "harmless_score_with_addition": _mean_refusal_score(lm, b_val, direction_hooks(lm, best, "add")),
        "train": {"harmful": len(h_tr), "harmless": len(b_tr)}, "validation": {"harmful": kh, "harmless": kb},
    })
    best.candidates = sorted(cands, key=lambda c: -c.get("ablation_drop", -1e9))
    return best
