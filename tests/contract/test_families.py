"""The architecture map, family by family: a tiny seeded random model of Gemma 3, Gemma 2, Gemma, Llama,
Mistral, Qwen 2, Qwen 3 and GPT-2 proves each site against a known answer — masking a head, an MLP, one MLP
neuron or a whole layer computes exactly what the same model computes with that component's output weights
zeroed; a head of the last layer masked at the last position only is the same as masked everywhere (nothing
after it reads it), while in the first layer it is not; and no hook is left behind."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from diffusiongemma.components import ComponentGame
from diffusiongemma.components.sites import Component
from diffusiongemma.models.hooks import hook_count
from diffusiongemma.models.architectures import architecture_for
from diffusiongemma.models.loading import LoadedModel

PROMPT, TARGET = "The quick brown fox jumps over the lazy", " dog"
V = 262144  # the real Gemma tokenizer renders the prompt
SMALL = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.3)


def _config(family: str):
    import transformers as tf

    if family == "gpt2":
        return tf.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=128, initializer_range=0.3)
    if family == "gemma3_text":
        return tf.Gemma3TextConfig(**SMALL, head_dim=8, sliding_window=64,
                                   layer_types=["sliding_attention", "full_attention"])
    cls = {"gemma2": tf.Gemma2Config, "gemma": tf.GemmaConfig, "llama": tf.LlamaConfig, "mistral": tf.MistralConfig,
           "qwen2": tf.Qwen2Config, "qwen3": tf.Qwen3Config}[family]
    extra = {"head_dim": 8} if family in ("gemma2", "gemma", "qwen3") else {}
    return cls(**SMALL, **extra)


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


@pytest.fixture(scope="module", params=["gemma3_text", "gemma2", "gemma", "llama", "mistral", "qwen2", "qwen3", "gpt2"])
def lm(request, tokenizer):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = _config(request.param)
    model = AutoModelForCausalLM.from_config(config).eval()
    return LoadedModel(model, tokenizer, f"tiny-{request.param}", architecture_for(config.model_type), None)


def _out_proj(lm, layer: int, where: str) -> torch.nn.Module:
    arch = lm.architecture
    block = lm.model.get_submodule(arch.layers)[layer]
    return block.get_submodule(f"{arch.attn}.{arch.attn_out}" if where == "attn" else f"{arch.mlp}.{arch.mlp_out}")


def _zero_inputs(module: torch.nn.Module, lo: int, hi: int) -> None:
    """Zero the weights that read inputs ``lo:hi`` (Linear: columns; GPT-2's Conv1D: rows)."""
    w = module.weight
    if type(module).__name__ == "Conv1D":
        w[lo:hi] = 0
    else:
        w[:, lo:hi] = 0


def _zero_all(module: torch.nn.Module) -> None:
    module.weight.zero_()
    if getattr(module, "bias", None) is not None:
        module.bias.zero_()


def _edited_value(lm, edit) -> float:
    """The target on a copy of the model whose weights ``edit`` changed, nothing masked."""
    other = copy.copy(lm)
    other.model = copy.deepcopy(lm.model)
    with torch.no_grad():
        edit(other)
    g = ComponentGame(PROMPT, TARGET, model=other, units="mlps")
    return float(g(np.ones((1, g.n)))[0])


def _masked_value(lm, units: str, off: list[int]) -> float:
    g = ComponentGame(PROMPT, TARGET, model=lm, units=units)
    m = np.ones((1, g.n))
    m[0, off] = 0
    return float(g(m)[0])


def test_each_site_masks_exactly_its_component(lm):
    n_heads = 4
    dh = _out_proj(lm, 1, "attn").weight.shape[0 if lm.family == "gpt2" else 1] // n_heads
    clean = _masked_value(lm, "mlps", [])

    head = _edited_value(lm, lambda m: _zero_inputs(_out_proj(m, 1, "attn"), 2 * dh, 3 * dh))
    assert _masked_value(lm, "heads@1", [2]) == pytest.approx(head, abs=1e-5)
    assert abs(head - clean) > 1e-4 and _masked_value(lm, "heads@1", [1]) != pytest.approx(head, abs=1e-4)

    mlp = _edited_value(lm, lambda m: _zero_all(_out_proj(m, 0, "mlp")))
    assert _masked_value(lm, "mlps", [0]) == pytest.approx(mlp, abs=1e-5)

    neuron = _edited_value(lm, lambda m: _zero_inputs(_out_proj(m, 0, "mlp"), 5, 6))
    assert _masked_value(lm, "neurons:0", [5]) == pytest.approx(neuron, abs=1e-5)
    group = _edited_value(lm, lambda m: _zero_inputs(_out_proj(m, 0, "mlp"), 16, 32))
    assert _masked_value(lm, "neurons:0/16", [1]) == pytest.approx(group, abs=1e-5) and abs(group - neuron) > 1e-6

    def no_layer(m):
        _zero_all(_out_proj(m, 1, "attn"))
        _zero_all(_out_proj(m, 1, "mlp"))

    assert _masked_value(lm, "layers", [1]) == pytest.approx(_edited_value(lm, no_layer), abs=1e-5)
    assert hook_count(lm.model) == 0


def test_a_position_restriction_masks_only_there(lm):
    """The last layer's head at the last position is all the target reads of it; the first layer's head
    also feeds the later positions' layer-1 attention, so masking it at the last position only differs."""
    everywhere = _masked_value(lm, "heads@1", [2])
    assert _masked_value(lm, "heads@1@last", [2]) == pytest.approx(everywhere, abs=1e-5)
    first_all, first_last = _masked_value(lm, "heads@0", [2]), _masked_value(lm, "heads@0@last", [2])
    assert abs(first_all - first_last) > 1e-5
    g = ComponentGame(PROMPT, TARGET, model=lm, units="heads@0@tok1-3+mlps@last")
    assert g.units[0].text == "L0.H0@tok1-3" and g.units[-1].text == "L1.MLP@last"
    assert hook_count(lm.model) == 0


def test_components_of_each_family_are_enumerated_from_the_map(lm):
    inner = 128 if lm.family == "gpt2" else 64  # GPT-2's MLP is 4 × n_embd wide
    assert lm.dims == (2, 4, inner)
    g = ComponentGame(PROMPT, TARGET, model=lm, units="heads+mlps+layers+neurons:1/32")
    assert g.n == 2 * 4 + 2 + 2 + inner // 32
    assert [u.text for u in g.units][-2:] == [f"L1.N{inner - 64}-{inner - 33}", f"L1.N{inner - 32}-{inner - 1}"]
    assert Component("neuron", 1, 1, size=32) in g.components


def test_an_exception_mid_forward_leaves_the_model_as_it_was(lm):
    """Every unit kind's hooks are scoped: a target that raises inside the masked forward leaves no hook, and
    the model's logits are bit-identical to before."""
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    with torch.no_grad():
        before = lm.model(input_ids=ids).logits

    def boom(logits):  # the counterfactual run (one row) passes; the masked batch fails
        if logits.shape[0] > 1:
            raise RuntimeError("target failed")
        return logits[:, -1, 0]

    game = ComponentGame(PROMPT, boom, model=lm, units="heads@last+mlps+layers@0+neurons:1/16",
                         baseline="resample", counterfactual="The quick brown cat jumps over the lazy")
    with pytest.raises(RuntimeError, match="target failed"):
        game(np.random.default_rng(0).integers(0, 2, (3, game.n)))
    assert hook_count(lm.model) == 0
    with torch.no_grad():
        assert torch.equal(lm.model(input_ids=ids).logits, before)
