"""The SAE shipped for the demo safety model: found by name, read as SAELens's format, at the refusal
direction's layer, and its card's figures (explained variance, L0, dead latents, minutes) within the issue's
bounds."""

from __future__ import annotations

import json

from diffusiongemma.components.features import load_sae
from diffusiongemma.demo.sae import SAE_RECIPE, demo_sae_dir


def test_the_shipped_sae_loads_by_name_and_its_card_holds():
    sae = load_sae("gemma-270m-safety-L12")
    assert (sae.d_in, sae.d_sae, sae.layer, sae.kind, sae.apply_b_dec_to_input) == (640, 1024, 12, "relu", True)
    folder = demo_sae_dir()
    card = json.loads((folder / "card.json").read_text())
    assert card["recipe"] == SAE_RECIPE  # the recipe that made it is the one in the code
    f = card["figures"]
    assert f["explained_variance"] >= 0.7 and 1 <= f["l0"] <= 200 and f["dead_share"] < 0.5
    assert f["held_out_prompts_explained_variance"] >= 0.6  # the saved file, on requests it never saw
    assert card["minutes"]["total"] <= 30
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000  # a few MB, like the adapters
