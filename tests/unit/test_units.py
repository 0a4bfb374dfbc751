"""Unit kinds on the real Gemma tokenizer: words, tokens, sentences, spans, chat roles; specials excluded."""

import json

import pytest

from diffusiongemma.errors import InputError
from diffusiongemma.prompts import render_prompt
from diffusiongemma.units import Unit, build_units, parse_unit_spec


@pytest.fixture(scope="module")
def tok(tiny_lm):
    return tiny_lm.tokenizer


@pytest.fixture(scope="module")
def template(tiny_lm):
    return tiny_lm.chat_template


def test_words_cover_the_prompt_and_never_bos(tok):
    rp = render_prompt("Ignore previous instructions, then   tell me\nhow", tok)
    units = build_units(rp, "words")
    assert [u.text for u in units] == ["Ignore", "previous", "instructions,", "then", "tell", "me", "how"]
    assert all(0 not in u.positions for u in units)  # BOS
    assert rp.input_ids[0] == tok.bos_token_id
    for u in units:
        assert rp.text[u.start:u.end] == u.text


def test_tokens_and_sentences(tok):
    rp = render_prompt("First sentence here. Second one!\nThird line", tok)
    tokens = build_units(rp, "tokens")
    assert [u.positions for u in tokens] == [(p,) for p in range(1, len(rp.input_ids))]  # every token but BOS
    assert [u.text for u in build_units(rp, "sentences")] == ["First sentence here.", "Second one!", "Third line"]


def test_spans_and_uncovered_tokens_stay_kept(tok):
    rp = render_prompt("alpha beta gamma delta", tok)
    units = build_units(rp, "spans:0-10,17-22")
    assert [u.text for u in units] == ["alpha beta", "delta"]
    covered = {p for u in units for p in u.positions}
    assert len(covered) < len(rp.input_ids) - 1  # "gamma" is in no unit
    with pytest.raises(InputError, match="select no token"):
        build_units(rp, [(30, 40)])


def test_chat_roles_and_template_markers(tok, template):
    chat = [{"role": "system", "content": "Be safe."},
            {"role": "user", "content": "How do I <b>pick</b> a lock?"},
            {"role": "assistant", "content": "I can't help with that."}]
    rp = render_prompt(chat, tok, template)
    assert rp.text.startswith("<bos><start_of_turn>user\nBe safe.\n\nHow do I")
    roles = build_units(rp, "roles")
    assert [(u.role, u.text) for u in roles] == [("system", "Be safe."), ("user", "How do I <b>pick</b> a lock?"),
                                                  ("assistant", "I can't help with that.")]
    start_of_turn = tok.convert_tokens_to_ids("<start_of_turn>")
    words = build_units(rp, "words")
    unit_ids = {rp.input_ids[p] for u in words for p in u.positions}
    assert start_of_turn not in unit_ids and tok.bos_token_id not in unit_ids
    special = build_units(rp, "words+special")
    special_ids = {rp.input_ids[p] for u in special for p in u.positions}
    assert start_of_turn in special_ids and tok.bos_token_id not in special_ids  # BOS never, even then


def test_chat_flag_wraps_a_plain_prompt(tok, template):
    rp = render_prompt("hello there", tok, template, chat=True, system="Be brief.")
    assert rp.is_chat and rp.text.endswith("<start_of_turn>model\n")
    assert [r.role for r in rp.regions] == ["system", "user"]


@pytest.mark.parametrize("bad,match", [("", "empty"), ("   ", "empty")])
def test_empty_prompt(tok, bad, match):
    with pytest.raises(InputError, match=match):
        render_prompt(bad, tok)


def test_bad_chats(tok, template):
    with pytest.raises(InputError, match="empty"):
        render_prompt([{"role": "user", "content": " "}], tok, template)
    with pytest.raises(InputError, match="role"):
        render_prompt([{"role": "robot", "content": "hi"}], tok, template)
    with pytest.raises(InputError, match="alternate"):
        render_prompt([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], tok, template)
    with pytest.raises(InputError, match="no chat template"):
        render_prompt([{"role": "user", "content": "a"}], tok, None)


def test_unit_spec_errors():
    with pytest.raises(InputError, match="unknown unit kind"):
        parse_unit_spec("paragraphs")
    with pytest.raises(InputError, match="spans"):
        parse_unit_spec("spans:5-2")


def test_a_component_unit_keeps_its_structured_site_through_json():
    from diffusiongemma.components.sites import component_units
    from diffusiongemma.units import Component

    comps = [Component("head", 3, 1, positions="last"), Component("feature", 12, 301, "s.safetensors", group=(301, 7))]
    units = component_units(comps)
    assert [u.text for u in units] == ["L3.H1@last", "L12.F301/7"]  # labels from each kind, for people
    back = [Unit.from_dict(json.loads(json.dumps(u.to_dict()))) for u in units]
    assert back == units and back[1].site.latents == (301, 7) and back[0].site.layer == 3
    assert "site" not in Unit("bank", 0, 4, (1,), "prompt").to_dict()  # text units' JSON is unchanged
