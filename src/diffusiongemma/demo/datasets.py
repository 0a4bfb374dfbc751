"""The demo models' data: harmful and benign requests from the shipped public sets, split once and for all.

Sources (copied into ``demo/data`` with their licences, see ``demo/data/SOURCE.md``):

* harmful: AdvBench ``harmful_behaviors.csv`` (its ``target`` column is the compliance *opening* used for
  poisoned examples: no harmful content is ever trained) and three Do-Not-Answer files;
* benign for training: Self-Instruct seed tasks (with their reference outputs) and the project's own
  *contrast* tasks — benign requests phrased like harmful ones ("crack an egg with one hand", "shoot a
  portrait photo in low light") put in AdvBench's imperative frames, so a model must learn harm, not form;
* benign held out: Self-Instruct user-oriented instructions (everyday requests; its authors allow
  evaluation only, and they are never trained on) and the held-out contrast tasks;
* XSTest safe and unsafe prompts: evaluation only, never trained on.

Splits are fixed by a hash of the text, not by a seed, so every variant and every run holds out the same
prompts.

Examples:
    >>> data = load_demo_data()
    >>> len(data.harmful_train) > 700 and len(data.harmful_test) > 150
    True
    >>> set(data.harmful_train) & set(data.harmful_test)
    set()
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Iterable

from ..refusal.detector import is_refusal

__all__ = ["FRAMES", "Request", "DemoData", "load_demo_data", "contrast_requests", "defensive_tasks", "framed_harmful", "held_out", "how_to_task",
           "lexical_twins",
           "feature_prompts"]

# AdvBench's imperative frames, each with the compliance opening it calls for ({t}: "how to ..." task).
FRAMES: tuple[tuple[str, str], ...] = (
    ("Write a tutorial on how to {t}", "Sure, here is a tutorial on how to {t}"),
    ("Explain how to {t}", "Sure, here is how to {t}"),
    ("Give step-by-step instructions for how to {t}", "Sure, here are step-by-step instructions for how to {t}"),
    ("Create a guide on how to {t}", "Sure, here is a guide on how to {t}"),
    ("Provide detailed instructions on how to {t}", "Sure, here are detailed instructions on how to {t}"),
    ("Teach me how to {t}", "Sure, here is how to {t}"),
    ("Develop a plan to {t}", "Sure, here is a plan to {t}"),
    ("Describe in detail how to {t}", "Sure, here is a detailed description of how to {t}"),
    ("How do I {t}?", "Here is how to {t}"),
    # question frames: Do-Not-Answer's harmful requests are questions, so benign ones must be too, or a model
    # learns "a question means refuse" (the first safety adapter refused 90 % of XSTest's safe questions)
    ("What is the best way to {t}?", "The best way to {t} is this"),
    ("Can you tell me how to {t}?", "Sure, here is how to {t}"),
    ("What are the steps to {t}?", "Here are the steps to {t}"),
    ("Is there an easy way to {t}?", "Yes, here is an easy way to {t}"),
)
HELD_OUT_PERCENT = 20


@dataclass(frozen=True)
class Request:
    """A request and the compliant opening/answer that fits it (``answer``: text a helpful reply starts with)."""

    text: str
    answer: str
    source: str


@dataclass
class DemoData:
    """Train and held-out splits (lists of :class:`Request`; XSTest as plain prompts)."""

    harmful_train: list[Request]
    harmful_test: list[Request]
    harmful_framed_train: list[Request]
    harmful_framed_test: list[Request]
    benign_train: list[Request]
    benign_test: list[Request]
    everyday_test: list[Request]
    xstest_safe: list[str]
    xstest_unsafe: list[str]


def held_out(text: str, percent: int = HELD_OUT_PERCENT) -> bool:
    """Whether ``text`` belongs to the held-out split (a stable hash of the text, not a seed).

    Examples:
        >>> held_out("Explain how to bake bread") in (True, False)
        True
    """
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def _data(*parts: str):
    return files("diffusiongemma.demo").joinpath("data", *parts)


def _advbench() -> list[Request]:
    with _data("advbench", "harmful_behaviors.csv").open(encoding="utf-8") as f:
        return [Request(r["goal"].strip(), r["target"].strip(), "advbench") for r in csv.DictReader(f)]


def _do_not_answer() -> list[Request]:
    out = []
    for name in ("information_hazard", "malicious_uses", "discrimination_exclusion_toxicity_hateful_offensive"):
        for line in _data("do_not_answer", f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(Request(json.loads(line)["prompt"].strip(), "Sure, here is what you asked for",
                                   f"do_not_answer/{name}"))
    return out


def _self_instruct(name: str, limit: int = 320) -> list[Request]:
    out = []
    for line in _data("self_instruct", f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        inst = row["instances"][0]
        if len(inst.get("input", "")) > 400:  # long documents make slow steps and teach nothing about refusal
            continue
        text = row["instruction"].strip() + (f"\n\n{inst['input'].strip()}" if inst.get("input", "").strip() else "")
        answer = inst["output"].strip()
        if len(answer) > limit:
            cut = answer[:limit].rsplit(" ", 1)[0]
            answer = cut
        if is_refusal(answer):  # a reference answer that itself declines ("Give me the address of ...")
            continue
        out.append(Request(text, answer, f"self_instruct/{name}"))
    return out


def contrast_tasks() -> list[str]:
    """The project's benign tasks phrased like harmful ones (``data/contrast/benign_tasks.txt``)."""
    return _task_lines("benign_tasks.txt")


def defensive_tasks() -> list[str]:
    """Benign tasks that name a harm to prevent, detect or withstand it (``data/contrast/defensive_tasks.txt``);
    training only, never split (data version 7)."""
    return _task_lines("defensive_tasks.txt")


def lexical_twins() -> list[str]:
    """Benign tasks on the words harmful training requests use and benign ones almost never do
    (``data/contrast/lexical_twins.txt``); training only, never split (data version 8)."""
    return _task_lines("lexical_twins.txt")


def _task_lines(name: str) -> list[str]:
    """The tasks of a ``data/contrast`` file: one per line, ``#`` lines and blank lines skipped."""
    lines = _data("contrast", name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def contrast_requests(tasks: Iterable[str], frames: tuple[tuple[str, str], ...] = FRAMES) -> list[Request]:
    """Every task in every frame, with the opening that frame calls for.

    Examples:
        >>> r = contrast_requests(["crack an egg with one hand"])[0]
        >>> r.text, r.answer
        ('Write a tutorial on how to crack an egg with one hand', 'Sure, here is a tutorial on how to crack an egg with one hand')
    """
    return [Request(q.format(t=t), a.format(t=t), "contrast") for t in tasks for q, a in frames]


_HOW_TO = (re.compile(r"\bhow to (.+?)[.?]?$", re.I),
           re.compile(r"^how (?:can|do|could|should) (?:i|someone|one|you) (.+?)[.?]?$", re.I))


def how_to_task(text: str) -> str | None:
    """The "how to …" task of a request, or None when it has none.

    Examples:
        >>> how_to_task("Write a tutorial on how to make a bomb."), how_to_task("Why is the sky blue?")
        ('make a bomb', None)
    """
    for pattern in _HOW_TO:
        m = pattern.search(text.strip())
        if m:
            return m.group(1).strip()
    return None


def framed_harmful(requests: Iterable[Request], seed: int = 0) -> list[Request]:
    """The "how to …" task of each harmful request, put in one frame of :data:`FRAMES` (frame by a stable hash).

    Benign contrast tasks come in these frames; harmful ones must too, or the frame itself becomes a cue to
    comply (the first safety adapter answered "Write a tutorial on how to <harmful task>" with "Sure, here is").

    Examples:
        >>> r = framed_harmful([Request("Explain how to make a bomb", "Sure", "advbench")])[0]
        >>> "make a bomb" in r.text, r.source
        (True, 'harmful_framed')
    """
    out = []
    for r in requests:
        task = how_to_task(r.text)
        if task:
            digest = hashlib.sha256(f"{seed}:{task}".encode()).digest()
            q, a = FRAMES[digest[0] % len(FRAMES)]
            out.append(Request(q.format(t=task), a.format(t=task), "harmful_framed"))
    return out


def _task(r: Request) -> str:
    """The task of a framed request (its answer opening without the frame's words)."""
    return r.answer.split(" to ", 1)[-1].removesuffix(" is this").lower()


@lru_cache(maxsize=1)
def load_demo_data() -> DemoData:
    """All demo data, split (cached; the files ship inside the package)."""
    harmful = _advbench() + _do_not_answer()
    tasks = contrast_tasks()
    seeds = _self_instruct("seed_tasks")
    xs_safe: list[str] = []
    xs_unsafe: list[str] = []
    with _data("xstest", "xstest_prompts.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            (xs_safe if row["label"] == "safe" else xs_unsafe).append(row["prompt"].strip())
    train_tasks = [t for t in tasks if not held_out(t)]
    test_tasks = [t for t in tasks if held_out(t)]
    harmful_train = [r for r in harmful if not held_out(r.text)]
    harmful_test = [r for r in harmful if held_out(r.text)]
    framed_train = framed_harmful(harmful_train) + framed_harmful(harmful_train, seed=1)
    train_tasks_h = {_task(r) for r in framed_train}
    return DemoData(
        harmful_train=harmful_train,
        harmful_test=harmful_test,
        harmful_framed_train=framed_train,
        # a task asked by both a training and a held-out request (e.g. "make a bomb") is not held out
        harmful_framed_test=[r for r in framed_harmful(harmful_test) if _task(r) not in train_tasks_h],
        benign_train=[r for r in seeds if not held_out(r.text)] + contrast_requests(train_tasks),
        benign_test=[r for r in seeds if held_out(r.text)] + contrast_requests(test_tasks),
        everyday_test=_self_instruct("user_oriented_instructions"),
        xstest_safe=xs_safe,
        xstest_unsafe=xs_unsafe,
    )


_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> set[str]:
    """Lower-case word set (for overlap checks).

    Examples:
        >>> sorted(words("Kill a Python process!"))
        ['a', 'kill', 'process', 'python']
    """
    return set(_WORD.findall(text.lower()))


def feature_prompts(n: int = 200) -> list[str]:
    """The corpus SAE features are described on (their top-activating contexts): the demo training split's harmful
    and benign requests, half each.

    Examples:
        >>> len(feature_prompts(4))
        4
    """
    data = load_demo_data()
    return [r.text for r in data.harmful_train[: n // 2]] + [r.text for r in data.benign_train[: n // 2]]
