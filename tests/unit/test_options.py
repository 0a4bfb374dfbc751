"""Options as values: flat keywords reach the one field that has their name; a workflow's stored settings reach
the workflow; a value and its keywords are the same request."""

import dataclasses

import pytest

from diffusiongemma.audit.runner import AuditSettings
from diffusiongemma.errors import InputError
from diffusiongemma.options import Checks, ExplainOptions, GameSpec, RunSpec
from diffusiongemma.refusal.options import ComponentSpec, RefusalOptions, Steering

VALUES = [GameSpec, RunSpec, Checks, ExplainOptions, ComponentSpec, Steering, RefusalOptions]


@pytest.mark.parametrize("cls", VALUES, ids=lambda c: c.__name__)
def test_every_leaf_name_is_unique_and_round_trips(cls):
    names = cls.leaves()
    assert len(names) == len(set(names)), f"{cls.__name__}: a flat keyword would be ambiguous"
    default = cls()
    assert cls.from_keywords(**default.keywords()) == default
    with pytest.raises(dataclasses.FrozenInstanceError):
        default.seed = 1  # values: nobody changes an option under another's feet


def test_a_keyword_lands_in_its_part_and_nowhere_else():
    o = ExplainOptions().replace(budget=64, mask="remove", backups=3)
    assert (o.run.budget, o.game.mask, o.checks.backup_count) == (64, "remove", 3)
    assert o.replace(seed=5).keywords() == {**o.keywords(), "seed": 5}
    r = RefusalOptions().replace(component_budget=9, alpha=2.0, budget=40)
    assert (r.components.component_budget, r.steering.alpha, r.map.run.budget) == (9, 2.0, 40)
    assert r.map.checks.triggers and r.map.game.chat  # the refusal defaults survive a change elsewhere


def test_unknown_and_contradictory_options_are_one_sentence():
    with pytest.raises(InputError, match="unknown options budgett, sead;"):
        ExplainOptions.from_keywords(budgett=1, sead=2)
    with pytest.raises(InputError, match="chat turn"):
        RefusalOptions.from_keywords(chat=False)


def test_every_audit_setting_reaches_the_refusal_workflow():
    settings = AuditSettings(units="sentences", method="owen", budget=33, components="mlps", component_budget=7,
                             triggers=False, faithfulness=False, max_new_tokens=5, system="Be brief.", seed=4)
    got = settings.refusal_options("M").keywords()
    for name, value in dataclasses.asdict(settings).items():
        assert got[name] == value, name
    assert got["model"] == "M"

