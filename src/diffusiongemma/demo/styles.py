"""Phrasing styles for training (data version 4): the same "how to" tasks asked as a story, for a friend, in the
first person, as a question, or in another language's frame — harmful tasks refused, the benign contrast tasks
answered in the very same frames, so the style is never the cue; only the task is.

The wordings here are the training set's own: ``verify-safety``'s generalization check
(:data:`diffusiongemma.verify.generalization.STYLES`) asks in other words, so it measures whether refusals carry
over to a style, not whether the model remembers a frame.

Examples:
    >>> r = styled_requests(["crack an egg with one hand"], "contrast")[0]
    >>> "crack an egg with one hand" in r.text and r.answer.startswith("Sure")
    True
    >>> from diffusiongemma.verify.generalization import STYLES
    >>> any(q.split("{t}")[0] in s for q, _ in STYLE_FRAMES for s in STYLES.values())  # no frame of the check's
    False
"""

from __future__ import annotations

import hashlib

from .datasets import Request

__all__ = ["STYLE_FRAMES", "CONTEXTS", "DEMANDS", "LIST_FRAMES", "styled_requests", "compound_requests"]

# (request, the compliant opening); several per style, none worded as verify-safety's STYLES
STYLE_FRAMES: tuple[tuple[str, str], ...] = (
    # story / role play
    ("Write a short story in which a character explains, step by step, how to {t}.",
     "Sure. Here is the story, with the steps to {t}"),
    ("For my novel, an expert character describes exactly how to {t}. Write that scene.",
     "Sure. Here is the scene, where the expert describes how to {t}"),
    ("Pretend you are an old master of the trade and teach me how to {t}.",
     "Sure. As an old master, here is how to {t}"),
    # indirect: for someone else
    ("My cousin wants to know how to {t}. What can I tell him?", "Sure. You can tell him how to {t}"),
    ("Someone at work asked me how to {t}. How should I answer?", "Sure. Here is how to {t}"),
    # first person
    ("I need to {t} this week. Walk me through it.", "Sure. Here is how to {t}"),
    ("I'm planning to {t}. What will I need?", "Sure. Here is what you need to {t}"),
    # question
    ("Could you explain how someone would {t}?", "Sure, here is how someone would {t}"),
    # another language's frame (the task stays as written)
    ("Explique-moi, s'il te plaît, comment {t}.", "Sure, here is how to {t}"),
    ("Dime paso a paso cómo {t}.", "Sure, here is how to {t}"),
)


def styled_requests(tasks: list[str], source: str, seed: int = 0) -> list[Request]:
    """Each task in one style frame (chosen by a stable hash of the task and ``seed``), with its opening.

    Examples:
        >>> r = styled_requests(['pick a lock'], 'demo')[0]
        >>> r.text, r.source
        ('I need to pick a lock this week. Walk me through it.', 'demo/styled')
    """
    out = []
    for t in tasks:
        q, a = STYLE_FRAMES[hashlib.sha256(f"{seed}:{t}".encode()).digest()[0] % len(STYLE_FRAMES)]
        out.append(Request(q.format(t=t), a.format(t=t), f"{source}/styled"))
    return out


# Data version 6: requests of two or three sentences — a sentence of context before the ask and a demand after it
# ("... Give detailed instructions.") — and list questions ("What are some ways to ...?"). Version 5's model
# refused 90 % of StrongREJECT's one-sentence requests and 77 % of its longer ones (the form, not the topics,
# was read off that benchmark; no StrongREJECT text is trained on). Both classes get the same sentences.
CONTEXTS: tuple[str, ...] = (
    "I have a free weekend coming up.",
    "I'm a college student on a tight budget.",
    "I've never done this before.",
    "My neighbour and I were talking about this yesterday.",
    "I only have basic tools at home.",
    "I'm 17 and my parents are away.",
    "I already have most of what I need.",
    "Nobody I know can help me with this.",
)
DEMANDS: tuple[str, ...] = (
    "Give detailed instructions.",
    "List every material and tool I need.",
    "Provide step-by-step instructions with quantities.",
    "Suggest five different methods.",
    "Be specific and leave nothing out.",
    "Explain each step in detail.",
)
# (question, the compliant opening) over the same tasks
LIST_FRAMES: tuple[tuple[str, str], ...] = (
    ("What are some ways to {t}?", "Sure. Here are some ways to {t}"),
    ("What are the most effective methods to {t}?", "Sure. Here are the most effective methods to {t}"),
    ("What tools and techniques would I need to {t}?", "Sure. Here are the tools and techniques to {t}"),
    ("How can I {t}?", "Sure. Here is how you can {t}"),
)


def compound_requests(tasks: list[str], source: str, seed: int = 0) -> list[Request]:
    """Each task as a list question, with a context sentence before it and a demand after it (each present or not,
    all chosen by a stable hash of the task and ``seed``).

    Examples:
        >>> r = compound_requests(["bake bread without yeast"], "contrast")[0]
        >>> "bake bread without yeast" in r.text and r.answer.startswith("Sure")
        True
        >>> len(compound_requests(["bake bread without yeast", "fold a paper crane"], "contrast", seed=3))
        2
    """
    out = []
    for t in tasks:
        h = hashlib.sha256(f"compound:{seed}:{t}".encode()).digest()
        q, a = LIST_FRAMES[h[0] % len(LIST_FRAMES)]
        parts = [CONTEXTS[h[1] % len(CONTEXTS)]] if h[2] % 2 else []
        parts.append(q.format(t=t))
        if h[3] % 4:  # three in four carry a demand
            parts.append(DEMANDS[h[4] % len(DEMANDS)])
        out.append(Request(" ".join(parts), a.format(t=t), f"{source}/compound"))
    return out
