"""Word forms shared by the request rewriters (verify-safety's variants, the demo's keyword twins, harden's
translations): a replacement word takes the letter case of the word it replaces.

Examples:
    >>> case_like("Kill", "slay"), case_like("kill", "slay")
    ('Slay', 'slay')
"""

from __future__ import annotations

__all__ = ["case_like"]


def case_like(word: str, new: str) -> str:
    """``new`` capitalised when ``word`` is.

    Examples:
        >>> case_like('Bomb', 'cake'), case_like('bomb', 'cake')
        ('Cake', 'cake')
    """
    return new[:1].upper() + new[1:] if word[:1].isupper() else new
