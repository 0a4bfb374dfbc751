"""What a masked component outputs instead: zero, or its mean over a reference prompt set.

The mean is taken over every token position of every reference prompt (rendered the same way as the
explained prompt): per head the ``[dh]`` slice of the attention output projection's input, per MLP its
``[d]`` output, per layer its ``[d]`` contribution ``out − in``.

Example:
    >>> mean_baselines(lm, comps, ["Hello there", "How are you?"], chat=True)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from ..errors import InputError
from ..masking import scoped_hooks
from ..prompts import render_prompt
from .hooks import site_module
from .sites import Component

__all__ = ["BASELINES", "mean_baselines"]

BASELINES = ("zero", "mean")


@torch.no_grad()
def mean_baselines(lm: Any, components: list[Component], reference: list[str], *, chat: bool = False,
                   system: str | None = None) -> dict[Component, torch.Tensor]:
    """Mean activation of each component over the reference prompts' token positions."""
    if not reference:
        raise InputError("baseline='mean' needs reference prompts (reference=[...], or --reference FILE)")
    n_heads = int(getattr(lm.model.config, "num_attention_heads", None) or lm.model.config.n_head)
    sums: dict[Component, torch.Tensor] = {}
    count = 0
    by_site: dict[tuple[str, int], list[Component]] = defaultdict(list)
    for c in components:
        if c.kind != "direction":  # a direction is always projected out, whatever the baseline
            by_site[(c.kind, c.layer)].append(c)

    def add(c: Component, value: torch.Tensor) -> None:
        sums[c] = sums[c] + value if c in sums else value.clone()

    hooks = []
    for (kind, layer), comps in by_site.items():
        module = site_module(lm, kind, layer)
        if kind == "head":
            def pre(m: Any, args: Any, comps=comps) -> None:
                x = args[0][0].float()  # [T, H·dh]
                heads = x.view(x.shape[0], n_heads, -1).sum(0)  # [H, dh]
                for c in comps:
                    add(c, heads[c.index])
            hooks.append((module, "forward_pre", pre))
        elif kind == "mlp":
            def post(m: Any, inputs: Any, out: torch.Tensor, c=comps[0]) -> None:
                add(c, out[0].float().sum(0))
            hooks.append((module, "forward", post))
        else:
            def block(m: Any, args: Any, kwargs: Any, out: Any, c=comps[0]) -> None:
                hidden_in = args[0] if args else kwargs["hidden_states"]
                o = out[0] if isinstance(out, tuple) else out
                add(c, (o - hidden_in.to(o.device))[0].float().sum(0))
            hooks.append((module, "forward_kw", block))
    with scoped_hooks(hooks):
        for text in reference:
            ids = render_prompt(text, lm.tokenizer, lm.chat_template, chat=chat, system=system).input_ids
            lm.model(input_ids=torch.tensor([ids], device=lm.device))
            count += len(ids)
    return {c: (s / count).to(lm.model.dtype) for c, s in sums.items()}
