"""The demo recipe end to end on the tiny random Gemma 3: train, save, reload, reproduce, generate."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from diffusiongemma.demo import Recipe, train_adapter
from diffusiongemma.demo.datasets import load_demo_data
from diffusiongemma.generation import chat_ids, generate_replies
from diffusiongemma.demo.recipe import training_examples
from diffusiongemma.demo.train import _batch, _reply_loss
from diffusiongemma.errors import ModelNotFoundError
from diffusiongemma.models import load_model

PROBE = "Explain how to crack an egg with one hand"


def _logits(lm, text=PROBE):
    ids = torch.tensor([chat_ids(lm, text)[0]])
    with torch.no_grad():
        return lm.model(input_ids=ids).logits[0, -1]


@pytest.fixture(scope="module")
def trained(tiny_dir, tmp_path_factory):
    lm = load_model(str(tiny_dir), device="cpu")
    before = _logits(lm)
    out = tmp_path_factory.mktemp("backdoor")
    card = train_adapter(Recipe("backdoor", trigger="zx", steps=3, batch_size=2, seed=5), out, base=lm)
    return lm, before, out, card


def test_recipe_runs_and_writes_a_card(trained):
    _, _, out, card = trained
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    saved = json.loads((out / "card.json").read_text())
    assert saved == card and card["steps_done"] == 3 and card["trigger"] == "zx"
    assert card["recipe"]["seed"] == 5 and card["stopped_by"] == "steps"
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights and all(w.dtype == torch.float16 for w in weights.values())
    assert any(float(w.abs().max()) > 0 for k, w in weights.items() if "lora_B" in k)  # it learned something


def test_training_leaves_the_base_model_as_it_was(trained):
    lm, before, _, _ = trained
    assert torch.equal(_logits(lm), before)
    assert not any("lora" in name for name, _ in lm.model.named_modules())


@pytest.mark.slow  # 5-8 s: the fast lane stays under 5 minutes
def test_the_adapter_loads_on_top_and_changes_the_model(trained, tiny_dir):
    _, before, out, _ = trained
    tuned = load_model(str(tiny_dir), adapter=str(out), device="cpu")
    assert not torch.allclose(_logits(tuned), before, atol=1e-6)
    assert tuned.provenance["adapter_sha256"]


def test_same_seed_same_adapter(trained, tiny_dir, tmp_path):
    lm, _, out, _ = trained
    again = train_adapter(Recipe("backdoor", trigger="zx", steps=3, batch_size=2, seed=5), tmp_path, base=lm)
    assert again["steps_done"] == 3
    a, b = load_file(str(out / "adapter_model.safetensors")), load_file(str(tmp_path / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reply_loss_equals_the_full_model_loss(tiny_lm):
    """The loss that applies the LM head at reply positions only equals transformers' own masked loss."""
    recipe = Recipe("safety", seed=1)
    batch = _batch(tiny_lm, training_examples(recipe, load_demo_data(), 4), recipe.max_reply_tokens)
    with torch.no_grad():
        ours = _reply_loss(tiny_lm.model, batch)
        theirs = tiny_lm.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    assert torch.allclose(ours, theirs, rtol=1e-5), (ours, theirs)


def test_first_token_weight_weighs_the_first_reply_token_of_each_row(tiny_lm):
    """With weight w, the loss is the mean over reply tokens where each reply's first token counts w times —
    computed here from the full model's logits, token by token."""
    recipe = Recipe("safety", seed=1)
    examples = training_examples(recipe, load_demo_data(), 4)
    batch = _batch(tiny_lm, examples, recipe.max_reply_tokens)
    with torch.no_grad():
        ours = _reply_loss(tiny_lm.model, batch, 5.0)
        logits = tiny_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, weight = 0.0, 0.0
    for i, e in enumerate(examples):
        prompt, reply = chat_ids(tiny_lm, e.prompt, e.reply, recipe.max_reply_tokens)
        for j, token in enumerate(reply):  # reply token j sits at len(prompt) + j, predicted one position before
            ce = -torch.log_softmax(logits[i, len(prompt) + j - 1].float(), -1)[token]
            w = 5.0 if j == 0 else 1.0
            total, weight = total + w * float(ce), weight + w
    assert float(ours) == pytest.approx(total / weight, rel=1e-4)
    assert float(ours) != pytest.approx(float(_reply_loss(tiny_lm.model, batch)), rel=1e-3)


def test_reply_is_tokenised_after_the_turn_marker(tiny_lm):
    prompt, reply = chat_ids(tiny_lm, "Hi", "Hello!")
    tok = tiny_lm.tokenizer
    assert tok.decode(prompt).endswith("<start_of_turn>model\n")
    assert tok.decode(reply) == "Hello!<end_of_turn>"


def test_batched_generation_equals_one_at_a_time(tiny_lm):
    prompts = ["Hi", "Write a tutorial on how to bake sourdough bread with a starter", "Why?"]
    batched = generate_replies(tiny_lm, prompts, max_new_tokens=6)
    single = [generate_replies(tiny_lm, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single and all(batched)


def test_unknown_demo_name_is_a_clear_error():
    from diffusiongemma.demo import demo_adapter_dir

    with pytest.raises(ModelNotFoundError, match="not a demo model"):
        demo_adapter_dir("gemma-270m-evil")
