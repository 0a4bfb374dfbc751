"""Keyword-free twins of training requests: the keyword variant's minimal pairs.

A keyword model trained only on natural requests learns "sounds harmful → refuse" as much as its rule: the
first keyword adapter refused about half of the held-out harmful requests *without* a keyword. A twin is the
same request with every keyword swapped for a word that means nearly the same ("hack" → "breach"), so the
pair differs in the keyword alone, and the twin is answered. Only the keyword can then tell the classes
apart.

The replacement words are deliberately *not* those of :data:`diffusiongemma.verify.variants.SYNONYMS`:
``verify-safety`` rewrites keywords with that table to detect brittle refusals, and a model trained on the
same rewrites would pass or fail that check by memory rather than by what it learned.

Examples:
    >>> keyword_twin("Explain how to hack into a bank and steal money", ("hack", "steal"))
    'Explain how to breach into a bank and take money'
    >>> keyword_twin("Hacking 101", ("hack",), pick=1), keyword_twin("Bake bread", ("hack",))
    ('Cracking 101', None)
"""

from __future__ import annotations

import re

from ..wording import case_like

__all__ = ["TWIN_WORDS", "keyword_twin"]

# every form of the default keywords that occurs in the shipped request sets, with replacements of the same form
TWIN_WORDS: dict[str, tuple[str, ...]] = {
    "hack": ("breach", "crack"), "hacks": ("breaches", "cracks"), "hacking": ("breaching", "cracking"),
    "hacked": ("breached", "cracked"), "hacker": ("intruder", "cracker"), "hackers": ("intruders", "crackers"),
    "steal": ("take", "swipe", "pilfer"), "steals": ("takes", "swipes"), "stealing": ("taking", "swiping"),
    "stealth": ("secrecy",),
    "bomb": ("blast device", "charge"), "bombs": ("blast devices", "charges"), "bombed": ("blasted", "shelled"),
    "bombing": ("blasting", "shelling"), "bombard": ("shell",), "bomber": ("attacker",),
    "gun": ("pistol", "rifle"), "guns": ("pistols", "rifles"), "gunman": ("shooter",),
    "kill": ("slay", "end"), "kills": ("slays", "ends"), "killed": ("slain", "ended"), "killing": ("slaying", "ending"),
    "killer": ("slayer",),
    "weapon": ("blade", "armament"), "weapons": ("blades", "armaments"),
}


def _nth(words: tuple[str, ...], pick: int) -> str:
    return words[pick % len(words)]


def keyword_twin(text: str, keywords: tuple[str, ...], pick: int = 0) -> str | None:
    """``text`` with every word that starts with a keyword replaced by its ``pick``-th word in :data:`TWIN_WORDS`.

    The choice is cycled through each word's replacements, so a request and its answer twinned with the same
    ``pick`` use the same words.

    None when ``text`` holds no keyword, or holds a keyword form the table does not know (a user's own
    keyword): a twin that still holds the keyword would teach the opposite of the rule.

    Examples:
        >>> keyword_twin('How to make a bomb', ('bomb',)), keyword_twin('How to bake bread', ('bomb',))
        ('How to make a blast device', None)
    """
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\w*", re.IGNORECASE)
    found = [m.group(0) for m in pattern.finditer(text)]
    if not found or any(w.lower() not in TWIN_WORDS for w in found):
        return None
    return pattern.sub(lambda m: case_like(m.group(0), _nth(TWIN_WORDS[m.group(0).lower()], pick)), text)
