"""Chat-formatted token ids and greedy generation, batched (used by the demo recipes, refusal forensics and trace).

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> lm = example_model()  # 2 random layers: its replies are noise, the call is the one to make
    >>> replies = generate_replies(lm, ["Write a haiku about snow"], max_new_tokens=8)
    >>> len(replies), isinstance(replies[0], str)
    (1, True)
"""

from __future__ import annotations

from typing import Sequence

import torch

from .errors import InputError
from .validation import check_count
from .models import LoadedModel
from .models.forward import cache_kwarg, last_logits_only
from .prompts import Chat, render_prompt

__all__ = ["chat_ids", "generate_replies", "greedy_ids", "greedy_full"]


def chat_ids(lm: LoadedModel, prompt: str | Chat, reply: str | None = None, max_reply_tokens: int = 64, *,
             system: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids of the user turn up to the model's turn marker, and of the reply plus ``<end_of_turn>``.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> lm = example_model()
        >>> p, r = chat_ids(lm, "Hi", "Hello!")
        >>> lm.tokenizer.decode(r), lm.tokenizer.decode(p[-3:])
        ('Hello!<end_of_turn>', '<start_of_turn>model\\n')
    """
    if not lm.chat_template:
        raise InputError(f"{lm.name} has no chat template; chat replies need one")
    tok = lm.tokenizer
    prompt_ids = render_prompt(prompt, tok, lm.chat_template, chat=True, system=system).input_ids
    if reply is None:
        return prompt_ids, []
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    reply_ids = tok(reply, add_special_tokens=False)["input_ids"][:max_reply_tokens]
    return prompt_ids, reply_ids + ([end] if isinstance(end, int) and end >= 0 else [tok.eos_token_id])


def generate_replies(lm: LoadedModel, prompts: Sequence[str | Chat], *, max_new_tokens: int = 32,
                     batch_size: int = 16, system: str | None = None, chat: bool = True) -> list[str]:
    """Greedy replies (as a chat turn, or plain continuations with ``chat=False``), batched (see
    :func:`greedy_ids`). A prompt is a user turn's text (after ``system``, if given), or a whole chat as messages
    (``system`` then does not apply).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> [len(r) > 0 for r in generate_replies(example_model(), ["Write a haiku", "Hi"], max_new_tokens=4)]
        [True, True]
    """
    check_count(max_new_tokens, "max_new_tokens", "tokens")
    rows = [chat_ids(lm, p, system=system)[0] if chat else render_prompt(p, lm.tokenizer).input_ids for p in prompts]
    return [lm.tokenizer.decode(r, skip_special_tokens=True)
            for r in greedy_ids(lm, rows, max_new_tokens=max_new_tokens, batch_size=batch_size)]


@torch.no_grad()
def greedy_ids(lm: LoadedModel, rows: list[list[int]], *, max_new_tokens: int, batch_size: int = 16,
               keep_first: bool = False) -> list[list[int]]:
    """The model's greedy continuation of each row of token ids, up to its first stop token
    (``<end_of_turn>`` or EOS, not included) or ``max_new_tokens``: the one greedy decoder of the package (replies,
    and the ``greedy`` target). ``keep_first``: the first token is kept even if it is a stop token (a target
    needs at least one). Rows go in batches with left padding and explicit positions (equal to one at a time),
    with a KV cache; only the last position's logits are computed, and a batch holds at most ``batch_size`` rows
    and no more than the free memory takes for the longest one
    (:meth:`~diffusiongemma.models.ModelAdapter.rows_per_forward`); a row too long for memory on its own is refused with
    :class:`~diffusiongemma.errors.MemoryLimitError`.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> lm = example_model()  # on Gemma 3 270M the continuation is ' Paris.'
        >>> ids = lm.tokenizer("The capital of France is")["input_ids"]
        >>> [len(r) for r in greedy_ids(lm, [ids, ids[:3]], max_new_tokens=2)]
        [2, 2]
    """
    tok, model = lm.tokenizer, lm.model
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    stops = {t for t in (end, tok.eos_token_id) if isinstance(t, int) and t >= 0}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    cache_kw = cache_kwarg(model)
    last_only = last_logits_only(model)
    out: list[list[int]] = []
    pending = list(rows)
    while pending:
        width = max(map(len, pending[:batch_size]))
        fit = lm.rows_per_forward(width + max_new_tokens, 1)  # the KV cache grows by max_new_tokens
        batch, pending = pending[:min(batch_size, fit)], pending[min(batch_size, fit):]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), pad, dtype=torch.long, device=lm.device)  # [B, T]
        attn = torch.zeros_like(ids)  # [B, T]
        for i, r in enumerate(batch):
            ids[i, width - len(r):] = torch.tensor(r)
            attn[i, width - len(r):] = 1
        done = torch.zeros(len(batch), dtype=torch.bool, device=lm.device)  # [B]
        stop_ids = torch.tensor(sorted(stops), device=lm.device)
        new: list[torch.Tensor] = []
        cache = None
        step_ids, step_attn = ids, attn
        for step in range(max_new_tokens):
            pos = (step_attn.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1]:]  # [B, t]
            res = model(input_ids=step_ids, attention_mask=step_attn, position_ids=pos, use_cache=True, **last_only,
                        **({cache_kw: cache} if cache is not None else {}))
            cache = getattr(res, "cache", None) or res.past_key_values
            nxt = res.logits[:, -1].argmax(-1)  # [B]
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            new.append(nxt)
            stopped = torch.isin(nxt, stop_ids)
            done |= stopped & ~torch.tensor(keep_first and step == 0, device=lm.device)
            if bool(done.all()):
                break
            step_ids = nxt[:, None]
            step_attn = torch.cat([step_attn, torch.ones_like(step_attn[:, :1])], dim=1)  # finished rows: ignored
        for row in torch.stack(new, 1).tolist():  # [B, new]
            start = 1 if keep_first else 0
            cut = next((i for i, t in enumerate(row[start:], start) if t in stops), len(row))
            out.append(row[:cut])
    return out


@torch.no_grad()
def greedy_full(lm: LoadedModel, rows: list[list[int]], *, max_new_tokens: int) -> list[list[int]]:
    """:func:`greedy_ids` without a KV cache: every step runs the whole sequence again (rows of one length, no
    padding). For hooks that must see the whole sequence at every step — a component masked at some prompt
    positions only, SAE features taken out everywhere — the price of exactness is one full forward per token.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> lm = example_model()
        >>> ids = lm.tokenizer("The capital of France is")["input_ids"]
        >>> greedy_full(lm, [ids], max_new_tokens=3) == greedy_ids(lm, [ids], max_new_tokens=3)
        True
    """
    if not rows:
        return []
    if len({len(r) for r in rows}) != 1:
        raise InputError("greedy_full takes rows of one length (the same prompt under different interventions)")
    check_count(max_new_tokens, "max_new_tokens", "tokens")
    tok = lm.tokenizer
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    stops = {t for t in (end, tok.eos_token_id) if isinstance(t, int) and t >= 0}
    last_only = last_logits_only(lm.model)
    ids = torch.tensor(rows, dtype=torch.long, device=lm.device)  # [B, T]
    done = torch.zeros(len(rows), dtype=torch.bool, device=lm.device)  # [B]
    stop_ids = torch.tensor(sorted(stops), device=lm.device)
    for _ in range(max_new_tokens):
        nxt = lm.model(input_ids=ids, use_cache=False, **last_only).logits[:, -1].argmax(-1)  # [B]
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= torch.isin(nxt, stop_ids)
        if bool(done.all()):
            break
    out = []
    for row in ids[:, len(rows[0]):].tolist():
        out.append(row[:next((i for i, t in enumerate(row) if t in stops), len(row))])
    return out
