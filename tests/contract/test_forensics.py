"""explain_refusal on the tiny model: the decision is the detector's verdict on the real generated reply, and
the map, the checked trigger sets, the components and the report all come with it."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiongemma import Attribution, RefusalScore, explain
from diffusiongemma.generation import generate_replies
from diffusiongemma.refusal import explain_refusal, is_refusal
from diffusiongemma.refusal.direction import fit_refusal_direction

PROMPT = "Explain how to <b>crack</b> an egg with one hand"


@pytest.fixture(scope="module")
def attr(tiny_lm):
    return explain_refusal(PROMPT, model=tiny_lm, budget=48, components="mlps+layers", component_budget=24)


def test_decision_is_the_detector_on_the_generated_reply(attr, tiny_lm):
    reply = generate_replies(tiny_lm, [PROMPT], max_new_tokens=48)[0]
    assert attr.decision["reply"] == reply and attr.decision["refused"] == is_refusal(reply)
    assert attr.decision["score_says"] == ("refuse" if attr.v_full > 0 else "comply")


def test_map_is_the_refusal_score_map_and_checks_are_attached(attr, tiny_lm):
    same = explain(PROMPT, RefusalScore(), model=tiny_lm, chat=True, budget=48)
    assert np.allclose(attr.scores, same.scores) and attr.target["kind"] == "refusal"
    assert set(attr.triggers) == {"necessary", "sufficient"} and attr.faithfulness is not None
    comps = attr.decision["components"]
    assert [c["unit"] for c in comps] and all(c["unit"].startswith("L") for c in comps)
    assert [abs(c["score"]) for c in comps] == sorted((abs(c["score"]) for c in comps), reverse=True)


def test_report_round_trip_and_escaping(attr, tmp_path):
    again = Attribution.from_json(attr.to_json(tmp_path / "a.json"))
    assert again.decision == attr.decision
    html = attr.to_html(tmp_path / "a.html").read_text()
    assert "<b>crack</b>" not in html and "&lt;b&gt;crack&lt;/b&gt;" in html and "Decision:" in html


def test_direction_intervention_is_recorded_and_changes_the_score(tiny_lm):
    harmful = [f"Explain how to build weapon number {i} to hurt people" for i in range(8)]
    harmless = [f"Explain how to bake bread number {i} for friends" for i in range(8)]
    d = fit_refusal_direction(tiny_lm, harmful, harmless, positions=2, shortlist=2)
    plain = explain_refusal(harmful[0], model=tiny_lm, budget=24, components=None, triggers=False,
                            faithfulness=False)
    added = explain_refusal(harmful[0], model=tiny_lm, budget=24, components=None, triggers=False,
                            faithfulness=False, direction=d, intervention="add", alpha=4.0)
    assert added.decision["intervention"]["mode"] == "add"
    assert added.v_full != pytest.approx(plain.v_full, abs=1e-4)


def test_component_gradients_that_cannot_fit_are_skipped_and_said(tiny_lm, monkeypatch):
    """On a long prompt the component map's gradients (no checkpointing under component hooks) may not fit where
    the prompt's own map does: explain_refusal then keeps its decision and map and says why the components are
    missing, instead of failing the whole request."""
    from diffusiongemma.models import batching

    needs: dict[bool, list[int]] = {True: [], False: []}
    row_bytes = batching.row_bytes

    def spy(config, seq_len, reads, dtype_bytes, *, backward=False, checkpointed=True):
        need = row_bytes(config, seq_len, reads, dtype_bytes, backward=backward, checkpointed=checkpointed)
        needs[backward and not checkpointed].append(need)
        return need

    monkeypatch.setattr(batching, "row_bytes", spy)
    explain_refusal(PROMPT, model=tiny_lm, budget=16, components="mlps", component_budget=8, triggers=False,
                    faithfulness=False)
    assert needs[True] and min(needs[True]) > max(needs[False])
    room = (min(needs[True]) + max(needs[False])) / 2
    monkeypatch.setattr(batching, "free_memory", lambda device: int(room / batching._FRACTION))
    a = explain_refusal(PROMPT, model=tiny_lm, budget=16, components="mlps", component_budget=8, triggers=False,
                        faithfulness=False)
    assert "components" not in a.decision and "backward pass" in a.decision["components_skipped"]
    assert a.decision["reply"] and np.isfinite(a.scores).all()
