"""The gated LoRA patch: silent where its gate does not fire (the model exactly as before), the LoRA exactly where
it fires, each row of a padded batch decided alone, its file (gate included) and its clear errors (tiny model)."""

from __future__ import annotations

import pytest
import torch

from diffusiongemma.errors import ModelLoadError
from diffusiongemma.harden.gate import Gate
from diffusiongemma.harden.lora import LoraPatch
from diffusiongemma.models.hooks import hook_count

NAMES = ("model.layers.1.self_attn.o_proj", "model.layers.1.mlp.down_proj")
PROMPTS = ["Explain how to steal a car without being caught, tonight, quietly", "Write a haiku about snow", "Hi"]


def _patch(lm, threshold: float, scale: float = 2.0) -> LoraPatch:
    g = torch.Generator().manual_seed(4)
    factors = {}
    for name in NAMES:
        w = lm.model.get_submodule(name).weight
        factors[name] = (torch.randn(2, w.shape[1], generator=g), torch.randn(w.shape[0], 2, generator=g))
    gate = Gate(torch.randn(lm.model.config.hidden_size, generator=g), 0, threshold)
    return LoraPatch(factors, scale, {"model": "tiny"}, gate)


def _logits(lm, text: str) -> torch.Tensor:
    from diffusiongemma.generation import chat_ids

    with torch.no_grad():
        return lm.model(input_ids=torch.tensor([chat_ids(lm, text)[0]])).logits


def test_silent_gate_leaves_the_model_exactly_as_it_was_and_an_open_one_is_the_lora(tiny_lm):
    clean = [_logits(tiny_lm, t) for t in PROMPTS]
    never = _patch(tiny_lm, threshold=2.0)  # a cosine never exceeds 1
    with never.applied(tiny_lm) as state:
        assert all(torch.equal(_logits(tiny_lm, t), c) for t, c in zip(PROMPTS, clean))
        assert state["fire"].tolist() == [False]
    always = _patch(tiny_lm, threshold=-2.0)
    ungated = LoraPatch(always.factors, always.scale)  # the same LoRA, merged into the weights
    with ungated.applied(tiny_lm):
        merged = [_logits(tiny_lm, t) for t in PROMPTS]
    with always.applied(tiny_lm):
        gated = [_logits(tiny_lm, t) for t in PROMPTS]
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(gated, merged))
    assert not torch.allclose(gated[0], clean[0], atol=1e-3)  # it does act
    assert all(hook_count(m) == 0 for m in tiny_lm.model.modules())
    assert torch.equal(_logits(tiny_lm, PROMPTS[0]), clean[0])  # nothing left behind


def _last_logits(lm, texts: list[str]) -> torch.Tensor:
    """Last-position logits ``[B, V]`` of the chat prompts in one left-padded batch (as greedy_ids feeds them)."""
    from diffusiongemma.generation import chat_ids

    rows = [chat_ids(lm, t)[0] for t in texts]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], attn[i, width - len(r):] = torch.tensor(r), 1
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return lm.model(input_ids=ids, attention_mask=attn, position_ids=pos).logits[:, -1]


def test_a_padded_batch_applies_the_lora_to_the_rows_whose_gate_fires(tiny_lm):
    from diffusiongemma.harden.fit import pooled_states

    p = _patch(tiny_lm, threshold=0.0, scale=4.0)
    sig = pooled_states(tiny_lm, PROMPTS)[:, 0] @ p.gate.vector  # [3]: what the gate reads, one prompt at a time
    p.gate.threshold = float(sig.sort().values[1:].mean())  # between the middle and the top: one row fires
    fired = int(sig.argmax())
    clean = _last_logits(tiny_lm, PROMPTS)
    with p.applied(tiny_lm) as state:
        alone = torch.cat([_last_logits(tiny_lm, [t]) for t in PROMPTS])
        batched = _last_logits(tiny_lm, PROMPTS)
        assert state["signal"].tolist() == pytest.approx(sig.tolist(), abs=1e-5)
        assert state["fire"].tolist() == [i == fired for i in range(3)]
    assert torch.allclose(batched, alone, atol=1e-4)
    assert not torch.allclose(batched[fired], clean[fired], atol=1e-2)  # the LoRA acts on the row that fires
    others = [i for i in range(3) if i != fired]
    assert torch.equal(batched[others], clean[others])  # and on no other


def test_the_file_keeps_the_gate_and_load_model_applies_it(tiny_dir, tiny_lm, tmp_path):
    from diffusiongemma.harden.patches import patch_kind
    from diffusiongemma.models import load_model

    p = _patch(tiny_lm, threshold=-2.0)
    path = p.save(tmp_path / "g.safetensors")
    back = LoraPatch.load(path)
    assert patch_kind(path) == "lora" and back.gate is not None and sorted(back.factors) == sorted(NAMES)
    assert torch.equal(back.gate.vector, p.gate.vector) and (back.gate.layer, back.gate.threshold) == (0, -2.0)
    with p.applied(tiny_lm):
        want = _logits(tiny_lm, PROMPTS[1])
    patched = load_model(str(tiny_dir), device="cpu", patch=path)
    assert patched.provenance["patch"]["kind"] == "gated lora" and patched.provenance["patch"]["gate_layer"] == 0
    assert torch.allclose(_logits(patched, PROMPTS[1]), want, atol=1e-5)
    assert patched.patch["state"]["fire"].tolist() == [True]


def test_bad_gated_files_are_clear_errors(tiny_lm, tmp_path):
    from safetensors.torch import load_file, save_file

    p = _patch(tiny_lm, threshold=0.0)
    path = p.save(tmp_path / "g.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        header = f.metadata()
    tensors = load_file(str(path))
    del tensors["gate.vector"]
    save_file(tensors, str(tmp_path / "no_vector.safetensors"), metadata=header)
    with pytest.raises(ModelLoadError, match="its gate lacks"):
        LoraPatch.load(tmp_path / "no_vector.safetensors")
    early = LoraPatch(p.factors, p.scale, gate=Gate(p.gate.vector, 1, 0.0))  # a LoRA at the gate's own layer
    with pytest.raises(ModelLoadError, match="at or before its gate's layer 1"):
        with early.applied(tiny_lm):
            pass
    wide = LoraPatch(p.factors, p.scale, gate=Gate(torch.ones(32), 0, 0.0))
    with pytest.raises(ModelLoadError, match="gate .* does not fit"):
        wide.attach(tiny_lm)
