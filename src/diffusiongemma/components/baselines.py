"""What a masked component outputs instead: zero, its mean over reference prompts, or its activation in a
counterfactual run (resample: activation patching).

* ``mean``: over every token position of every reference prompt (rendered the same way as the explained
  prompt): per head the ``[dh]`` slice of the attention output projection's input, per neuron group its
  slice of the down projection's input, per MLP its ``[d]`` output, per layer its ``[d]`` contribution.
* ``resample``: the same activations recorded position by position (``[T, ...]``) in one run of a
  counterfactual prompt with the same number of tokens, followed by the same teacher-forced target. Masking
  a unit then *noises* the clean run with the corrupted activation; explaining the counterfactual with the
  clean prompt as its counterfactual *denoises* (patching clean activations into the corrupted run).

Examples:
    >>> from diffusiongemma.components.sites import enumerate_components
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()
    >>> means = mean_baselines(lm, enumerate_components(lm, "mlps"), ["Hello there", "How are you?"], chat=True)
    >>> sorted(tuple(m.shape) for m in means.values())  # one mean activation per MLP (width 64)
    [(64,), (64,)]
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Hashable

import torch

from ..errors import InputError
from ..models.hooks import scoped_hooks
from ..models.forward import last_logits_only
from ..prompts import render_prompt
from ..units import Component, component_kind

__all__ = ["BASELINES", "capture", "mean_baselines", "resample_baselines"]

BASELINES = ("zero", "mean", "resample")


@torch.no_grad()
def capture(lm: Any, components: list[Component], run: Callable[[], Any]) -> dict[Component, list[torch.Tensor]]:
    """Activations ``[B, T, ...]`` (float32) of each component in every forward that ``run()`` makes.

    Kinds with no activation of their own (directions, SAE features) are left out.
    """
    seen: dict[Component, list[torch.Tensor]] = defaultdict(list)
    grouped: dict[tuple[str, Hashable], list[Component]] = defaultdict(list)
    for c in components:
        grouped[(c.kind, component_kind(c.kind).group(c))].append(c)
    hooks = [h for (kind, _), comps in grouped.items() for h in component_kind(kind).capture(lm, comps, seen)]
    with scoped_hooks(hooks):
        run()
    return dict(seen)


def mean_baselines(lm: Any, components: list[Component], reference: list[str], *, chat: bool = False,
                   system: str | None = None) -> dict[Component, torch.Tensor]:
    """Mean activation of each component over the reference prompts' token positions."""
    if not reference:
        raise InputError("baseline='mean' needs reference prompts (reference=[...], or --reference FILE)")
    sums: dict[Component, torch.Tensor] = {}
    count = 0
    for text in reference:
        ids = render_prompt(text, lm.tokenizer, lm.chat_template, chat=chat, system=system).input_ids

        def run(ids: list[int] = ids) -> Any:
            return lm.model(input_ids=torch.tensor([ids], device=lm.device), **last_logits_only(lm.model))
        acts = capture(lm, components, run)
        for c, (a,) in acts.items():
            s = a[0].sum(0)  # [...]
            sums[c] = sums[c] + s if c in sums else s
        count += len(ids)
    return {c: (s / count).to(lm.model.dtype) for c, s in sums.items()}


def resample_baselines(lm: Any, components: list[Component], run: Callable[[], Any]) -> dict[Component, torch.Tensor]:
    """Per-position activations ``[T, ...]`` of each component in the one forward of a counterfactual
    ``run()`` (laid out exactly as the explained prompt's forwards)."""
    acts = capture(lm, components, run)
    if any(len(a) != 1 for a in acts.values()):
        raise InputError("the counterfactual run made more than one forward; resample needs one")
    return {c: a[0][0].to(lm.model.dtype) for c, a in acts.items()}
