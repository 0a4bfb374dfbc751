"""The public names are what we mean them to be, and every user error derives from one base class."""

import inspect

import diffusiongemma as dg
from diffusiongemma import errors


def test_public_names():
    assert set(dg.__all__) == {
        "__version__", "explain", "explain_many", "METHODS", "ExplainOptions", "GameSpec", "RunSpec", "Checks",
        "RefusalOptions", "Attribution", "Game", "run", "run_many",
        "EngineResult", "load_model",
        "LoadedModel", "Target", "TARGETS", "Continuation", "Contrast", "NextToken", "Greedy", "CallableTarget",
        "RefusalScore", "is_refusal", "explain_refusal", "explain_refusals", "explain_context",
        "Unit", "UNIT_KINDS", "DiffusionGemmaError", "InputError", "ModelLoadError", "ModelNotFoundError",
        "UnsupportedModelError", "NumericalError",
    }
    for name in dg.__all__:  # every public function shows how it is called, in a doctest the lane runs
        obj = getattr(dg, name)
        if inspect.isfunction(obj):
            assert ">>> " in (obj.__doc__ or ""), f"{name} has no runnable example"


def test_exception_tree():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DiffusionGemmaError)
    assert issubclass(errors.ModelNotFoundError, errors.ModelLoadError)
    assert issubclass(errors.InputError, ValueError)


def test_registries():
    assert set(dg.TARGETS) == {"continuation", "contrast", "next_token", "greedy", "callable", "refusal", "projection"}
    assert {k for k, v in dg.UNIT_KINDS.items() if v.domain == "text"} == {"tokens", "words", "sentences", "roles", "spans"}
    assert {k for k, v in dg.UNIT_KINDS.items() if v.domain == "component"} == {
        "heads", "mlps", "layers", "neurons", "direction", "features", "transcoder"}  # one registry for both
    assert set(dg.METHODS) == {"shapley", "banzhaf", "exact", "paired", "regression", "kadd", "gp", "owen", "gradient", "ablation"}
