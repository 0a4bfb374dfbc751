"""Position restrictions of component units: mask a component at some prompt positions only.

A restriction is written after ``@`` in a component spec (``heads@last``, ``mlps@6-11@last3``,
``neurons:5@tok2-4``):

* ``last``: the last prompt token (where the next token is predicted);
* ``lastK``: the last ``K`` prompt tokens;
* ``tokA-B`` (or ``tokA``): rendered prompt positions ``A`` to ``B`` inclusive (0 is BOS).

At other positions, and at teacher-forced target tokens after the prompt, the component keeps its own
activation.

Examples:
    >>> is_position("last3"), is_position("6-11")
    (True, False)
    >>> position_mask("last2", prompt_len=5, total_len=7).tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

import re

import torch

from ..errors import InputError

__all__ = ["is_position", "check_position", "position_mask"]

_LAST = re.compile(r"last(\d*)$")
_TOK = re.compile(r"tok(\d+)(?:-(\d+))?$")


def is_position(text: str) -> bool:
    """Whether an ``@`` qualifier is a position restriction (rather than a layer range).

    Examples:
        >>> is_position('last'), is_position('tok2-5'), is_position('2-5')
        (True, True, False)
    """
    return bool(_LAST.match(text) or _TOK.match(text))


def _span(spec: str, prompt_len: int) -> tuple[int, int]:
    """``[lo, hi)`` of the positions a restriction selects in a prompt of ``prompt_len`` tokens."""
    if m := _LAST.match(spec):
        k = int(m.group(1) or 1)
        if not 1 <= k <= prompt_len:
            raise InputError(f"position restriction {spec!r}: the prompt has {prompt_len} tokens")
        return prompt_len - k, prompt_len
    if m := _TOK.match(spec):
        a = int(m.group(1))
        b = int(m.group(2) or a)
        if not a <= b < prompt_len:
            raise InputError(f"position restriction {spec!r} is outside the prompt's positions 0-{prompt_len - 1}")
        return a, b + 1
    raise InputError(f"position restriction {spec!r} is not last, lastK or tokA-B")


def check_position(spec: str, prompt_len: int) -> None:
    """Raise :class:`InputError` when a restriction does not fit a prompt of ``prompt_len`` tokens.

    Examples:
        >>> check_position('last3', 10)
        >>> check_position('tok2-50', 10)
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: position restriction 'tok2-50' is outside the prompt's positions 0-9
    """
    _span(spec, prompt_len)


def position_mask(spec: str, prompt_len: int, total_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[total_len]`` float: 1 where a component with this restriction is masked (``""``: everywhere)."""
    out = torch.zeros(total_len, device=device)
    if not spec:
        return out + 1
    lo, hi = _span(spec, prompt_len)
    out[lo:hi] = 1
    return out
