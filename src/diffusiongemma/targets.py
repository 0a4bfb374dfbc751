"""Targets: the scalar ``v(m)`` read from the model under a mask. Small functions, registered by name.

A target *binds* to a model and a rendered prompt and returns a :class:`BoundTarget`: the continuations to
teacher-force after the prompt (token id lists, all tokens of one continuation in one pass) and a function
that turns the logits at their positions into one value per mask.

Examples:
    >>> from diffusiongemma.targets import TARGETS
    >>> sorted(TARGETS)
    ['callable', 'continuation', 'contrast', 'greedy', 'next_token', 'projection', 'refusal']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .errors import InputError
from .prompts import RenderedPrompt

__all__ = [
    "BoundTarget", "Probe", "Target", "TARGETS", "Continuation", "Contrast", "NextToken", "Greedy", "CallableTarget",
    "resolve_target", "continuation_logprob",
]

# logits: one tensor per continuation, [B, max(k, 1), V] (float32), at the positions predicting its tokens.
Combine = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass
class Probe:
    """Read a hidden state instead of logits: decoder layer ``layer``'s output at prompt position ``position``
    (negative: from the end; under ``remove``, the last kept token at or before it), projected on ``vector``
    ``[d]``. The forward stops after that layer."""

    layer: int
    position: int
    vector: torch.Tensor  # [d]


@dataclass
class BoundTarget:
    """A target tied to one prompt: what to append, and how to read the value (with a ``probe``, the
    "logits" handed to ``combine`` are the projections, ``[B, 1, 1]``)."""

    continuations: list[list[int]]
    combine: Combine  # list of logits [B, k_c, V] -> values [B]
    description: dict[str, Any] = field(default_factory=dict)
    probe: Probe | None = None
    from_logprobs: Callable[[list[torch.Tensor]], torch.Tensor] | None = None  # token log-probs [B, k_c] each -> [B]


def continuation_logprob(logits: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """Sum of log p(token_j | prefix) over a teacher-forced continuation: logits ``[B, k, V]`` → ``[B]``.

    Examples:
        >>> continuation_logprob(torch.zeros(1, 2, 4), [0, 3]).round(decimals=4)
        tensor([-2.7726])
    """
    return token_logprobs(logits, tokens).sum(-1)  # [B]


def token_logprobs(logits: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """log p(token_j | prefix) of each teacher-forced token: logits ``[B, k, V]`` → ``[B, k]``.

    Examples:
        >>> token_logprobs(torch.zeros(1, 2, 4), [0, 3]).round(decimals=4)
        tensor([[-1.3863, -1.3863]])
    """
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # [B, k, V]
    idx = torch.tensor(tokens, device=logits.device).view(1, -1, 1).expand(logits.shape[0], -1, 1)
    return logp.gather(-1, idx).squeeze(-1)  # [B, k]


def tokens_of(lm: Any, text: str, what: str) -> list[int]:
    """The token ids of ``text`` without special tokens; an empty text, or one with no tokens, is an
    :class:`InputError` that names ``what`` it is.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> tokens_of(example_model(), " Paris", "target")
        [9079]
        >>> tokens_of(example_model(), "", "target")
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: the target is empty
    """
    if not isinstance(text, str) or text == "":
        raise InputError(f"the {what} is empty")
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InputError(f"the {what} {text!r} has no tokens")
    return list(ids)


class Target:
    """Base class: subclasses implement :meth:`bind`."""

    name = "target"
    help = ""

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Continuation(Target):
    """log p(text | prompt), all its tokens teacher-forced in one pass."""

    text: str
    name = "continuation"
    help = "log-probability of a given continuation (teacher-forced): --target TEXT"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        toks = tokens_of(lm, self.text, "target")
        return BoundTarget([toks], lambda lg: continuation_logprob(lg[0], toks),
                           {"kind": self.name, "text": self.text, "tokens": toks})


@dataclass
class Contrast(Target):
    """log p(a | prompt) − log p(b | prompt): why this answer rather than that one."""

    a: str
    b: str
    name = "contrast"
    help = "log p(A) - log p(B) of two continuations: --target A --contrast B"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        ta, tb = tokens_of(lm, self.a, "target"), tokens_of(lm, self.b, "contrast")
        return BoundTarget(
            [ta, tb], lambda lg: continuation_logprob(lg[0], ta) - continuation_logprob(lg[1], tb),
            {"kind": self.name, "text": self.a, "contrast": self.b, "tokens": ta, "contrast_tokens": tb},
            from_logprobs=lambda lp: lp[0].sum(-1) - lp[1].sum(-1))


@dataclass
class NextToken(Target):
    """log p(token) at the next position, for one given token (id or its exact text)."""

    token: int | str
    name = "next_token"
    help = "next-token log-probability of one given token (id or text)"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        if isinstance(self.token, str):
            toks = tokens_of(lm, self.token, "token")
            if len(toks) != 1:
                raise InputError(f"{self.token!r} is {len(toks)} tokens; next_token needs exactly one")
            tid = toks[0]
        else:
            tid = int(self.token)
        if not 0 <= tid < lm.model.config.vocab_size:
            raise InputError(f"token id {tid} is outside the vocabulary")
        return BoundTarget([[tid]], lambda lg: continuation_logprob(lg[0], [tid]),
                           {"kind": self.name, "text": lm.tokenizer.decode([tid]), "tokens": [tid]})


@dataclass
class Greedy(Target):
    """The model's own greedy continuation of the unmasked prompt (up to ``max_new_tokens`` tokens, stopping before
    ``<end_of_turn>`` or EOS after the first; :func:`~diffusiongemma.generation.greedy_ids`), then its log-prob."""

    max_new_tokens: int = 1
    name = "greedy"
    help = "the model's own greedy continuation (default when no target is given)"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        if self.max_new_tokens < 1:
            raise InputError("max_new_tokens must be at least 1")
        from .generation import greedy_ids

        out = greedy_ids(lm, [list(rendered.input_ids)], max_new_tokens=self.max_new_tokens, keep_first=True)[0]
        text = lm.tokenizer.decode(out)
        return BoundTarget([out], lambda lg: continuation_logprob(lg[0], out),
                           {"kind": self.name, "text": text, "tokens": out})


@dataclass
class CallableTarget(Target):
    """Any function of the logits at the target positions: ``fn(logits [B, k, V]) -> [B]``.

    ``continuation`` is teacher-forced after the prompt; with none, ``k = 1`` (the next-token logits).
    """

    fn: Callable[[torch.Tensor], torch.Tensor]
    continuation: str = ""
    label: str = "user function"
    name = "callable"
    help = "any Python callable on the logits at the target positions (API only)"

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        toks = tokens_of(lm, self.continuation, "continuation") if self.continuation else []
        fn = self.fn
        return BoundTarget([toks], lambda lg: fn(lg[0]).float(),
                           {"kind": self.name, "text": self.label, "continuation": self.continuation})


TARGETS: dict[str, type[Target]] = {
    cls.name: cls for cls in (Continuation, Contrast, NextToken, Greedy, CallableTarget)
}


def resolve_target(target: Target | str | Callable | None, contrast: str | None = None) -> Target:
    """Turn the ``target=`` / ``contrast=`` arguments of :func:`diffusiongemma.explain` into a Target.

    Examples:
        >>> resolve_target(" bank", contrast=" river").name
        'contrast'
    """
    if isinstance(target, Target):
        if contrast is not None:
            raise InputError("contrast= needs target= as text, not a Target object")
        return target
    if callable(target):
        return CallableTarget(target)
    if target is None:
        if contrast is not None:
            raise InputError("contrast= needs a target= to contrast with")
        return Greedy()
    if not isinstance(target, str) or target == "":
        raise InputError("the target is empty")
    if contrast is not None:
        if contrast == "":
            raise InputError("the contrast is empty")
        return Contrast(target, contrast)
    return Continuation(target)
