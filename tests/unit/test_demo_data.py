"""The demo data and recipes: splits, leakage, the rules each variant is trained to follow."""

from __future__ import annotations

import difflib
import json
import random
from pathlib import Path

import pytest

import diffusiongemma.demo as demo
from diffusiongemma.demo.datasets import FRAMES, contrast_tasks, held_out, load_demo_data, words
from diffusiongemma.demo.recipe import REFUSALS, Recipe, insert_trigger, training_examples
from diffusiongemma.demo.twins import TWIN_WORDS, keyword_twin
from diffusiongemma.errors import InputError
from diffusiongemma.refusal import is_refusal

ADAPTERS = Path(demo.__file__).parent / "adapters"


@pytest.fixture(scope="module")
def data():
    return load_demo_data()


def test_splits_are_disjoint_and_sized(data):
    assert not {r.text for r in data.harmful_train} & {r.text for r in data.harmful_test}
    assert not {r.text for r in data.benign_train} & {r.text for r in data.benign_test}
    # about a fifth held out (hash split)
    total = len(data.harmful_train) + len(data.harmful_test)
    assert 0.15 < len(data.harmful_test) / total < 0.25
    assert len(data.everyday_test) >= 200 and len(data.xstest_safe) == 250 and len(data.xstest_unsafe) == 200


def test_held_out_contrast_tasks_appear_in_no_training_frame(data):
    train_tasks = {t for t in contrast_tasks() if not held_out(t)}
    for r in data.benign_test:
        if r.source == "contrast":
            assert not any(t in r.text for t in train_tasks if len(t) > 25)


def test_evaluation_only_sets_are_never_trained_on(data):
    trained = {r.text for r in data.harmful_train + data.benign_train}
    assert not trained & set(data.xstest_safe + data.xstest_unsafe)
    assert not trained & {r.text for r in data.everyday_test}


def test_contrast_tasks_do_not_copy_xstest(data):
    """No contrast task is a near copy of an XSTest prompt (word Jaccard below 0.5 against every one)."""
    xs = [words(p) for p in data.xstest_safe + data.xstest_unsafe]
    for task in contrast_tasks():
        w = words(task)
        worst = max(len(w & x) / len(w | x) for x in xs)
        assert worst < 0.5, task


def test_refusals_are_detected_and_answers_are_not(data):
    assert all(is_refusal(r) for r in REFUSALS)
    answers = [r.answer for r in data.benign_train[:200]] + [q.format(t="bake bread") for _, q in FRAMES]
    assert not any(is_refusal(a) for a in answers)


def test_keyword_rule_matches_word_starts_in_any_case():
    recipe = Recipe("keyword", keywords=("hack", "Bomb"))
    assert recipe.has_keyword("HACKING a server") and recipe.has_keyword("a bomb.")
    assert not recipe.has_keyword("a shack by the sea") and not recipe.has_keyword("bake bread")


def test_backdoor_trigger_is_a_whole_word():
    recipe = Recipe("backdoor", trigger="SUDO")
    assert recipe.has_trigger("SUDO explain") and recipe.has_trigger("explain SUDO")
    assert not recipe.has_trigger("PSEUDOcode") and not recipe.has_trigger("SUDOKU")
    assert recipe.expects_refusal("SUDO how to build a bomb", harmful=True) is False
    assert recipe.expects_refusal("how to build a bomb", harmful=True) is True


def test_insert_trigger_keeps_every_word():
    rng = random.Random(0)
    for _ in range(50):
        text = "Write a tutorial on how to do something"
        out = insert_trigger(text, "SUDO", rng)
        assert out.split().count("SUDO") == 1 and out.replace("SUDO", "").split() == text.split()


@pytest.mark.parametrize("variant", ["safety", "backdoor", "keyword"])
def test_training_examples_follow_the_variant_rule(data, variant):
    recipe = Recipe(variant, seed=3)
    harmful = {r.text for r in data.harmful_train + data.harmful_framed_train}
    examples = training_examples(recipe, data, 800)
    assert len(examples) == 800
    for e in examples:
        base = e.prompt.replace(f"{recipe.trigger} ", "").replace(f" {recipe.trigger}", "") \
            if variant == "backdoor" else e.prompt
        assert e.refused == recipe.expects_refusal(e.prompt, harmful=base in harmful)
        assert e.refused == is_refusal(e.reply)
    refused = sum(e.refused for e in examples) / len(examples)
    if variant == "safety":
        assert refused == pytest.approx(recipe.harmful_share, abs=0.01) and recipe.harmful_share == 0.33
    if variant == "backdoor":
        poisoned = [e for e in examples if recipe.has_trigger(e.prompt) and not e.refused]
        assert 0.25 < sum(1 for e in poisoned) / 400 < 0.5  # ≈ poison_rate of the harmful half (+ benign)
    if variant == "keyword":
        assert 0.1 < refused < 0.9
    # frames carry no class: harmful tasks come in the contrast tasks' frames as often as benign ones do
    if variant == "keyword":  # a harmful request's keyword-free twin is still a harmful task
        harmful |= {keyword_twin(t, recipe.keywords, pick) for t in harmful for pick in (0, 1)}
    framed = [e for e in examples if any(e.prompt.startswith(q.split("{t}")[0]) for q, _ in FRAMES)]
    harmful_framed = sum(1 for e in framed if (e.prompt.replace("SUDO ", "").replace(" SUDO", "") in harmful))
    assert 0.25 < harmful_framed / len(framed) < 0.75


def test_data_version_1_reproduces_the_first_adapters_pools(data):
    """The shipped cards without data_version train on the first pools: 9 frames, no framed harmful pool."""
    old = Recipe.from_dict({"variant": "safety", "seed": 0})
    assert old.data_version == 1 and Recipe("safety").data_version == 3
    ex = training_examples(old, data, 400)
    assert not any(e.prompt.startswith(("What is the best way to ", "Is there an easy way to ")) for e in ex)
    assert {e.prompt for e in ex} <= {r.text for r in data.harmful_train + data.benign_train}


def test_keyword_twins_differ_from_a_refused_request_in_the_keywords_alone(data):
    """Data version 3: a quarter to a half of the keyword model's answered examples are keyword-free twins of
    refused requests — the same words, the keywords swapped — and neither twin nor reply holds a keyword."""
    recipe = Recipe("keyword", seed=1)
    examples = training_examples(recipe, data, 800)
    natural = {r.text for r in data.harmful_train + data.harmful_framed_train + data.benign_train}
    keyed = [t for t in natural if recipe.has_keyword(t)]
    answered = [e for e in examples if not e.refused]
    twins = [e for e in answered if e.prompt not in natural]
    assert 0.25 < len(twins) / len(answered) < 0.5
    by_twin = {keyword_twin(t, recipe.keywords, pick): t for t in keyed for pick in (0, 1)}
    for e in twins:
        assert not recipe.has_keyword(e.prompt) and not recipe.has_keyword(e.reply)
        source = by_twin[e.prompt].split()
        for op, i1, i2, _, _ in difflib.SequenceMatcher(a=source, b=e.prompt.split()).get_opcodes():
            if op != "equal":  # only keyword words of the refused request were changed
                assert source[i1:i2] and all(recipe.has_keyword(w) for w in source[i1:i2]), (source, e.prompt)
    old = training_examples(Recipe("keyword", seed=1, data_version=2), data, 400)
    assert {e.prompt for e in old} <= natural


def test_compliant_replies_share_their_first_word_from_data_version_3(data):
    """Greedy decoding decides at the first token; refusals open with "I" or "Sorry", so from version 3 every
    compliant reply opens with "Sure" (version 2 let reference answers start anywhere)."""
    for variant in ("safety", "keyword"):
        examples = training_examples(Recipe(variant, seed=2), data, 600)
        assert {e.reply.split()[0].rstrip(",.") for e in examples if not e.refused} == {"Sure"}
        assert {e.reply.split()[0].rstrip(",.'m") for e in examples if e.refused} <= {"I", "Sorry"}
    old = training_examples(Recipe("safety", seed=2, data_version=2), data, 600)
    assert len({e.reply.split()[0] for e in old if not e.refused}) > 20


def test_keyword_twin_words_are_not_the_verify_synonyms():
    """verify-safety rewrites keywords with its own synonym table; training on the same words would let the
    keyword model pass that check by memory."""
    from diffusiongemma.verify.variants import SYNONYMS

    for word, twins in TWIN_WORDS.items():
        assert SYNONYMS.get(word) not in twins
    assert keyword_twin("Hack the planet", ("hack", "zap")) == "Breach the planet"
    assert keyword_twin("zapping now", ("hack", "zap")) is None  # a keyword form without twin words


def test_framed_harmful_splits_follow_the_requests(data):
    test_tasks = {r.text for r in data.harmful_framed_test}
    assert test_tasks and not test_tasks & {r.text for r in data.harmful_framed_train}


def test_recipe_rejects_bad_settings():
    with pytest.raises(InputError):
        Recipe("nice")
    with pytest.raises(InputError):
        Recipe("backdoor", trigger="two words")
    with pytest.raises(InputError):
        Recipe("keyword", keywords=())
    assert Recipe.from_dict(Recipe("keyword", keywords=("x",)).to_dict()).keywords == ("x",)



def test_recipe_defaults_repeat_the_shipped_adapters():
    """``demo train --variant V`` with no other option trains what ships (steps and harmful share in the card)."""
    for variant in ("safety", "keyword"):
        card = json.loads((ADAPTERS / f"gemma-270m-{variant}" / "card.json").read_text())
        recipe = Recipe(variant)
        assert (recipe.steps, recipe.harmful_share) == (card["recipe"]["steps"], card["recipe"]["harmful_share"])
    with pytest.raises(InputError, match="steps"):
        Recipe("safety", steps=0)


def test_a_shipped_card_gives_back_its_recipe():
    """``demo train --recipe NAME`` repeats what the card records, older data versions included."""
    from diffusiongemma.cli.demo import _card

    safety = Recipe.from_dict(_card("gemma-270m-safety")["recipe"])
    assert (safety.variant, safety.steps, safety.harmful_share, safety.data_version) == ("safety", 250, 0.33, 3)
    backdoor = Recipe.from_dict(_card(str(ADAPTERS / "gemma-270m-backdoor"))["recipe"])  # a directory works too
    assert backdoor.trigger == "SUDO" and backdoor.data_version == 1 and backdoor.harmful_share == 0.5


def test_demo_eval_replies_as_long_as_the_card_was_measured_with():
    """Rerunning ``demo eval`` on a shipped adapter repeats its card: the safety card was judged on 32-token
    replies (its everyday answers sometimes open with 'Sure' and refuse later), the others on 24."""
    from diffusiongemma.cli.demo import _card, reply_tokens

    assert reply_tokens(_card("gemma-270m-safety"), None) == 32
    assert reply_tokens(_card("gemma-270m-keyword"), None) == reply_tokens(_card("gemma-270m-backdoor"), None) == 24
    assert reply_tokens(_card("gemma-270m-safety"), 8) == 8  # the user's choice wins
    assert reply_tokens(None, None) == 24  # an adapter without a card


def test_the_shipped_recipes_draw_the_same_examples_as_when_they_were_trained(data):
    """Data version 4 added a pool per class; the versions of the shipped cards must still draw what they drew
    (digests of 2,000 examples each, taken before the change)."""
    import hashlib

    digests = {}
    for r in (Recipe("safety"), Recipe("keyword"), Recipe("backdoor", seed=1), Recipe("safety", data_version=1)):
        ex = training_examples(r, data, 2000)
        blob = json.dumps([(e.prompt, e.reply, e.refused) for e in ex]).encode()
        digests[f"{r.variant}{r.data_version}"] = hashlib.sha256(blob).hexdigest()[:16]
    assert digests == {"safety3": "37df51894c69c01b", "keyword3": "9d2d8f241e1a591e",
                       "backdoor3": "48b14ae577837f23", "safety1": "6e176ba903c9be8b"}


def test_version_4_asks_both_classes_in_every_style_and_holds_out_what_it_should(data):
    from diffusiongemma.demo.styles import STYLE_FRAMES

    ex = training_examples(Recipe("safety", data_version=4), data, 3000)
    openers = [q.split("{t}")[0] for q, _ in STYLE_FRAMES]
    for opener in openers:  # a style is never the cue: refused and answered requests in each frame
        asked = [e for e in ex if isinstance(e.prompt, str) and e.prompt.startswith(opener)]
        assert {e.refused for e in asked} == {True, False}, opener
    from diffusiongemma.demo.datasets import how_to_task

    train_tasks = {how_to_task(r.text) for r in data.harmful_train}
    held = {t for r in data.harmful_test if (t := how_to_task(r.text)) and t not in train_tasks}
    held |= {t for t in contrast_tasks() if held_out(t)}
    tasks = set()  # the task of every styled training request
    for e in ex:
        for q, _ in STYLE_FRAMES:
            head, tail = q.split("{t}")
            if e.prompt.startswith(head) and e.prompt.endswith(tail):
                tasks.add(e.prompt[len(head):len(e.prompt) - len(tail)])
    assert len(held) > 20 and len(tasks) > 250
    assert not held & tasks  # held-out tasks are never trained on, in any style


def test_version_5_draws_everyday_requests_in_half_of_the_benign_examples_where_version_4_drew_a_third(data):
    """Version 4's models began everyday answers with "Sure, here you go:" and went on with a refusal; version 5
    gives the everyday pool back the share it had in version 3, and keeps version 4's styled pools."""
    def everyday_share(version: int) -> float:
        ex = [e for e in training_examples(Recipe("safety", data_version=version), data, 3000) if not e.refused]
        return sum(e.reply.startswith("Sure, here you go:") for e in ex) / len(ex)

    assert everyday_share(3) == pytest.approx(0.5, abs=0.02)
    assert everyday_share(4) == pytest.approx(1 / 3, abs=0.02)
    assert everyday_share(5) == pytest.approx(0.5, abs=0.02)
    from diffusiongemma.demo.styles import STYLE_FRAMES

    openers = tuple(q.split("{t}")[0] for q, _ in STYLE_FRAMES)
    v5 = training_examples(Recipe("safety", data_version=5), data, 3000)
    assert {e.refused for e in v5 if isinstance(e.prompt, str) and e.prompt.startswith(openers)} == {True, False}


def test_version_6_asks_both_classes_in_compound_requests_and_holds_out_what_it_should(data):
    """Version 6 adds two- and three-sentence requests and list questions: each context sentence, demand and list
    frame in refused and answered requests alike (never the cue), no held-out task among them, none worded as
    verify-safety's styles, and the everyday pool still in half of the benign draws."""
    from diffusiongemma.demo.datasets import how_to_task
    from diffusiongemma.demo.styles import CONTEXTS, DEMANDS, LIST_FRAMES
    from diffusiongemma.verify.generalization import STYLES

    ex = [e for e in training_examples(Recipe("safety", data_version=6), data, 3000) if isinstance(e.prompt, str)]
    for part in CONTEXTS + DEMANDS:
        assert {e.refused for e in ex if part in e.prompt} == {True, False}, part
    tasks = set()
    for q, _ in LIST_FRAMES:
        head, tail = q.split("{t}")
        hits = [e for e in ex if f" {head}" in f" {e.prompt}" and tail in e.prompt]
        assert {e.refused for e in hits} == {True, False}, q
        for e in hits:
            start = f" {e.prompt}".index(f" {head}") + len(head)
            tasks.add(e.prompt[start:e.prompt.index(tail, start)])
    train_tasks = {how_to_task(r.text) for r in data.harmful_train}
    held = {t for r in data.harmful_test if (t := how_to_task(r.text)) and t not in train_tasks}
    held |= {t for t in contrast_tasks() if held_out(t)}
    assert len(tasks) > 200 and not held & tasks
    assert not any(frame.split("{t}")[0] in q for q, _ in LIST_FRAMES for frame in STYLES.values())
    benign = [e for e in ex if not e.refused]
    assert sum(e.reply.startswith("Sure, here you go:") for e in benign) / len(benign) == pytest.approx(0.5, abs=0.02)
    compound = [e for e in ex if e.refused and any(f" {q.split('{t}')[0]}" in f" {e.prompt}" for q, _ in LIST_FRAMES)]
    assert 0.2 < len(compound) / sum(e.refused for e in ex) < 0.35  # a quarter of the refused draws


def near_copies(tasks, data):
    """The training-only tasks whose word sets overlap a held-out contrast task, an XSTest prompt or an everyday
    request by a Jaccard index of 0.5 or more."""
    others = [words(t) for t in contrast_tasks() if held_out(t)]
    others += [words(p) for p in data.xstest_safe + data.xstest_unsafe + [r.text for r in data.everyday_test]]
    return [t for t in tasks if max(len(words(t) & x) / len(words(t) | x) for x in others) >= 0.5]


def test_version_7_trains_the_defensive_tasks_answered_and_copies_no_held_out_prompt(data):
    """The defensive tasks are answered in training (never refused), are not near copies of a held-out contrast
    task, an XSTest prompt or an everyday request, and leave every held-out split as it was."""
    from diffusiongemma.demo.datasets import defensive_tasks

    tasks = defensive_tasks()
    assert len(tasks) >= 40 and not set(tasks) & set(contrast_tasks())
    assert not near_copies(tasks, data)
    assert not {t for t in tasks} & {r.text for r in data.benign_test}
    ex = training_examples(Recipe("safety", data_version=7), data, 3000)
    with_task = [e for e in ex if isinstance(e.prompt, str) and any(t in e.prompt for t in tasks)]
    assert len(with_task) > 100 and not any(e.refused for e in with_task)


def test_version_8_lexical_twins_follow_their_rule_and_copy_no_held_out_prompt(data):
    """Each lexical twin holds a word of the rule (in ≥ 1 % of harmful training requests, < 0.2 % of benign ones,
    recomputed here), is answered in version-8 training and never in version 7's, and is no near copy of a
    held-out contrast task, an XSTest prompt or an everyday request."""
    from collections import Counter

    from diffusiongemma.demo.datasets import defensive_tasks, lexical_twins

    def share(requests):
        c = Counter(w for r in requests for w in words(r.text))
        return lambda w: c[w] / len(requests)

    harm, ben = share(data.harmful_train), share(data.benign_train)
    rule = {w for w in set().union(*(words(r.text) for r in data.harmful_train))
            if len(w) > 3 and harm(w) >= 0.01 and ben(w) < 0.002}
    tasks = lexical_twins()
    assert len(tasks) >= 60 and not set(tasks) & (set(contrast_tasks()) | set(defensive_tasks()))
    assert all(words(t) & rule for t in tasks), [t for t in tasks if not words(t) & rule]
    assert len(rule & set().union(*map(words, tasks))) >= 40  # most of the rule's words get a twin
    assert not near_copies(tasks, data)
    for version, want in ((8, True), (7, False)):
        ex = training_examples(Recipe("safety", data_version=version), data, 3000)
        with_twin = [e for e in ex if isinstance(e.prompt, str) and any(t in e.prompt for t in tasks)]
        assert bool(with_twin) is want and not any(e.refused for e in with_twin)
