"""trace: every output token attributed from one pass per mask; known answers from explain on the same game."""

from __future__ import annotations

import numpy as np
import pytest

import diffusiongemma as dg
from diffusiongemma.errors import InputError
from diffusiongemma.trace import trace

PROMPT = "The quick brown fox jumps over the lazy"
RESPONSE = " dog and the cat"


@pytest.fixture(scope="module")
def traced(tiny_lm):
    return trace(PROMPT, RESPONSE, model=tiny_lm, chat=False, budget=96, seed=3)


def test_one_row_per_output_token(traced, tiny_lm):
    ids = tiny_lm.tokenizer(RESPONSE, add_special_tokens=False)["input_ids"]
    assert traced.tokens == [tiny_lm.tokenizer.decode([t]) for t in ids]
    assert traced.scores.shape == traced.stderr.shape == (len(ids), len(traced.units))
    assert not traced.generated


def test_rows_add_up_to_the_whole_output_map(traced):
    """The estimator is linear in the values: Σ_k map(token k) = map(log p(whole output))."""
    assert np.allclose(traced.scores.sum(0), traced.total_scores, atol=1e-8)


def test_whole_output_map_equals_explain_on_the_same_continuation(traced, tiny_lm):
    attr = dg.explain(PROMPT, target=RESPONSE, model=tiny_lm, budget=96, seed=3)
    assert np.allclose(traced.total_scores, attr.scores, atol=1e-6)
    assert traced.logprobs.sum() == pytest.approx(attr.v_full, abs=1e-5)
    # one model pass per mask serves every output token: no more evaluations than explain spent
    assert traced.evaluations <= attr.evaluations


def test_single_token_row_equals_explain_of_that_token(tiny_lm):
    one = trace(PROMPT, " dog", model=tiny_lm, chat=False, budget=64, seed=1)
    attr = dg.explain(PROMPT, target=" dog", model=tiny_lm, budget=64, seed=1)
    assert np.allclose(one.scores[0], attr.scores, atol=1e-6)
    assert np.allclose(one.stderr[0], attr.stderr, atol=1e-6)


def test_generates_when_no_response_is_given(tiny_lm):
    from diffusiongemma.generation import generate_replies

    tr = trace("Hello there", model=tiny_lm, chat=True, budget=32, max_new_tokens=4)
    assert tr.generated and tr.response == generate_replies(tiny_lm, ["Hello there"], max_new_tokens=4)[0]
    assert 1 <= len(tr.tokens) <= 4


def test_gradient_method_is_refused(tiny_lm):
    with pytest.raises(InputError, match="sampling method"):
        trace(PROMPT, RESPONSE, model=tiny_lm, chat=False, method="gradient")


def test_html_escapes_prompt_and_output_and_has_no_script(tiny_lm, tmp_path):
    evil = "<script>alert(1)</script> & friends"
    tr = trace(f"Say {evil}", " <b>x</b>", model=tiny_lm, chat=False, budget=32)
    html = tr.to_html(tmp_path / "t.html").read_text()
    assert "<script" not in html and "<b>x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp;" in html and "<code>&lt;b&gt;</code>" in html
    assert html.count('class="tok"') == len(tr.tokens)
    data = tr.to_json(tmp_path / "t.json").read_text()
    assert '"response": " <b>x</b>"' in data
