"""Do the flip sets we call confirmed survive the auditor's check? (issue 27)

On held-out harmful and benign requests (``gemma-270m-safety``, word units, explain-refusal's default budget),
``explain_refusal`` runs twice: with token removal (``mask="remove"``, the old default) and with text edits
(``mask="edit"``, the new one). For each map, its minimal flip set is then checked the way an auditor would,
through the public API and nothing else: the words deleted from the request (kept words joined by single
spaces), ``explain_refusal`` asked again on that text (a fresh render, a fresh reply, the detector's verdict and
the refusal score's sign). Reported per operator:

* of the sets the tool called confirmed (old: the score flipped under the mask; new: ``state == "confirmed"``),
  the share whose decision really flips on the redo (both the reply's verdict and the score's sign);
* the share of the other states;
* how often the first word is the map's top unit, against 1/n by chance.
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .common import environment, write_result

BUDGET = 128  # explain-refusal's default


def _redo(lm: Any, prompt: str, units: list[int], words: list[str]) -> dict[str, Any]:
    """The auditor's check by hand: delete the words, ask again, read the reply and the score."""
    from diffusiongemma import explain_refusal

    edited = " ".join(w for i, w in enumerate(words) if i not in units)
    if not edited.strip():
        return {"edited": edited, "refused": None, "score": None}
    a = explain_refusal(edited, model=lm, budget=8, triggers=False, faithfulness=False, components=None,
                        max_new_tokens=24)
    return {"edited": edited, "refused": bool(a.decision["refused"]), "score": float(a.v_full),
            "reply": a.decision["reply"][:80]}


def main(quick: bool, out: Path, command: str, seed: int = 0, prompts: int | None = None) -> Path:
    from diffusiongemma import explain_refusal, load_model
    from diffusiongemma.demo.datasets import load_demo_data

    warnings.filterwarnings("ignore")
    lm = load_model("gemma-270m-safety", device="cpu")
    data = load_demo_data()
    count = prompts or (4 if quick else 30)
    harmful = [r.text for r in data.harmful_test]
    benign = [r.text for r in data.benign_test]
    rng = random.Random(seed)
    rng.shuffle(harmful)
    rng.shuffle(benign)
    pool = harmful[: count - count // 3] + benign[: count // 3]
    rows: list[dict[str, Any]] = []
    for k, prompt in enumerate(pool):
        words = prompt.split()
        row: dict[str, Any] = {"prompt": prompt, "words": len(words), "harmful": k < count - count // 3}
        for mask in ("remove", "edit"):
            t0 = time.perf_counter()
            a = explain_refusal(prompt, model=lm, budget=BUDGET, seed=seed, components=None, faithfulness=False,
                                max_new_tokens=24, mask=mask)
            assert [u.text for u in a.units] == words, "word units are the whitespace-separated words"
            nec = a.triggers["necessary"]
            refused = bool(a.decision["refused"])
            redo = _redo(lm, prompt, nec.units, words) if nec.masked and nec.units else None
            survives = None if redo is None or redo["refused"] is None else (
                redo["refused"] != refused and (redo["score"] > 0) != (a.v_full > 0))
            top = int(np.argmax(np.abs(a.scores)))
            row[mask] = {"refused": refused, "score": a.v_full, "set": [words[i] for i in nec.units],
                         "masked": nec.masked, "state": nec.state, "confirmed": nec.confirmed,
                         "called_confirmed": nec.masked if mask == "remove" else nec.confirmed,
                         "redo": redo, "survives": survives, "top_is_first_word": top == 0,
                         "resolved": int(a.significance.resolved.sum()), "seconds": time.perf_counter() - t0}
            print(f"[confirmations] {k + 1}/{len(pool)} {mask}: {row[mask]['set']} state={nec.state} "
                  f"survives={survives} ({row[mask]['seconds']:.0f} s)", flush=True)
        rows.append(row)
    payload = {"environment": environment(), "seed": seed, "quick": quick, "budget": BUDGET, "model": lm.name,
               "adapter_sha256": lm.provenance.get("adapter_sha256"), "rows": rows}
    return write_result("confirmations", command, payload, _table(rows), out)


def _rate(xs: list[bool]) -> str:
    return f"{sum(xs)}/{len(xs)} ({100 * sum(xs) / len(xs):.0f} %)" if xs else "–"


def _table(rows: list[dict[str, Any]]) -> str:
    chance = float(np.mean([1 / r["words"] for r in rows]))
    lines = [f"gemma-270m-safety, {len(rows)} held-out requests ({sum(r['harmful'] for r in rows)} harmful, "
             f"{sum(not r['harmful'] for r in rows)} benign), word units, budget {BUDGET}, replies of 24 tokens. "
             "*Called confirmed*: old (`remove`) = the score flipped under the mask; new (`edit`) = state "
             "`confirmed` (edited text re-sent and regenerated reply judged again). *Survives*: redone by hand "
             "through the public API — the words deleted, `explain_refusal` asked again — the reply's verdict and "
             "the score's sign both flip.\n",
             "| mask | flip sets called confirmed | of those, survive the redo | states (confirmed / score only / "
             "masked only / not found) | top unit = first word (chance " + f"{100 * chance:.0f} %) |",
             "|---|---|---|---|---|"]
    for mask in ("remove", "edit"):
        called = [r[mask] for r in rows if r[mask]["called_confirmed"]]
        survive = [bool(c["survives"]) for c in called if c["survives"] is not None]
        states = [r[mask]["state"] for r in rows]
        counts = " / ".join(str(states.count(s)) for s in ("confirmed", "score only", "masked only", "not found"))
        lines.append(f"| `{mask}` | {len(called)} of {len(rows)} | {_rate(survive)} | {counts} | "
                     f"{_rate([r[mask]['top_is_first_word'] for r in rows])} |")
    lines += ["", "| request | edit: flip set | state | redo: reply flips and score flips | remove: flip set | state | redo |",
              "|---|---|---|---|---|---|---|"]
    def cell(text: str, limit: int = 120) -> str:
        flat = " ".join(text.split()).replace("|", "/")
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"

    for r in rows:
        e, m = r["edit"], r["remove"]
        lines.append(f"| {cell(r['prompt'])} | {cell(', '.join(e['set'])) or '–'} | {e['state']} | "
                     f"{e['survives']} | {cell(', '.join(m['set'])) or '–'} | {m['state']} | {m['survives']} |")
    return "\n".join(lines)
