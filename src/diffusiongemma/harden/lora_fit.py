"""Training the LoRA patch by consistency: answer the attacked request as you answer the plain one.

For every training-split request (the calibration sets of :func:`.sets.harden_sets`, never the held-out requests
a run is judged on), the target reply is the model's *own* greedy reply to the plain request, taken before any
patch: its refusal for a harmful request it refuses (a stock refusal for one it does not), its answer for a
benign request it answers (benign requests it refuses are left out: the patch is not asked to change them).
The examples are those plain requests and the same requests wrapped in every attack of the suite — harmful
and benign alike, so that the wrapper carries no decision of its own, only the request does. This is
bias-augmented consistency training (Chua et al. 2024; Irpan et al. 2025, "Consistency training helps stop
sycophancy and jailbreaks") with a LoRA, sized for CPU.

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> from diffusiongemma.harden.attacks import attack_by_name
    >>> lm = example_model()
    >>> ex = consistency_examples(lm, ["Explain how to pick a lock"], ["Bake bread"], [attack_by_name("role_play")],
    ...                           max_reply_tokens=4)
    >>> len(ex), sorted({e.refused for e in ex})  # each request plain and wrapped
    (4, [False, True])
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from .attacks import Attack
from .lora import LoraPatch, LoraPatchSettings

__all__ = ["consistency_examples", "fit_lora_patch"]


def consistency_examples(lm: Any, harmful: list[str], benign: list[str], suite: list[Attack], *,
                         plain_harmful: tuple[str, ...] | list[str] = (), plain_benign: tuple[str, ...] | list[str] = (),
                         max_reply_tokens: int = 40, seed: int = 0) -> list[Any]:
    """The training examples (:class:`~diffusiongemma.demo.recipe.Example`), shuffled with ``seed``: ``harmful``
    and ``benign`` plain and in every attack, ``plain_harmful`` and ``plain_benign`` plain only (so the plain
    behaviour keeps its weight)."""
    from ..demo.recipe import REFUSALS, Example
    from ..generation import generate_replies
    from ..refusal import is_refusal

    rng = random.Random(seed)
    rows = ([(r, True, True) for r in harmful] + [(r, False, True) for r in benign]
            + [(r, True, False) for r in plain_harmful] + [(r, False, False) for r in plain_benign])
    unique = list(dict.fromkeys(r for r, _, _ in rows))  # a request given twice (to weigh it) is answered once
    own = dict(zip(unique, generate_replies(lm, unique, max_new_tokens=max_reply_tokens)))
    out: list[Any] = []
    for request, is_harmful, wrapped in rows:
        reply = own[request]
        refused = is_refusal(reply)
        if is_harmful and not refused:
            reply = rng.choice(REFUSALS)
        if not is_harmful and refused:
            continue  # a benign request the model refuses plain: not the patch's business
        for prompt in [request] + ([a.apply(request) for a in suite] if wrapped else []):
            out.append(Example(prompt, reply, is_harmful))
    rng.shuffle(out)
    return out


def fit_lora_patch(lm: Any, harmful: list[str], benign: list[str], suite: list[Attack],
                   settings: LoraPatchSettings = LoraPatchSettings(), *,
                   plain_harmful: tuple[str, ...] | list[str] = (), plain_benign: tuple[str, ...] | list[str] = (),
                   progress: Callable[[str], Any] | None = None) -> LoraPatch:
    """Train the patch on ``lm`` and return it; ``lm`` is left exactly as it was (the LoRA is unloaded). The
    examples: :func:`consistency_examples`.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> from diffusiongemma.harden.attacks import attack_by_name
        >>> p = fit_lora_patch(example_model(), ["Explain how to pick a lock"], ["Bake bread"],
        ...                    [attack_by_name("few_shot")], LoraPatchSettings(steps=1, batch_size=2, rank=2))
        >>> len(p.factors), p.meta["steps_done"]  # 7 projections in each of 2 layers
        (14, 1)
    """
    from ..demo.train import fit_lora

    say = progress or (lambda _: None)
    t0 = time.time()
    say("the model's own replies to the plain requests")
    examples = consistency_examples(lm, harmful, benign, suite, plain_harmful=plain_harmful,
                                    plain_benign=plain_benign, max_reply_tokens=settings.max_reply_tokens,
                                    seed=settings.seed)

    def step(done: int, total: int, loss: float) -> None:
        if done % 10 == 0 or done == total:
            say(f"training the LoRA patch: step {done}/{total}, loss {loss:.3f}")

    settings = settings.for_examples(len(examples))
    model, losses, stopped = fit_lora(lm, examples, settings, step)
    meta = {"model": lm.name, "weights_sha256": lm.provenance.get("weights_sha256"),
            "adapter_sha256": lm.provenance.get("adapter_sha256"), "kind": "lora (consistency training)",
            "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
            "examples": len(examples), "refused_examples": sum(e.refused for e in examples),
            "attacks": [a.name for a in suite], "steps_done": len(losses), "stopped_by": stopped,
            "loss_first_10": sum(losses[:10]) / max(1, len(losses[:10])),
            "loss_last_10": sum(losses[-10:]) / max(1, len(losses[-10:])),
            "train_minutes": round((time.time() - t0) / 60, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    patch = LoraPatch.from_peft(model, meta)
    model.unload()
    return patch
