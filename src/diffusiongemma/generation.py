"""Chat-formatted token ids and greedy generation, batched (used by the demo recipes, refusal forensics and trace).

Example:
    >>> from diffusiongemma.models import load_model
    >>> lm = load_model()  # doctest: +SKIP
    >>> generate_replies(lm, ["Write a haiku about snow"], max_new_tokens=8)  # doctest: +SKIP
    ['Snow falls softly...']
"""

from __future__ import annotations

import torch

from .batching import auto_batch_size
from .errors import InputError
from .validation import check_count
from .models import LoadedModel
from .models.forward import cache_kwarg, last_logits_only
from .prompts import Chat, render_prompt

__all__ = ["chat_ids", "generate_replies"]


def chat_ids(lm: LoadedModel, prompt: str | Chat, reply: str | None = None, max_reply_tokens: int = 64, *,
             system: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids of the user turn up to the model's turn marker, and of the reply plus ``<end_of_turn>``.

    Example:
        >>> lm = load_model()  # doctest: +SKIP
        >>> p, r = chat_ids(lm, "Hi", "Hello!")  # doctest: +SKIP
        >>> lm.tokenizer.decode(r)  # doctest: +SKIP
        'Hello!<end_of_turn>'
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


@torch.no_grad()
def generate_replies(lm: LoadedModel, prompts: list[str | Chat], *, max_new_tokens: int = 32,
                     batch_size: int = 16, system: str | None = None, chat: bool = True) -> list[str]:
    """Greedy replies (as a chat turn, or plain continuations with ``chat=False``), batched with left padding and
    explicit positions (equal to one at a time). A prompt is a user turn's text (after ``system``, if given),
    or a whole chat as messages (``system`` then does not apply). Only the last position's logits are computed,
    and a batch holds at most ``batch_size`` prompts and no more than the free memory takes for the longest one
    (:func:`~diffusiongemma.batching.auto_batch_size`); a prompt too long for memory on its own is refused with
    :class:`~diffusiongemma.errors.MemoryLimitError`.

    Example:
        >>> generate_replies(lm, ["Write a haiku about snow"])  # doctest: +SKIP
        ['Snow falls on the hill...']
    """
    check_count(max_new_tokens, "max_new_tokens", "tokens")
    tok, model = lm.tokenizer, lm.model
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    stops = {t for t in (end, tok.eos_token_id) if isinstance(t, int) and t >= 0}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    cache_kw = cache_kwarg(model)
    last_only = last_logits_only(model)
    out: list[str] = []
    pending = [chat_ids(lm, p, system=system)[0] if chat else render_prompt(p, tok).input_ids for p in prompts]
    while pending:
        width = max(map(len, pending[:batch_size]))
        fit = auto_batch_size(lm, width + max_new_tokens, 1)  # the KV cache grows by max_new_tokens
        rows, pending = pending[:min(batch_size, fit)], pending[min(batch_size, fit):]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad, dtype=torch.long, device=lm.device)  # [B, T]
        attn = torch.zeros_like(ids)  # [B, T]
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
            attn[i, width - len(r):] = 1
        done = torch.zeros(len(rows), dtype=torch.bool, device=lm.device)  # [B]
        new: list[torch.Tensor] = []
        cache = None
        step_ids, step_attn = ids, attn
        for _ in range(max_new_tokens):
            pos = (step_attn.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1]:]  # [B, t]
            res = model(input_ids=step_ids, attention_mask=step_attn, position_ids=pos, use_cache=True, **last_only,
                        **({cache_kw: cache} if cache is not None else {}))
            cache = getattr(res, "cache", None) or res.past_key_values
            nxt = res.logits[:, -1].argmax(-1)  # [B]
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            new.append(nxt)
            done |= torch.isin(nxt, torch.tensor(sorted(stops), device=lm.device))
            if bool(done.all()):
                break
            step_ids = nxt[:, None]
            step_attn = torch.cat([step_attn, torch.ones_like(step_attn[:, :1])], dim=1)  # finished rows: ignored
        gen = torch.stack(new, 1).tolist()  # [B, new]
        for row in gen:
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            out.append(tok.decode(row[:cut], skip_special_tokens=True))
    return out
