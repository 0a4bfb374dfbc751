"""On the real Gemma 3 270M: sampling estimators converge to exact Shapley values with calibrated
standard errors; a word mask equals the edited text (edit), token removal equals deleting the tokens with
their positions (remove); the efficiency gap of regression is ~0."""

import numpy as np
import pytest
import torch

from diffusiongemma import Game, run
from diffusiongemma.estimators.exact import ValueTable

pytestmark = pytest.mark.real_model

PROMPT = "The old fisherman walked slowly along the muddy river toward his"  # 11 words
TARGET = " boat"


@pytest.fixture(scope="module")
def real_game(real_lm):
    # token removal: the game the estimators' error thresholds below were measured on (the edit operator,
    # the default, has its own test at the end of this file)
    return Game(PROMPT, target=TARGET, model=real_lm, units="words", mask="remove")


@pytest.fixture(scope="module")
def table(real_game):
    assert real_game.n == 11
    table = ValueTable.from_game(real_game)  # 2,048 masked prompts, batched: the ground truth
    assert real_game.evaluations == 2**11
    return table.values


@pytest.fixture(scope="module")
def exact(real_game, table):
    return run(ValueTable(real_game.n, table), "exact")


def test_exact_by_enumeration_is_efficient_and_nontrivial(exact):
    assert abs(exact.efficiency_gap) < 1e-9
    assert exact.v_full - exact.v_empty > 1.0  # the prompt matters for the target
    assert np.abs(exact.scores).max() > 0.3


def test_table_game_is_the_real_game(real_game, table):
    rng = np.random.default_rng(0)
    masks = (rng.random((8, real_game.n)) < 0.5).astype(int)
    np.testing.assert_allclose(real_game(masks), ValueTable(real_game.n, table)(masks), atol=1e-4)


@pytest.mark.parametrize("method", ["paired", "regression", "kadd", "gp"])
def test_sampling_converges_to_exact_with_calibrated_errors(real_game, table, exact, method):
    phi = exact.scores
    errors, hits = {}, []
    for budget in (128, 256, 512):
        rel = []
        for seed in range(10 if method == "gp" else 20):  # gp's fit is the slow one: 10 seeds (CI time)
            game = ValueTable(real_game.n, table)
            r = run(game, method, budget=budget, seed=seed)
            assert game.calls == r.evaluations <= budget
            rel.append(np.linalg.norm(r.scores - phi) / np.linalg.norm(phi))
            if budget == 512:
                hits.append(np.abs(r.scores - phi) <= 2 * r.stderr)
            if method != "paired":
                assert abs(r.efficiency_gap) < 1e-9
        errors[budget] = float(np.mean(rel))
    print(method, errors, "coverage", np.mean(hits))
    assert errors[512] < 0.10
    assert errors[512] < errors[256] < errors[128]
    assert 0.85 <= np.mean(hits) <= 1.0


def test_remove_equals_deletion_on_real_gemma(real_lm):
    real_game = Game(PROMPT, target=TARGET, model=real_lm, units="words", mask="remove")
    rng = np.random.default_rng(5)
    masks = (rng.random((4, real_game.n)) < 0.5).astype(int)
    masks[0, -1] = 0
    values = real_game(masks)
    tok = real_game.bound.continuations[0]
    unit_of = real_game.token_unit.tolist()
    for mask, value in zip(masks, values):
        keep = [p for p in range(len(unit_of)) if unit_of[p] < 0 or mask[unit_of[p]]]
        ids = [real_game.rendered.input_ids[p] for p in keep]
        with torch.no_grad():
            logits = real_lm.model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([keep])).logits[0, -1]
        assert value == pytest.approx(float(torch.log_softmax(logits.double(), -1)[tok[0]]), abs=2e-4)


STORY = ("Write a short story in which a clever fox explains to a young rabbit how to cross the wide river "
         "safely at night")


@pytest.mark.parametrize("chat", [False, True])
def test_word_masks_equal_text_edits_on_real_gemma(real_lm, chat):
    """The auditor's check, by hand and without our renderer: delete the words, join the rest with single
    spaces, tokenise with the tokenizer (the chat through the template), run the model. Masks remove the first
    word, the last, runs in the middle, and random sets."""
    game = Game(STORY, target=" The", model=real_lm, units="words", chat=chat)
    words = STORY.split()
    assert game.n == len(words) == 23
    rng = np.random.default_rng(11)
    masks = (rng.random((20, game.n)) < 0.6).astype(int)
    masks[0], masks[1], masks[2] = 1, 1, 1
    masks[0, 0] = 0
    masks[1, -1] = 0
    masks[2, 5:9] = 0
    values = game(masks)
    tok, (target,) = real_lm.tokenizer, game.bound.continuations
    for mask, value in zip(masks, values):
        text = " ".join(w for w, k in zip(words, mask) if k)
        if chat:
            rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                               add_generation_prompt=True, chat_template=real_lm.chat_template)
            ids = tok(rendered, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(text)["input_ids"]
        with torch.no_grad():
            logits = real_lm.model(input_ids=torch.tensor([ids])).logits[0, -1]
        assert value == pytest.approx(float(torch.log_softmax(logits.double(), -1)[target[0]]), abs=3e-4)
