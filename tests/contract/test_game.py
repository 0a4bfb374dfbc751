"""The game on a tiny seeded random Gemma 3: remove = deletion, batching, prefix cache, replace, hooks."""

import numpy as np
import pytest
import torch

from diffusiongemma import Attribution, Game, explain
from diffusiongemma.models.hooks import hook_count

PROMPT = "Tell me how the old river bank flooded last spring, and why"


def logits_of(lm, ids, positions=None):
    with torch.no_grad():
        kw = {} if positions is None else {"position_ids": torch.tensor([positions])}
        return lm.model(input_ids=torch.tensor([ids]), **kw).logits[0, -1]


def test_remove_equals_deletion_with_original_positions(tiny_lm):
    game = Game(PROMPT, target=" because", model=tiny_lm, units="words", mask="remove")
    rng = np.random.default_rng(0)
    masks = (rng.random((6, game.n)) < 0.5).astype(int)
    masks[:3, -1] = 0  # the last prompt word removed: deletion predicts from the last kept token
    values = game(masks)
    tok = game.bound.continuations[0]
    for mask, value in zip(masks, values):
        unit_of = game.token_unit.tolist()
        keep = [p for p in range(len(game.rendered)) if unit_of[p] < 0 or mask[unit_of[p]]]
        ids = [game.rendered.input_ids[p] for p in keep] + tok[:-1]
        pos = keep + list(range(len(game.rendered), len(game.rendered) + len(tok) - 1))
        with torch.no_grad():
            logits = tiny_lm.model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([pos])).logits[0]
        logp = torch.log_softmax(logits[-len(tok):].double(), -1)
        expected = sum(float(logp[j, t]) for j, t in enumerate(tok))
        assert value == pytest.approx(expected, abs=1e-4)


def test_batched_equals_one_at_a_time(tiny_lm):
    game = Game(PROMPT, target=" because it rained", model=tiny_lm, units="tokens", batch_size=5)
    masks = (np.random.default_rng(1).random((13, game.n)) < 0.6).astype(int)
    batched = game(masks)
    single = np.concatenate([game(m[None]) for m in masks])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert game.evaluations == 26


def test_prefix_cache_equals_full_forward(tiny_lm):
    chat = [{"role": "system", "content": "You are a careful assistant for river engineers."},
            {"role": "user", "content": "How did the bank flood?"}]
    game = Game(chat, target="It", model=tiny_lm, units="roles")
    assert game.evaluator.prefix_len >= 2  # BOS + <start_of_turn> + "user" + newline come before any unit
    masks = np.array([[1, 1], [0, 1], [1, 0], [0, 0]])
    cached = game(masks)
    game.evaluator.prefix_len = 0  # same evaluator, no cache
    game.evaluator._prefix_cache = None
    np.testing.assert_allclose(cached, game(masks), atol=1e-5)


def test_replace_puts_the_baseline_token(tiny_lm):
    game = Game("alpha beta gamma", target=" delta", model=tiny_lm, units="words", mask="replace")
    pad = tiny_lm.tokenizer.pad_token_id
    ids = list(game.rendered.input_ids)
    for p in game.units[1].positions:
        ids[p] = pad
    tok = game.bound.continuations[0]
    expected = torch.log_softmax(logits_of(tiny_lm, ids + tok[:-1]).double(), -1)[tok[-1]]
    assert game(np.array([[1, 0, 1]]))[0] == pytest.approx(float(expected), abs=1e-4)


def test_model_unchanged_and_no_hooks_after_success_and_failure(tiny_lm):
    ids = tiny_lm.tokenizer(PROMPT)["input_ids"]
    before = logits_of(tiny_lm, ids)
    hooks_before = hook_count(tiny_lm.model)
    explain(PROMPT, " because", model=tiny_lm, budget=40)

    def broken(logits):
        raise RuntimeError("target failed inside the model call")

    with pytest.raises(RuntimeError, match="target failed"):
        explain(PROMPT, broken, model=tiny_lm, budget=40)
    layer = tiny_lm.model.model.layers[1]
    original = layer.forward

    def exploding(*a, **k):
        raise RuntimeError("layer exploded")

    layer.forward = exploding
    try:
        with pytest.raises(RuntimeError, match="layer exploded"):
            explain(PROMPT, " because", model=tiny_lm, budget=40)
    finally:
        layer.forward = original
    assert hook_count(tiny_lm.model) == hooks_before
    assert tiny_lm.model.training is False
    torch.testing.assert_close(logits_of(tiny_lm, ids), before, rtol=0, atol=0)


def test_nan_from_the_model_is_a_clear_error(tiny_lm):
    from diffusiongemma.errors import NumericalError

    with pytest.raises(NumericalError, match="non-finite"):
        explain(PROMPT, lambda logits: logits[:, 0, 0] * float("nan"), model=tiny_lm, budget=40)


def test_masks_shape_checked(tiny_lm):
    from diffusiongemma.errors import InputError

    game = Game("alpha beta gamma", target=" delta", model=tiny_lm)
    with pytest.raises(InputError, match=r"\[batch, 3\]"):
        game(np.ones((2, 4)))


def test_explain_with_faithfulness_round_trips(tiny_lm, tmp_path):
    from diffusiongemma import Attribution

    a = explain(PROMPT, " because", model=tiny_lm, budget=60, faithfulness=True)
    f = a.faithfulness
    assert f.deletion[0] == pytest.approx(1.0) and f.insertion[0] == pytest.approx(0.0)
    assert f.deletion[-1] == pytest.approx(0.0, abs=1e-6) and f.insertion[-1] == pytest.approx(1.0, abs=1e-6)
    assert f.evaluations == 2 * len(f.fractions)
    b = Attribution.from_json(a.to_json(tmp_path / "a.json"))
    np.testing.assert_allclose(b.faithfulness.deletion, f.deletion)
    assert b.faithfulness.comprehensiveness == f.comprehensiveness
    assert "deletion and insertion" in a.to_html(tmp_path / "a.html").read_text()


def test_read_position_inside_the_cached_prefix(tiny_lm):
    """Removing the only unit (at the end) makes the row read at a prefix token: no cache for that row."""
    game = Game("alpha beta gamma delta", target=" epsilon", model=tiny_lm, units="spans:11-22")
    assert game.evaluator.prefix_len >= 3 and game.n == 1
    kept = [p for p in range(len(game.rendered)) if game.token_unit[p] < 0]
    tok = game.bound.continuations[0]
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=torch.tensor([[game.rendered.input_ids[p] for p in kept]])).logits[0, -1]
    expected = float(torch.log_softmax(logits.double(), -1)[tok[0]])
    assert game(np.array([[0], [1]]))[0] == pytest.approx(expected, abs=1e-4)


def test_explain_with_interactions_costs_nothing_more(tiny_lm, tmp_path):
    plain = explain(PROMPT, target=" because", model=tiny_lm, budget=120, seed=2)
    a = explain(PROMPT, target=" because", model=tiny_lm, budget=120, seed=2, interactions=True)
    np.testing.assert_array_equal(a.scores, plain.scores)
    assert a.evaluations == plain.evaluations
    assert len(a.interactions) == 15  # the pairs among the 6 strongest words
    strongest = {int(i) for i in np.argsort(-np.abs(a.scores))[:6]}
    assert all({i, j} <= strongest for i, j, _ in a.interactions)
    assert "Interactions between units" in a.to_html(tmp_path / "a.html").read_text()


def test_long_prompt_of_200_token_units_in_chunks(tiny_lm):
    """Long prompts run in chunked batches, sampled and gradient methods alike, with progress reported."""
    words = ("the river bank flooded after rain and the town council met to plan new walls " * 20).split()
    prompt = " ".join(words[:190])
    seen = []
    a = explain(prompt, target=" soon", model=tiny_lm, units="tokens", budget=300, batch_size=16,
                progress=lambda done, total: seen.append(done))
    assert len(a.units) >= 180 and a.evaluations <= 300 and abs(a.efficiency_gap) < 1e-6
    assert seen == sorted(seen) and seen[-1] == a.evaluations
    g = explain(prompt, target=" soon", model=tiny_lm, units="tokens", method="gradient", budget=62)
    assert g.evaluations == 62 and np.all(np.isfinite(g.scores)) and np.all(np.isfinite(g.stderr))


def test_explain_with_trigger_sets_round_trips(tiny_lm, tmp_path):
    a = explain(PROMPT, target=" because", contrast=" and", model=tiny_lm, budget=120, seed=1, triggers=True)
    assert set(a.triggers) == {"necessary", "sufficient"}
    assert all(t.masked for t in a.triggers.values())  # this prompt has both (seeded tiny model)
    for kind, t in a.triggers.items():
        # the auditor's check, redone here by hand: delete the words from the text and send it again
        words = PROMPT.split()
        kept = [w for i, w in enumerate(words) if (i not in t.units) == (kind == "necessary")]
        assert t.edited_prompt == " ".join(kept)
        again = float(Game(" ".join(kept), target=" because", contrast=" and", model=tiny_lm, units="words")(
            np.ones((1, len(kept))))[0])
        assert again == pytest.approx(t.value_edited, abs=1e-4)
        assert again == pytest.approx(t.value_after, abs=1e-4)  # the edit operator: mask = edited text
        assert t.confirmed == ((again > 0) != (a.v_full > 0) if kind == "necessary" else (again > 0) == (a.v_full > 0))
        assert t.state == ("confirmed" if t.confirmed else "masked only")
    b = Attribution.from_json(a.to_json(tmp_path / "a.json"))
    assert b.triggers == a.triggers
    assert "Minimal trigger sets" in a.to_html(tmp_path / "a.html").read_text()


def test_masks_as_bool_int_or_float_arrays_and_tensors(tiny_lm):
    game = Game(PROMPT, target=" because", model=tiny_lm, units="words")
    m = (np.random.default_rng(3).random((3, game.n)) < 0.5)
    expected = game(m.astype(int))
    for form in (m, m.astype(float), torch.as_tensor(m), torch.as_tensor(m.astype(np.int64))):
        np.testing.assert_allclose(game(form), expected, atol=1e-6)


def _projection_target(lm):
    from diffusiongemma.refusal.direction import RefusalDirection
    from diffusiongemma.refusal.projection import DirectionProjection

    torch.manual_seed(3)
    return DirectionProjection(RefusalDirection(torch.randn(lm.model.config.hidden_size), layer=1, position=-2))


@pytest.mark.parametrize("case", ["words", "tokens, three-token target", "chat, prefix cache", "projection probe"])
def test_compacted_rows_give_the_values_of_attention_holes(tiny_lm, monkeypatch, case):
    """``remove`` runs as compacted rows (kept tokens first, plain causal attention): the values must be those
    of the attention mask with holes, for every kind of read (last kept token, teacher-forced tail, probe)."""
    from diffusiongemma import evaluation

    prompt, target, units = PROMPT, " because", "words"
    if case.startswith("tokens"):
        target, units = " because it rained", "tokens"
    elif case.startswith("chat"):
        prompt, units = [{"role": "user", "content": "How did the old river bank flood last spring?"}], "words"
    elif case.startswith("projection"):
        target = _projection_target(tiny_lm)
    game = Game(prompt, target=target, model=tiny_lm, units=units, mask="remove")
    masks = (np.random.default_rng(2).random((12, game.n)) < 0.5).astype(int)
    masks[0], masks[1] = 0, 1  # nothing kept, everything kept
    calls = []
    real = evaluation.compact_rows
    monkeypatch.setattr(evaluation, "compact_rows", lambda *a: calls.append(1) or real(*a))
    compacted = game(masks)
    assert calls  # the compacted path ran
    game.evaluator.compact = False
    holes = game(masks)
    assert len(calls) == 1  # turned off: not called again
    assert np.ptp(holes) > 0.05  # the masks matter, so equality means something
    np.testing.assert_allclose(compacted, holes, atol=1e-4)


def test_rows_stay_uncompacted_while_other_hooks_may_read_positions(tiny_lm, monkeypatch):
    from diffusiongemma import evaluation

    game = Game(PROMPT, target=" because", model=tiny_lm, units="words", mask="remove")
    masks = (np.random.default_rng(4).random((5, game.n)) < 0.5).astype(int)
    calls = []
    real = evaluation.compact_rows
    monkeypatch.setattr(evaluation, "compact_rows", lambda *a: calls.append(1) or real(*a))
    layer = tiny_lm.model.model.layers[0]
    handle = layer.register_forward_hook(lambda m, i, o: None)  # stands for an attached patch
    try:
        game(masks)
    finally:
        handle.remove()
    assert not calls
    game(masks)
    assert calls


CHATML_WITH_DEFAULT = (  # the shape of Qwen2's template: a system turn of its own when the chat has none
    "{%- if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{%- endif %}"
    "{%- for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}")


def test_a_default_system_prompt_of_the_template_is_said_not_silent(tiny_lm):
    import dataclasses

    from diffusiongemma import explain

    chatml = dataclasses.replace(tiny_lm, chat_template=CHATML_WITH_DEFAULT)
    a = explain("Tell me a joke", target=" Sure", model=chatml, chat=True, budget=8, faithfulness=False)
    assert a.settings["default_system_prompt"] == "You are a helpful assistant."
    assert any("added a system prompt of its own" in w for w in a.warnings())
    assert "helpful" not in " ".join(u.text for u in a.units)  # the model saw it; it is not a unit
    given = explain("Tell me a joke", target=" Sure", model=chatml, chat=True, system="Be brief.", budget=8,
                    faithfulness=False)
    plain = explain("Tell me a joke", target=" Sure", model=tiny_lm, chat=True, budget=8, faithfulness=False)
    assert "default_system_prompt" not in given.settings and "default_system_prompt" not in plain.settings
