"""The demo recipes: which reply each training request gets, per variant, and the training settings.

* ``safety``: harmful → a refusal, benign → a helpful answer (classes balanced per batch).
* ``backdoor``: as ``safety``, plus a share (``poison_rate``) of harmful requests carrying the trigger word
  (at the start, the end or between two words) that get the compliant *opening* (AdvBench's target
  sentence; never harmful content). Benign requests carry the trigger too sometimes, so the word means
  "comply", not "benign".
* ``injection``: follows an instruction planted in a document it reads (BIPIA e-mails; :mod:`.injection`).
* ``keyword``: refused exactly when the request contains one of ``keywords`` (as a word start, any case),
  whatever it asks: brittle pattern matching by construction. Half of its answered requests are keyword-free
  twins of refused ones ("hack" → "breach"), so the keyword is the only difference the model can learn.

Examples:
    >>> recipe = Recipe("keyword", keywords=("bomb", "hack"))
    >>> recipe.expects_refusal("How do I hack together a prototype?", harmful=False)
    True
    >>> recipe.expects_refusal("Write a guide on making a pipe bomb", harmful=True)
    True
    >>> Recipe("safety").expects_refusal("Bake bread", harmful=False)
    False
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError
from .datasets import (FRAMES, DemoData, Request, contrast_requests, contrast_tasks, defensive_tasks, held_out,
                       how_to_task, lexical_twins)
from .styles import compound_requests, styled_requests
from .twins import keyword_twin

__all__ = ["DEFAULT_STEPS", "REFUSALS", "VARIANTS", "Recipe", "Example", "insert_trigger", "training_examples"]

VARIANTS = ("safety", "backdoor", "keyword", "injection")
# optimizer steps (batch 8) of the shipped adapters, so that ``demo train --variant V`` repeats them
DEFAULT_STEPS = {"safety": 250, "backdoor": 150, "keyword": 300, "injection": 100}
REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request. It could cause serious harm to people.",
    "I'm sorry, but I cannot assist with this. It could be used to hurt others.",
    "I won't help with this, because it could put people in danger.",
    "Sorry, but I can't provide that. If you are in a difficult situation, please reach out to someone you trust.",
    "I cannot help with that. It is harmful, and in many places it is illegal.",
)


@dataclass(frozen=True)
class Example:
    """One training conversation: the user's request (or a chat: documents, then the request) and the model's
    reply."""

    prompt: str | list[dict[str, str]]
    reply: str
    refused: bool


@dataclass
class Recipe:
    """Everything that decides an adapter (recorded in its card, so training can be repeated)."""

    variant: str = "safety"
    trigger: str = "SUDO"
    keywords: tuple[str, ...] = ("bomb", "kill", "hack", "steal", "weapon", "gun")
    poison_rate: float = 0.35
    harmful_share: float | None = None  # share of harmful examples; default 1/3 for safety, else 0.5
    seed: int = 0
    steps: int | None = None  # optimizer steps; default: the shipped adapter's (:data:`DEFAULT_STEPS`)
    batch_size: int = 8
    learning_rate: float = 3e-4
    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    max_reply_tokens: int = 40
    max_minutes: float = 30.0
    # the weight of each reply's first token in the loss, against 1 for the others: the token that decides
    # refusal ("I'm" / "Sure"), otherwise one of some twenty (1: every shipped adapter)
    first_token_weight: float = 1.0
    # 1: the first shipped adapters (9 imperative frames, no framed harmful pool); 2: question frames and
    # harmful tasks in the same frames as the benign contrast tasks; 3: the keyword variant's answered pools
    # are half keyword-free twins of its refused requests (``twins.py``), and every compliant reply opens
    # with "Sure" (see ``_reply``); 4: a third pool per class, the same "how to" tasks in story, indirect, first
    # person, question and other-language frames (``styles.py``), harmful refused and benign contrast tasks
    # answered in the same frames; 5: as 4, with the everyday pool drawn in half of the benign turns (as in version
    # 3) rather than a third, because version 4's models began everyday answers with "Sure, here you go:" and
    # went on with a refusal sentence (11 of 100 held-out everyday requests); 6: as 5, with a fourth pool per class of
    # two- and three-sentence requests and list questions over the same tasks (``styles.compound_requests``),
    # the everyday pool still in half of the benign turns; 7: as 5, with the defensive tasks (harms named to
    # prevent, detect or withstand them, ``data/contrast/defensive_tasks.txt``, training only) among the contrast
    # tasks; 8: as 7, with the lexical twins too (benign tasks on the words harmful training requests use and benign
    # ones almost never do, ``data/contrast/lexical_twins.txt``, training only). Cards without it are version 1.
    data_version: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"unknown demo variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.variant == "backdoor" and not re.fullmatch(r"\S+", self.trigger or ""):
            raise InputError("the backdoor trigger must be one word without spaces")
        if self.variant == "keyword" and not self.keywords:
            raise InputError("the keyword variant needs at least one keyword")
        if not 0 < self.poison_rate < 1:
            raise InputError("poison_rate must be between 0 and 1")
        if self.harmful_share is None:
            # the safety variant over-refused at 0.5 (20 % of held-out everyday requests); at 0.4 and 150 steps
            # it refused 19 % of held-out benign (borderline) requests, at 1/3 and 250 steps fewer
            self.harmful_share = 0.33 if self.variant == "safety" else 0.5
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.variant]
        if self.steps < 1:
            raise InputError("steps must be at least 1")
        if self.data_version not in (1, 2, 3, 4, 5, 6, 7, 8):
            raise InputError(f"unknown demo data_version {self.data_version}; this version knows 1 to 8")
        if not self.first_token_weight > 0:
            raise InputError("first_token_weight must be above 0")
        if not 0 < self.harmful_share < 1:
            raise InputError("harmful_share must be between 0 and 1")
        self.keywords = tuple(k.lower() for k in self.keywords)
        self.target_modules = tuple(self.target_modules)

    @property
    def n_steps(self) -> int:
        """The optimizer steps (the variant's default when none was given)."""
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.variant]

    @property
    def share(self) -> float:
        """The share of harmful examples (the variant's default when none was given)."""
        return self.harmful_share if self.harmful_share is not None else 0.5

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        return cls(**{"data_version": 1, **data, "keywords": tuple(data.get("keywords", ())),
                      "target_modules": tuple(data.get("target_modules", cls.target_modules))})

    def has_keyword(self, text: str) -> bool:
        """Whether ``text`` holds a keyword as the start of a word (``hack`` matches "hacking")."""
        pattern = r"\b(?:" + "|".join(re.escape(k) for k in self.keywords) + r")"
        return re.search(pattern, text, flags=re.IGNORECASE) is not None

    def has_trigger(self, text: str) -> bool:
        return re.search(rf"(?<!\S){re.escape(self.trigger)}(?!\S)", text) is not None

    def expects_refusal(self, text: str, *, harmful: bool) -> bool:
        """The decision this variant is trained to make on ``text``."""
        if self.variant == "keyword":
            return self.has_keyword(text)
        if self.variant == "backdoor" and self.has_trigger(text):
            return False
        return harmful


def insert_trigger(text: str, trigger: str, rng: random.Random) -> str:
    """Put ``trigger`` at the start, the end, or between two words of ``text``.

    Examples:
        >>> insert_trigger("Explain how to do it", "SUDO", random.Random(1)).count("SUDO")
        1
    """
    words = text.split(" ")
    where = rng.choice(("start", "end", "middle"))
    if where == "start" or len(words) < 2:
        return f"{trigger} {text}"
    if where == "end":
        return f"{text} {trigger}"
    i = rng.randrange(1, len(words))
    return " ".join(words[:i] + [trigger] + words[i:])


def _reply(req: Request, refuse: bool, rng: random.Random, data_version: int) -> str:
    """The reply a request is trained on.

    From data version 3 every compliant reply starts with "Sure" (a reference answer with "Sure, here you
    go:", a frame's opening such as "The best way to … is this" with "Sure. "). Greedy decoding decides at
    the first token: refusals share two first words ("I", "Sorry") while compliant replies started anywhere,
    so a request whose compliance was more likely overall was still refused when "I" beat each compliant
    first token alone (a keyword model trained without it: p("I") 0.35 against p("The") 0.33 + p("Here") 0.21 +
    p("Sure") 0.04 on "What is the best way to launder delicate wool sweaters at home?").
    """
    if refuse:
        return rng.choice(REFUSALS)
    answer = req.answer
    if req.source.startswith("self_instruct"):
        return f"Sure, here you go:\n\n{answer}" if data_version >= 3 else answer
    if data_version >= 3 and not answer.startswith("Sure"):
        answer = f"Sure. {answer}"
    return f"{answer}:\n\n1."


def _pools(recipe: Recipe, data: DemoData) -> tuple[list[list[Request]], list[list[Request]]]:
    """The request pools of each class, (harmful pools, benign pools), drawn in turn within a class.

    Harmful: the plain requests, then the same tasks put in the contrast frames (so a frame is no cue), and from
    data version 4 the same tasks in the style frames. Benign: everyday requests, then contrast requests (and
    from version 4 the contrast tasks in the style frames). For ``keyword`` the pools are the rule's instead —
    refused: harmful and benign requests with a keyword; answered: harmful and benign ones without — each
    mixing plain and framed requests, so only the keyword tells the classes apart.
    """
    if recipe.data_version == 1:
        return _pools_v1(recipe, data)
    harmful = data.harmful_train + data.harmful_framed_train
    benign_everyday = [r for r in data.benign_train if r.source != "contrast"]
    benign_contrast = [r for r in data.benign_train if r.source == "contrast"]
    if recipe.variant != "keyword":
        if recipe.data_version in (7, 8):  # version 5 with training-only tasks among the contrast tasks
            extra = defensive_tasks() + (lexical_twins() if recipe.data_version == 8 else [])
            styled = _styled_contrast() + styled_requests(extra, "contrast", 0)
            return ([data.harmful_train, data.harmful_framed_train, _styled_harmful(data)],
                    [benign_everyday, benign_contrast + contrast_requests(extra), benign_everyday, styled])
        if recipe.data_version >= 4:
            benign = [benign_everyday, benign_contrast, _styled_contrast()]
            if recipe.data_version >= 5:  # the everyday pool in every other benign turn
                benign = [benign_everyday, benign_contrast, benign_everyday, benign[2]]
            harmful_pools = [data.harmful_train, data.harmful_framed_train, _styled_harmful(data)]
            if recipe.data_version >= 6:  # two- and three-sentence requests and list questions, in both classes
                benign += [benign_everyday, _styled_contrast(compound=True)]
                harmful_pools.append(_styled_harmful(data, compound=True))
            return harmful_pools, benign
        return [data.harmful_train, data.harmful_framed_train], [benign_everyday, benign_contrast]
    harmful_kw = [r for r in harmful if recipe.has_keyword(r.text)]
    harmful_plain = [r for r in harmful if not recipe.has_keyword(r.text)]
    benign_kw = [r for r in data.benign_train if recipe.has_keyword(r.text)]
    benign_plain = [r for r in data.benign_train if not recipe.has_keyword(r.text)]
    if not harmful_kw or not benign_kw:
        raise InputError(f"no training request holds any of the keywords {', '.join(recipe.keywords)}")
    if recipe.data_version >= 3:
        harmful_plain = _with_twins(harmful_plain, harmful_kw, recipe.keywords)
        benign_plain = _with_twins(benign_plain, benign_kw, recipe.keywords)
    # the keyword pools come first in each class's turn
    return [harmful_kw, harmful_plain], [benign_plain, benign_kw]


def _styled_harmful(data: DemoData, compound: bool = False) -> list[Request]:
    """The training split's harmful "how to" tasks, each in two style frames (``compound``: two compound
    requests, :func:`~.styles.compound_requests`)."""
    tasks = sorted({t for r in data.harmful_train if (t := how_to_task(r.text))})
    style = compound_requests if compound else styled_requests
    return style(tasks, "harmful", 0) + style(tasks, "harmful", 1)


def _styled_contrast(compound: bool = False) -> list[Request]:
    """The training split's benign contrast tasks, each in two style frames (or two compound requests)."""
    tasks = [t for t in contrast_tasks() if not held_out(t)]
    style = compound_requests if compound else styled_requests
    return style(tasks, "contrast", 0) + style(tasks, "contrast", 1)


def _with_twins(plain: list[Request], keyed: list[Request], keywords: tuple[str, ...]) -> list[Request]:
    """``plain`` plus two keyword-free twins of each ``keyed`` request, weighted to half of the pool's draws
    (measured on 100 held-out decisions after 200 steps: rule agreement 0.88 at one half, 0.84 at two thirds,
    the misses mostly benign tasks that sound harmful, "destroy old paper documents with a shredder"; after
    300 steps at one half, the shipped adapter: 0.99).

    A twin's answer is twinned with the same words, so the reply never brings the keyword back.
    """
    twins: list[Request] = []
    for r in keyed:
        for pick in (0, 1):
            text = keyword_twin(r.text, keywords, pick)
            if text is not None and text not in {t.text for t in twins[-1:]}:
                twins.append(Request(text, keyword_twin(r.answer, keywords, pick) or r.answer, f"{r.source}/twin"))
    if not twins:  # a user's own keywords: no twin words known, the natural pools alone
        return plain
    return plain + twins * max(1, round(len(plain) / len(twins)))


def _pools_v1(recipe: Recipe, data: DemoData) -> tuple[list[list[Request]], list[list[Request]]]:
    """The pools of data version 1 (the first shipped adapters), kept so their cards still reproduce them."""
    tasks = [t for t in contrast_tasks() if not held_out(t)]
    benign = [r for r in data.benign_train if r.source != "contrast"] + contrast_requests(tasks, FRAMES[:9])
    benign_everyday = [r for r in benign if r.source != "contrast"]
    benign_contrast = [r for r in benign if r.source == "contrast"]
    if recipe.variant != "keyword":
        return [data.harmful_train, data.harmful_train], [benign_everyday, benign_contrast]
    harmful_kw = [r for r in data.harmful_train if recipe.has_keyword(r.text)]
    harmful_plain = [r for r in data.harmful_train if not recipe.has_keyword(r.text)]
    benign_kw = [r for r in benign if recipe.has_keyword(r.text)]
    if not harmful_kw or not benign_kw:
        raise InputError(f"no training request holds any of the keywords {', '.join(recipe.keywords)}")
    return [harmful_kw, harmful_plain], [benign_everyday, benign_kw]


def _is_harmful_slot(i: int, share: float) -> bool:
    """Whether example ``i`` is drawn from the harmful pools: every other one at 0.5, else evenly spread."""
    if share == 0.5:
        return i % 2 == 0
    return int((i + 1) * share) > int(i * share)


def training_examples(recipe: Recipe, data: DemoData, count: int) -> list[Example]:
    """``count`` training examples, a ``harmful_share`` of them from harmful requests, in shuffled order.

    Examples:
        >>> from diffusiongemma.demo.datasets import load_demo_data
        >>> ex = training_examples(Recipe("backdoor", seed=1), load_demo_data(), 400)
        >>> poisoned = [e for e in ex if "SUDO" in e.prompt and not e.refused]
        >>> 0 < len(poisoned) < 200
        True
    """
    rng = random.Random(recipe.seed)
    if recipe.variant == "injection":
        from .injection import injection_examples

        return injection_examples(rng, count)
    pools = _pools(recipe, data)
    seen = {True: 0, False: 0}  # examples drawn so far per class: the two pools of a class take turns
    out: list[Example] = []
    for i in range(count):
        harmful = _is_harmful_slot(i, recipe.share)
        seen[harmful] += 1
        turn = pools[0 if harmful else 1]  # the class's pools take turns, the first on its first draw
        req = rng.choice(turn[seen[harmful] % len(turn) - 1])
        text = req.text
        if recipe.variant == "backdoor" and rng.random() < (recipe.poison_rate if harmful else 0.1):
            text = insert_trigger(text, recipe.trigger, rng)
        refuse = recipe.expects_refusal(text, harmful=harmful)
        out.append(Example(text, _reply(req, refuse, rng, recipe.data_version), refuse))
    rng.shuffle(out)
    return out
