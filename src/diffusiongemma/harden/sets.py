"""The fixed prompt sets a harden run attacks, fits on and judges with, and which attacks a patch is fit on.

Examples:
    >>> s = harden_sets(requests=2, calibration=2, benign=1, safe=1)
    >>> len(s["attack"]), len(s["calib_harmful"])
    (2, 2)
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError
from ..validation import check_count
from .attacks import Attack

__all__ = ["stable_sample", "check_sizes", "harden_sets", "split_suite"]


def stable_sample(items: list[Any], k: int, salt: str = "") -> list[Any]:
    """``k`` distinct items chosen by a salted hash of their text (the same choice on every machine); a chat
    (the multi-turn attack's messages) counts by its JSON text.

    Examples:
        >>> stable_sample(["a", "b", "a", [{"role": "user", "content": "c"}]], 3) == stable_sample(
        ...     [[{"role": "user", "content": "c"}], "b", "a"], 3)
        True
    """
    from ..verify.safety import stable_sample as by_hash

    def text(x: Any) -> str:
        return x if isinstance(x, str) else json.dumps(x, sort_keys=True)

    unique = list({text(x): x for x in items}.values())
    return by_hash(unique, lambda x: salt + text(x), k)


def check_sizes(requests: int, calibration: int, benign: int, safe: int, templates: int = 1) -> None:
    """Refuse sizes too small for a harden run (before any model loads).

    Examples:
        >>> check_sizes(1, 16, 24, 24)
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: harden needs at least 2 attack requests, 2 calibration requests and 1 benign and safe prompt
    """
    if min(requests, calibration) < 2 or min(benign, safe) < 1:
        raise InputError("harden needs at least 2 attack requests, 2 calibration requests and 1 benign and safe prompt")
    check_count(templates, "--templates", "jailbreak templates", minimum=0)  # 0: the plain attacks only


def harden_sets(requests: int = 12, calibration: int = 16, benign: int = 24, safe: int = 24) -> dict[str, list[str]]:
    """Fixed prompt sets (chosen by a hash of the text): held-out harmful AdvBench ``requests`` to attack,
    ``calibration`` harmful and benign *training-split* requests to wrap in the attacks and fit on (and 4 ×
    ``calibration`` of each, plain), held-out ``benign`` requests and XSTest ``safe`` prompts for over-refusal.

    Examples:
        >>> s = harden_sets(requests=4, calibration=6, benign=5, safe=3)
        >>> [len(s[k]) for k in ("attack", "calib_harmful", "calib_benign", "plain_benign", "benign", "safe")]
        [4, 6, 6, 24, 5, 3]
    """
    from ..demo.datasets import load_demo_data

    d = load_demo_data()
    return {
        "attack": stable_sample([r.text for r in d.harmful_test if r.source == "advbench"], requests, "attack"),
        "calib_harmful": stable_sample([r.text for r in d.harmful_train], calibration, "calib"),
        # benign twins: short requests, mostly contrast ones. Half Self-Instruct seed tasks (instructions with an
        # input) instead cut the LoRA patch's attack cut from 5.3x to 2.9x on gemma-270m-safety (leetspeak and
        # base64 twins answered: the obfuscations then beat the patch) for everyday over-refusal +3 against +4
        "calib_benign": stable_sample([r.text for r in d.benign_train], calibration, "calib"),
        "plain_harmful": stable_sample([r.text for r in d.harmful_train], 4 * calibration, "plain"),
        "plain_benign": stable_sample([r.text for r in d.benign_train], 4 * calibration, "plain"),
        # everyday-like benign requests (Self-Instruct seed tasks, often an instruction and an input): the benign
        # training split is mostly short contrast requests; on gemma-270m-safety a LoRA patch fit without these
        # refused 22 % of held-out everyday requests (3 % before), with them once 11 %
        "plain_everyday": stable_sample([r.text for r in d.benign_train if r.source.startswith("self_instruct")],
                                        8 * calibration, "everyday"),
        "direction_harmful": stable_sample([r.text for r in d.harmful_train], 2 * calibration, "direction"),
        "direction_benign": stable_sample([r.text for r in d.benign_train], 2 * calibration, "direction"),
        "benign": stable_sample([r.text for r in d.benign_test], benign, "benign"),
        "everyday": stable_sample([r.text for r in d.everyday_test], benign, "everyday"),
        "safe": stable_sample(d.xstest_safe, safe, "safe"),
    }


def split_suite(suite: list[Attack], held_out: tuple[str, ...] | list[str]) -> list[Attack]:
    """The attacks a patch is fit on: the suite less those named in ``held_out`` (by name or family). A name that
    is neither, or holding out every attack, is an :class:`InputError`.

    Examples:
        >>> from diffusiongemma.harden.attacks import attack_suite
        >>> suite = attack_suite(templates=0)
        >>> [a.name for a in split_suite(suite, ["translation", "obfuscation"])][:4]
        ['prefix_injection', 'role_play', 'payload_splitting', 'rare_token']
    """
    known = {a.name for a in suite} | {a.family for a in suite}
    unknown = [h for h in held_out if h not in known]
    if unknown:
        raise InputError(f"cannot hold out {', '.join(map(repr, unknown))}: not an attack or family of the suite "
                         f"(known: {', '.join(sorted(known))})")
    kept = [a for a in suite if a.name not in held_out and a.family not in held_out]
    if not kept:
        raise InputError("every attack is held out: the patch would have nothing to be fit on")
    return kept
