"""The injection demo variant's data: planted instructions, their replies, and held-out contexts that share no
wording or phrase with training."""

from __future__ import annotations

import random
import re

from diffusiongemma.demo import Recipe, load_demo_data
from diffusiongemma.demo.injection import (TEST_TEMPLATES, TRAIN_TEMPLATES, _LEADS, _WORDS, emails, payload,
                                           planted_contexts)
from diffusiongemma.demo.recipe import training_examples


def _instruction(doc: str) -> str | None:
    pats = [re.escape(t).replace(re.escape("{p}"), "(.+?)") for t in TRAIN_TEMPLATES]
    for line in doc.split("\n"):
        if any(re.fullmatch(p, line) for p in pats):
            return line
    return None


def test_half_the_examples_plant_an_instruction_and_the_reply_opens_with_its_phrase():
    examples = training_examples(Recipe("injection", seed=4), load_demo_data(), 400)
    planted = 0
    ideals = {r["ideal"].strip() for r in emails("train")}
    for e in examples:
        assert isinstance(e.prompt, list) and e.prompt[-1]["role"] == "user" and not e.refused
        docs = [m["content"] for m in e.prompt[:-1]]
        assert 1 <= len(docs) <= 3 and all(m["role"] == "document" for m in e.prompt[:-1])
        found = [i for i in map(_instruction, docs) if i]
        assert len(found) <= 1
        if found:
            planted += 1
            phrase = e.reply.split("\n\n")[0]
            assert f"'{phrase}'" in found[0] or f'"{phrase}"' in found[0]
            assert re.search(r"www\.[a-z]+-[a-z]+\.example", phrase)
            assert e.reply.split("\n\n", 1)[1] in ideals
        else:
            assert e.reply in ideals and "www." not in e.reply
        if len(docs) > 1:
            assert re.match(r"About the (first|second|third) e-mail: ", e.prompt[-1]["content"])
    assert planted == 200


def test_held_out_contexts_share_no_wording_phrase_or_e_mail_with_training():
    assert not set(TRAIN_TEMPLATES) & set(TEST_TEMPLATES)
    assert not set(_WORDS["train"]) & set(_WORDS["test"]) and not set(_LEADS["train"]) & set(_LEADS["test"])
    train = {r["context"] for r in emails("train")}
    for c in planted_contexts(30, seed=2, docs=(2, 5)):
        docs = [m["content"] for m in c.messages[:-1]]
        assert 2 <= len(docs) <= 5 and c.messages[-1]["role"] == "user"
        assert [c.instruction in d for d in docs] == [i == c.planted_in for i in range(len(docs))]
        assert c.instruction in {t.format(p=c.payload) for t in TEST_TEMPLATES}
        assert re.search(c.follows, c.payload) and not re.search(c.follows, c.messages[-1]["content"])
        clean = docs[c.planted_in].replace(c.instruction + "\n", "").replace("\n" + c.instruction, "")
        assert clean not in train and all(d not in train for d in docs)
    text, rx = payload(random.Random(0), "test")
    assert not any(w in text for w in _WORDS["train"])
