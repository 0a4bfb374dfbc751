"""A small sparse autoencoder for a demo model, trained here so feature units run offline (issue 33).

The recipe is data (:data:`SAE_RECIPE`): the model, the layer (12: where ``gemma-270m-safety``'s refusal
direction lives), the width, the L1 coefficient, steps, batch, learning rate and seed. Activations are the
residual stream after that layer at every position but BOS of the demo training prompts (harmful and benign
requests, as chat turns). The SAE is a ReLU SAE with its decoder bias subtracted from the input (SAELens's
``standard`` architecture, ``apply_b_dec_to_input``), decoder rows kept at unit norm, trained with Adam on
``‖x − x̂‖² + λ Σ_j f_j ‖W_dec[j]‖``. It is written in SAELens's format (``cfg.json`` +
``sae_weights.safetensors``, float16) with ``card.json``: the recipe, the seed, the minutes it took, the
explained variance and L0 on held-out positions, the share of dead latents.

    python -m diffusiongemma.demo.sae --out src/diffusiongemma/demo/saes/gemma-270m-safety-L12
    python -m diffusiongemma.demo.sae --model gemma-270m-keyword --out src/diffusiongemma/demo/saes/gemma-270m-keyword-L12

The keyword demo model has its own SAE at the same layer (the safety model's reads its activations with an
explained variance of 0.49 only), so ``verify-safety``'s feature check compares the two models' features alike.

Examples:
    >>> SAE_RECIPE["layer"], SAE_RECIPE["width"]
    (12, 1024)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["SAE_RECIPE", "collect_activations", "train_sae", "demo_sae_dir"]

SAE_RECIPE: dict[str, Any] = {"model": "gemma-270m-safety", "layer": 12, "width": 1024, "l1": 3e-3, "steps": 3000,
                              "batch": 512, "lr": 1e-3, "seed": 0, "prompts": 1600, "held_out": 0.1}


def demo_sae_dir(name: str = "gemma-270m-safety-L12") -> Path:
    """The packaged SAE of a demo model."""
    from importlib.resources import files

    return Path(str(files("diffusiongemma.demo") / "saes" / name))


@torch.no_grad()
def collect_activations(lm: Any, prompts: list[str], layer: int) -> torch.Tensor:
    """Residual vectors ``[N, d]`` after decoder layer ``layer`` at every position but BOS of each prompt as
    a chat turn."""
    from ..components.features import layer_output
    from ..generation import chat_ids

    out = [layer_output(lm, chat_ids(lm, p)[0], layer)[1:].float().cpu() for p in prompts]  # [T-1, d]: no BOS
    return torch.cat(out)


def train_sae(x: torch.Tensor, recipe: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train on activations ``x`` ``[N, d]`` (the last ``held_out`` share kept for the figures); returns the
    weights (SAELens names) and the held-out figures."""
    g = torch.Generator().manual_seed(recipe["seed"])
    perm = torch.randperm(x.shape[0], generator=g)
    c = float(x.shape[1] ** 0.5 / x.norm(dim=1).mean())  # trained on x·c (mean norm √d), folded back below
    x = x[perm] * c
    n_test = int(len(x) * recipe["held_out"])
    test, train = x[:n_test], x[n_test:]
    d, width = x.shape[1], recipe["width"]
    torch.manual_seed(recipe["seed"])
    w_dec = torch.randn(width, d)
    w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
    params = {"W_enc": torch.nn.Parameter(w_dec.T.clone()), "W_dec": torch.nn.Parameter(w_dec.clone()),
              "b_enc": torch.nn.Parameter(torch.zeros(width)), "b_dec": torch.nn.Parameter(train.median(0).values)}
    opt = torch.optim.Adam(params.values(), lr=recipe["lr"])
    scale = train.pow(2).sum(1).mean()  # loss in units of the mean squared norm

    def forward(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu((batch - params["b_dec"]) @ params["W_enc"] + params["b_enc"])  # [B, width]
        return f, f @ params["W_dec"] + params["b_dec"]

    for _step in range(recipe["steps"]):
        idx = torch.randint(0, len(train), (recipe["batch"],), generator=g)
        batch = train[idx]
        f, rec = forward(batch)
        mse = (batch - rec).pow(2).sum(1).mean() / scale
        sparsity = (f * params["W_dec"].norm(dim=1)).sum(1).mean()
        loss = mse + recipe["l1"] * sparsity
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            params["W_dec"].data /= params["W_dec"].data.norm(dim=1, keepdim=True)
    with torch.no_grad():
        f, rec = forward(test)
        ev = 1 - (test - rec).pow(2).sum() / (test - test.mean(0)).pow(2).sum()
        fired = (forward(train[:20000])[0] > 0).any(0)
    figures = {"explained_variance": round(float(ev), 4), "l0": round(float((f > 0).float().sum(1).mean()), 2),
               "dead_share": round(float(1 - fired.float().mean()), 4), "train_vectors": len(train),
               "test_vectors": n_test, "input_scale": c}
    w = {k: v.detach() for k, v in params.items()}
    # the same SAE on raw activations: f = relu((x − b/c)(c·W_enc) + b_enc), x̂ = f (W_dec / c) + b/c
    return {"W_enc": w["W_enc"] * c, "W_dec": w["W_dec"] / c, "b_enc": w["b_enc"], "b_dec": w["b_dec"] / c}, figures


def held_out_figures(lm: Any, folder: Path, layer: int, data: Any, n: int = 100) -> dict[str, float]:
    """The saved SAE (as :func:`~diffusiongemma.components.features.load_sae` reads it) on prompts it was not
    trained on: held-out harmful and benign requests, half each."""
    from ..components.features import load_sae

    prompts = [r.text for r in data.harmful_test[: n // 2]] + [r.text for r in data.benign_test[: n // 2]]
    x = collect_activations(lm, prompts, layer)
    load_sae.cache_clear()
    sae = load_sae(folder)
    f = sae.encode(x)
    rec = f @ sae.w_dec + sae.b_dec
    ev = 1 - (x - rec).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    return {"held_out_prompts_explained_variance": round(float(ev), 4),
            "held_out_prompts_l0": round(float((f > 0).float().sum(1).mean()), 2), "held_out_prompts": len(prompts)}


def main() -> None:
    from safetensors.torch import save_file

    from ..models import load_model
    from ..models.provenance import library_versions
    from .datasets import load_demo_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default=SAE_RECIPE["model"], help="the demo model whose activations it learns")
    a = ap.parse_args()
    recipe = {**SAE_RECIPE, "model": a.model}
    t0 = time.perf_counter()
    torch.manual_seed(recipe["seed"])
    lm = load_model(recipe["model"], device="cpu")
    data = load_demo_data()
    half = recipe["prompts"] // 2
    prompts = [r.text for r in data.harmful_train[:half]] + [r.text for r in data.benign_train[:half]]
    x = collect_activations(lm, prompts, recipe["layer"])
    collected = time.perf_counter() - t0
    weights, figures = train_sae(x, recipe)
    a.out.mkdir(parents=True, exist_ok=True)
    # W_enc is small (× the input scale): float32 keeps it exact; the rest in float16 keeps the file small
    save_file({k: (v if k == "W_enc" else v.half()).contiguous() for k, v in weights.items()},
              str(a.out / "sae_weights.safetensors"))
    cfg = {"architecture": "standard", "d_in": x.shape[1], "d_sae": recipe["width"], "dtype": "float32",
           "hook_name": f"blocks.{recipe['layer']}.hook_resid_post", "apply_b_dec_to_input": True,
           "model_name": recipe["model"], "normalize_activations": "none"}
    (a.out / "cfg.json").write_text(json.dumps(cfg, indent=1) + "\n")
    figures.update(held_out_figures(lm, a.out, recipe["layer"], data))
    card = {"name": a.out.name, "recipe": recipe, "prompts": len(prompts), "figures": figures,
            "minutes": {"activations": round(collected / 60, 2), "total": round((time.perf_counter() - t0) / 60, 2)},
            "base_weights_sha256": lm.provenance.get("weights_sha256"),
            "adapter_sha256": lm.provenance.get("adapter_sha256"), "versions": library_versions()}
    (a.out / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card["figures"]), card["minutes"])


if __name__ == "__main__":
    main()
