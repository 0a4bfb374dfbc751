"""JSON parsing for what users hand us (audit logs, prompt sets, pair files): every way a text can fail to be JSON we can take (a syntax error, nesting too
deep for the parser) is one :class:`NotJSON` with a short message, never another exception.

Examples:
    >>> loads('{"prompt": "hi"}')
    {'prompt': 'hi'}
    >>> try:
    ...     loads("[" * 100_000)
    ... except NotJSON as e:
    ...     print(e)
    not JSON this reader can take (nested too deeply)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["NotJSON", "loads"]


class NotJSON(ValueError):
    """A text that is not JSON; ``lineno`` is the line of the error within it."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


def loads(text: str) -> Any:
    """``json.loads``, with its failures as :class:`NotJSON`.

    Examples:
        >>> loads('{"a": 1}')
        {'a': 1}
        >>> loads('{"a": ')
        Traceback (most recent call last):
        ...
        diffusiongemma.jsontext.NotJSON: not JSON (Expecting value at column 7)
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise NotJSON(f"not JSON ({e.msg} at column {e.colno})", e.lineno) from None
    except RecursionError:
        raise NotJSON("not JSON this reader can take (nested too deeply)") from None
