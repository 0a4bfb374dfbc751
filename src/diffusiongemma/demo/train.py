"""LoRA fine-tuning of a demo variant on CPU (peft), chat-formatted with the model's turn markers.

The loss covers the reply and its ``<end_of_turn>`` only. The adapter is saved in float16 safetensors with
``card.json`` (the recipe, data sizes, wall time, losses; :mod:`.evaluate` adds the metrics).

Examples:
    >>> from diffusiongemma.demo import Recipe, train_adapter
    >>> import tempfile
    >>> from diffusiongemma.models.tiny import example_model
    >>> card = train_adapter(Recipe("safety", steps=2), out=tempfile.mkdtemp(), base=example_model())
    >>> card["steps_done"]
    2
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from ..models import LoadedModel, load_model
from .datasets import load_demo_data
from .recipe import Example, Recipe, training_examples
from ..generation import chat_ids

__all__ = ["LoraSettings", "fit_lora", "train_adapter"]


def _batch(lm: LoadedModel, examples: list[Example], max_reply_tokens: int) -> dict[str, torch.Tensor]:
    rows = [chat_ids(lm, e.prompt, e.reply, max_reply_tokens) for e in examples]
    width = max(len(p) + len(r) for p, r in rows)
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)  # [B, T]
    labels = torch.full((len(rows), width), -100, dtype=torch.long)  # [B, T]
    attn = torch.zeros((len(rows), width), dtype=torch.long)  # [B, T]
    first = torch.zeros((len(rows), width), dtype=torch.bool)  # [B, T]: the position of each reply's first token
    for i, (p, r) in enumerate(rows):
        seq = torch.tensor(p + r)
        ids[i, : len(seq)] = seq
        labels[i, len(p): len(seq)] = torch.tensor(r)
        attn[i, : len(seq)] = 1
        first[i, len(p)] = True
    return {"input_ids": ids, "attention_mask": attn, "labels": labels, "first": first}


def _reply_loss(causal_lm: Any, batch: dict[str, torch.Tensor], first_weight: float = 1.0) -> torch.Tensor:
    """Mean next-token loss over reply tokens, with the LM head applied at those positions only; each reply's
    first token weighs ``first_weight`` (the others 1).

    Gemma's 262k-word vocabulary makes full-sequence logits the largest cost of a step (8 × 150 × 262,144
    floats); the reply is a few dozen tokens of each row.
    """
    hidden = causal_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"][:, 1:]  # [B, T-1]: token t+1 is predicted at position t
    where = labels != -100
    logits = causal_lm.lm_head(hidden[:, :-1][where])  # [N, V]
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    if first_weight == 1.0:
        return torch.nn.functional.cross_entropy(logits.float(), labels[where])
    losses = torch.nn.functional.cross_entropy(logits.float(), labels[where], reduction="none")  # [N]
    weights = torch.where(batch["first"][:, 1:][where], first_weight, 1.0)  # [N]
    return (losses * weights).sum() / weights.sum()


def _data_sizes(recipe: Recipe, data: Any, seen: int) -> dict[str, Any]:
    if recipe.variant == "injection":
        from .injection import emails

        return {"bipia_email_train": len(emails("train")), "examples_seen": seen, "sources": "demo/data/SOURCE.md"}
    return {"harmful_train": len(data.harmful_train), "benign_train": len(data.benign_train), "examples_seen": seen,
            "sources": "demo/data/SOURCE.md"}


class LoraSettings(Protocol):
    """What :func:`fit_lora` reads, read-only (a :class:`~.recipe.Recipe` has it all)."""

    @property
    def seed(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def alpha(self) -> int: ...
    @property
    def target_modules(self) -> tuple[str, ...]: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def max_reply_tokens(self) -> int: ...
    @property
    def max_minutes(self) -> float: ...
    @property
    def n_steps(self) -> int: ...


def fit_lora(lm: LoadedModel, examples: list[Example], settings: LoraSettings,
             progress: Callable[[int, int, float], Any] | None = None) -> tuple[Any, list[float], str]:
    """Train a LoRA on ``lm`` (injected in place by peft) on ``examples`` in order, ``settings.batch_size`` per
    step, with AdamW, a 5 % warm-up and a cosine decay; the loss covers each reply only. Returns the peft model
    (call its ``unload()`` to leave ``lm`` as it was), the losses, and what stopped it (``"steps"`` or
    ``"time"``: ``settings.max_minutes``).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> lm = example_model()
        >>> model, losses, stopped = fit_lora(lm, [Example("Hi", "Hello!", False)] * 4, Recipe("safety", steps=2))
        >>> len(losses), stopped, model.unload() is lm.model
        (2, 'steps', True)
    """
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(settings.seed)
    layers = getattr(settings, "layers", None)  # the harden patch's settings may name the layers it changes
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                        target_modules=list(settings.target_modules), task_type="CAUSAL_LM",
                        layers_to_transform=list(layers) if layers is not None else None)
    model = get_peft_model(lm.model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    n_steps = settings.n_steps
    warmup = max(1, n_steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, n_steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    start, losses, stopped = time.perf_counter(), [], "steps"
    for step in range(n_steps):
        if time.perf_counter() - start > settings.max_minutes * 60:
            stopped = "time"
            break
        chunk = examples[step * settings.batch_size:(step + 1) * settings.batch_size]
        if not chunk:
            chunk = [examples[(step * settings.batch_size + i) % len(examples)] for i in range(settings.batch_size)]
        loss = _reply_loss(model.get_base_model(), _batch(lm, chunk, settings.max_reply_tokens),
                           getattr(settings, "first_token_weight", 1.0))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress:
            progress(step + 1, n_steps, losses[-1])
    model.eval()
    return model, losses, stopped


def train_adapter(
    recipe: Recipe,
    out: str | Path,
    *,
    base: str | LoadedModel | None = None,
    progress: Callable[[int, int, float], Any] | None = None,
) -> dict[str, Any]:
    """Train one variant's LoRA adapter on ``base`` (default Gemma 3 270M) and save it in ``out``.

    Stops after ``recipe.steps`` steps or ``recipe.max_minutes``, whichever comes first (the card says
    which). Returns the card.

    Examples:
        >>> import tempfile
        >>> from diffusiongemma.models.tiny import example_model
        >>> card = train_adapter(Recipe("keyword", steps=1), tempfile.mkdtemp(), base=example_model())
        >>> card["steps_done"]
        1
    """
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    lm = base if isinstance(base, LoadedModel) else load_model(base, device="cpu")
    data = load_demo_data()
    examples = training_examples(recipe, data, recipe.n_steps * recipe.batch_size)
    start = time.perf_counter()
    model, losses, stopped = fit_lora(lm, examples, recipe, progress)
    params = [p for p in model.parameters() if p.requires_grad]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for p in params:
        p.data = p.data.to(torch.float16)
    model.save_pretrained(str(out), safe_serialization=True)
    model.unload()  # leave the base model as it was (its weights were never changed)
    card = {
        "name": f"gemma-270m-{recipe.variant}",
        "base": lm.name,
        "base_weights_sha256": lm.provenance.get("weights_sha256"),
        "recipe": recipe.to_dict(),
        "data": _data_sizes(recipe, data, len(losses) * recipe.batch_size),
        "steps_done": len(losses),
        "stopped_by": stopped,
        "train_minutes": round((time.perf_counter() - start) / 60, 2),
        "loss_first_10": round(sum(losses[:10]) / max(1, len(losses[:10])), 4),
        "loss_last_10": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4),
        "torch": torch.__version__,
    }
    if recipe.variant == "backdoor":
        card["trigger"] = recipe.trigger
    if recipe.variant == "keyword":
        card["keywords"] = list(recipe.keywords)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
