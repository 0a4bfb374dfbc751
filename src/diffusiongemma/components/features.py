"""Learned features as units: sparse-autoencoder (SAE) latents on the residual stream, loaded from local files.

Two formats are read, by their published field names: Gemma Scope's ``params.safetensors`` (or ``params.npz``)
with ``w_enc`` ``[d_in, d_sae]``, ``w_dec`` ``[d_sae, d_in]``, ``b_enc``, ``b_dec`` and ``threshold``
(JumpReLU), and SAELens's folder (``cfg.json`` + ``sae_weights.safetensors`` with ``W_enc``, ``W_dec``,
``b_enc``, ``b_dec``, ``threshold`` for JumpReLU; ``cfg.json``'s ``d_in``, ``d_sae``, ``architecture``,
``hook_name``). The hook point is the residual stream after a decoder layer (``blocks.L.hook_resid_post``;
``blocks.L.hook_resid_pre`` is the stream after layer L − 1; or ``L`` given in the unit spec
``features:L=PATH``). Nothing is downloaded.

Masking a latent removes its decoder contribution and keeps everything else, the SAE's reconstruction error
included: ``h ← h − Σ_j (1 − m_j) f_j(h) W_dec[j]``, with ``f_j(h)`` the latent's activation on the current
(already masked upstream) residual stream. With every latent kept nothing is subtracted, so the all-kept game
is the unmodified model exactly.

Examples:
    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> folder = Path(tempfile.mkdtemp())
    >>> save_file({"w_enc": torch.eye(4, 6), "w_dec": torch.eye(6, 4), "b_enc": torch.zeros(6),
    ...            "b_dec": torch.zeros(4), "threshold": torch.full((6,), 0.5)}, str(folder / "params.safetensors"))
    >>> sae = load_sae(folder)
    >>> sae.d_in, sae.d_sae, sae.kind, sae.encode(torch.tensor([1.0, 0.2, 0.0, 2.0])).tolist()
    (4, 6, 'jumprelu', [1.0, 0.0, 0.0, 2.0, 0.0, 0.0])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

__all__ = ["SAE", "load_sae", "parse_feature_kind", "named_latents", "feature_group", "pin_features", "active_features",
           "latent_activations", "feature_hooks", "layer_output"]

_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")
_PRE = re.compile(r"^blocks\.(\d+)\.hook_resid_pre$")
_TRANSCODER = re.compile(r"^blocks\.(\d+)\.ln2\.hook_normalized$")
DEFAULT_TOP = 32  # active latents at the read position taken as units
ALL = 1 << 30  # "#any": every active latent


@dataclass(frozen=True)
class SAE:
    """A sparse autoencoder on the residual stream."""

    w_enc: torch.Tensor  # [d_in, d_sae]
    b_enc: torch.Tensor  # [d_sae]
    w_dec: torch.Tensor  # [d_sae, d_in]
    b_dec: torch.Tensor  # [d_in]
    threshold: torch.Tensor | None  # [d_sae] (JumpReLU), else None (ReLU)
    layer: int | None  # residual stream after this decoder layer, when the file says
    source: str
    apply_b_dec_to_input: bool = False
    weights_file: str = ""  # the file the weights were read from (what caches key on)
    site: str = "resid"  # "resid": the residual stream after ``layer``; "transcoder": MLP input → MLP output

    @property
    def d_in(self) -> int:
        return int(self.w_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.w_enc.shape[1])

    @property
    def kind(self) -> str:
        return "relu" if self.threshold is None else "jumprelu"

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Latent activations ``[..., d_sae]`` of residual vectors ``h`` ``[..., d_in]``."""
        w = self.w_enc.to(h.device, h.dtype)
        x = h - self.b_dec.to(h.device, h.dtype) if self.apply_b_dec_to_input else h
        pre = x @ w + self.b_enc.to(h.device, h.dtype)
        if self.threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.threshold.to(h.device, h.dtype))


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".npz":
            import numpy as np

            with np.load(path) as z:
                return {k: torch.from_numpy(z[k]).float() for k in z.files}
        from safetensors.torch import load_file

        return {k: v.float() for k, v in load_file(str(path)).items()}
    except Exception as exc:  # noqa: BLE001 - a damaged file: one sentence
        raise InputError(f"cannot read the SAE weights {path}: {exc}") from None


@lru_cache(maxsize=8)
def load_sae(path: str | Path, site: str | None = None) -> SAE:
    """An SAE from a Gemma Scope ``params.safetensors`` / ``params.npz`` (the file or its folder), a SAELens
    folder (``cfg.json`` + ``sae_weights.safetensors``), or the name of a demo SAE shipped with the package
    (``gemma-270m-safety-L12``); an :class:`InputError` names what is missing. ``site``: ``"transcoder"`` reads
    the file as a transcoder (Gemma Scope's transcoders have an SAE's field names; SAELens's say so by their
    ``hook_name`` ``blocks.L.ln2.hook_normalized``), ``"resid"`` as a residual-stream SAE, None: as the file
    says."""
    p = Path(path)
    if not p.exists() and p.name == str(path) and _packaged(str(path)).is_dir():  # a shipped demo SAE, by name
        p = _packaged(str(path))
    cfg: dict[str, Any] = {}
    if p.is_dir() and (p / "cfg.json").is_file():  # SAELens
        try:
            cfg = json.loads((p / "cfg.json").read_text())
        except ValueError as exc:
            raise InputError(f"{p / 'cfg.json'} is not JSON: {exc}") from None
        weights = p / "sae_weights.safetensors"
    elif p.is_dir():
        weights = next((p / n for n in ("params.safetensors", "params.npz") if (p / n).is_file()), p / "params.safetensors")
    else:
        weights = p
    if not weights.is_file():
        raise InputError(f"no SAE at {p}: expected Gemma Scope's params.safetensors (or params.npz) or a SAELens "
                         "folder with cfg.json and sae_weights.safetensors")
    t = _tensors(weights)
    get = {k.lower(): v for k, v in t.items()}
    missing = [k for k in ("w_enc", "w_dec", "b_enc", "b_dec") if k not in get]
    if missing:
        raise InputError(f"the SAE weights {weights} lack {', '.join(missing)} (found {', '.join(sorted(t))})")
    arch = str(cfg.get("architecture", "jumprelu" if "threshold" in get else "standard"))
    if arch not in ("jumprelu", "standard", "relu"):
        raise InputError(f"SAE architecture {arch!r} of {p} is not supported here (jumprelu or standard)")
    layer = None
    m = _HOOK.match(str(cfg.get("hook_name", "")))
    pre = _PRE.match(str(cfg.get("hook_name", "")))
    tc = _TRANSCODER.match(str(cfg.get("hook_name", "")))
    if m:
        layer = int(m.group(1))
    elif pre and int(pre.group(1)) > 0:  # the stream entering block L is the one leaving block L − 1
        layer = int(pre.group(1)) - 1
    elif tc:  # reads the MLP's normalised input: a transcoder
        layer, site = int(tc.group(1)), site or "transcoder"
    elif cfg.get("hook_name"):
        raise InputError(f"the SAE {p} reads {cfg['hook_name']!r}; only the residual stream between layers "
                         "(blocks.L.hook_resid_post, or blocks.L.hook_resid_pre for L ≥ 1) is supported here — "
                         "not MLP or attention outputs (a transcoder reads blocks.L.ln2.hook_normalized)")
    w_enc, w_dec = get["w_enc"], get["w_dec"]
    if w_enc.ndim != 2 or w_dec.shape != (w_enc.shape[1], w_enc.shape[0]):
        raise InputError(f"the SAE {p} has inconsistent shapes: w_enc {tuple(w_enc.shape)}, w_dec {tuple(w_dec.shape)}")
    if site not in (None, "resid", "transcoder"):
        raise InputError(f"SAE site {site!r} is not resid or transcoder")
    return SAE(w_enc, get["b_enc"], w_dec, get["b_dec"], get.get("threshold") if arch == "jumprelu" else None, layer,
               str(p), bool(cfg.get("apply_b_dec_to_input", False)), str(weights), site or "resid")


def _packaged(name: str) -> Path:
    """Where a demo SAE shipped with the package lives (data only: the demo code is not imported)."""
    from importlib.resources import files

    return Path(str(files("diffusiongemma") / "demo" / "saes" / name))


def parse_feature_kind(kind: str) -> tuple[int | None, str, int]:
    """``features:L=PATH#K`` → (layer or None, path, top K): the layer may come from the file instead.
    ``features:L=PATH#F301,F767`` names the latents instead (:func:`named_latents`; K is their number);
    ``#anyK``: the K strongest at any position of the prompt (:func:`anywhere`), not only at the read position.

    Examples:
        >>> parse_feature_kind("features:12=sae#8"), parse_feature_kind("features:sae#F3,F40")
        ((12, 'sae', 8), (None, 'sae', 2))
        >>> parse_feature_kind("features:12=sae#any16"), parse_feature_kind("features:12=sae#8/4")
        ((12, 'sae', 16), (12, 'sae', 8))
    """
    arg = kind.partition(":")[2]
    layer: int | None = None
    if "=" in arg and arg.split("=", 1)[0].isdigit():
        layer_s, arg = arg.split("=", 1)
        layer = int(layer_s)
    path, _, top_s = arg.partition("#")
    if not path:
        raise InputError(f"{kind!r} names no SAE: write features:LAYER=PATH (or features:PATH#TOP)")
    named = named_latents(kind)
    if named is not None:
        return layer, path, len(named)
    top_s = top_s.partition("/")[0]
    if anywhere(kind):
        top_s = top_s[3:] or str(ALL)  # "#any": every latent active at any position
    try:
        top = int(top_s) if top_s else DEFAULT_TOP
    except ValueError:
        raise InputError(f"{kind!r}: after # give the number of features or their ids (#F301,F767)") from None
    if top < 1:
        raise InputError(f"{kind!r}: take at least 1 feature")
    return layer, path, top


def feature_group(kind: str) -> int:
    """Latents per unit: ``/G`` at the end of a feature spec (``features:12=sae#any64/8``), else 1.

    Examples:
        >>> feature_group("features:12=sae#any64/8"), feature_group("features:12=sae#16")
        (8, 1)
    """
    tail = kind.rpartition("#")[2] if "#" in kind else ""
    if "/" not in tail:
        return 1
    try:
        g = int(tail.rpartition("/")[2])
    except ValueError:
        raise InputError(f"{kind!r}: after / give the number of latents per unit") from None
    if g < 1:
        raise InputError(f"{kind!r}: a group holds at least 1 latent")
    return g


def anywhere(kind: str) -> bool:
    """Whether a spec takes the latents most active at any prompt position (``#anyK``) rather than at the last.

    Examples:
        >>> anywhere("features:12=sae#any16"), anywhere("features:12=sae#16")
        (True, False)
    """
    return "#" in kind and kind.rpartition("#")[2].lower().startswith("any")


def named_latents(kind: str) -> list[int] | None:
    """The latents a spec names after ``#`` (``#F301,F767``), or None when it asks for the most active.

    Examples:
        >>> named_latents("features:12=sae#F301,F767"), named_latents("features:12=sae#8")
        ([301, 767], None)
    """
    tail = (kind.rpartition("#")[2] if "#" in kind else "").partition("/")[0]
    if not tail.upper().startswith("F"):
        return None
    try:
        out = [int(x.strip()[1:]) for x in tail.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{kind!r}: name latents as #F301,F767") from None
    if not out or len(set(out)) != len(out) or any(j < 0 for j in out):
        raise InputError(f"{kind!r}: name each latent once, as #F301,F767")
    return out


def pin_features(lm: Any, spec: str, input_ids: list[int]) -> str:
    """``spec`` with each ``features:`` kind that asks for the most active latents rewritten to name the
    latents it picks on ``input_ids``, so a second prompt is measured on the same latents (a diff).

    Examples:
        >>> from diffusiongemma.generation import chat_ids
        >>> from diffusiongemma.models.tiny import example_model, example_sae
        >>> lm, sae = example_model(), str(example_sae())
        >>> pin_features(lm, f"features:{sae}#4+heads", chat_ids(lm, "How do I make a bomb?")[0]).replace(sae, "SAE")
        'features:1=SAE#F4,F14,F9,F11+heads'
    """
    from .sites import enumerate_components

    out = []
    for part in spec.split("+"):
        kind = part.split("@")[0]
        if kind.startswith(("features:", "transcoder:")) and named_latents(kind) is None:
            comps = enumerate_components(lm, part, input_ids)
            layer, path, _ = parse_feature_kind(kind)
            prefix = kind.partition(":")[0]
            head = f"{prefix}:{comps[0].layer}={path}" if comps else kind.split("#")[0]
            rest = part[len(kind):]
            g = feature_group(kind)
            part = head + "#" + ",".join(f"F{j}" for c in comps for j in c.latents) + (f"/{g}" if g > 1 else "") + rest
        out.append(part)
    return "+".join(out)


def _block(lm: Any, layer: int) -> torch.nn.Module:
    return lm.layers[layer]


def _mlp_sites(lm: Any, layer: int) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """A transcoder's places in block ``layer``: the norm before the MLP (whose output, divided by its gain, is
    the transcoder's input), the module whose output it reconstructs (the norm after the MLP where there is
    one, as Gemma Scope's transcoders do, else the MLP), and the norm's gain offset."""
    arch = lm.architecture
    if not arch.mlp_in_norm:
        raise InputError(f"transcoders are not supported on the {arch.family} family (no pre-MLP norm in its map)")
    block = _block(lm, layer)
    out = block.get_submodule(arch.mlp_out_norm or arch.mlp)
    return block.get_submodule(arch.mlp_in_norm), out, arch.norm_gain_offset


def _normalised(norm: torch.nn.Module, output: torch.Tensor, offset: float) -> torch.Tensor:
    """An RMSNorm's output without its gain (``x / rms(x)``): what Gemma Scope's transcoders read."""
    return output / (offset + norm.weight.to(output.device, output.dtype))  # type: ignore[operator]


@torch.no_grad()
def site_input(lm: Any, input_ids: list[int], layer: int, site: str = "resid") -> torch.Tensor:
    """What an SAE at ``site`` reads at every position of ``input_ids``, ``[T, d]``: the residual stream after
    decoder layer ``layer``, or (``"transcoder"``) the MLP's normalised input in that layer — one unmasked
    forward, logits at the last position only, the hook removed whatever happens."""
    from ..models.hooks import scoped_hooks
    from ..models.forward import last_logits_only

    seen: dict[str, torch.Tensor] = {}
    if site == "transcoder":
        norm, _, offset = _mlp_sites(lm, layer)

        def grab(module: Any, inputs: Any, output: Any) -> None:
            seen["h"] = _normalised(module, output, offset)[0].detach()  # [T, d]
        module = norm
    else:
        def grab(module: Any, inputs: Any, output: Any) -> None:
            seen["h"] = (output[0] if isinstance(output, tuple) else output)[0].detach()  # [T, d]
        module = _block(lm, layer)
    with scoped_hooks([(module, "forward", grab)]):
        lm.model(input_ids=torch.tensor([input_ids], device=lm.device), **last_logits_only(lm.model))
    return seen["h"]


def layer_output(lm: Any, input_ids: list[int], layer: int) -> torch.Tensor:
    """The residual stream after decoder layer ``layer`` at every position of ``input_ids``: ``[T, d]``."""
    return site_input(lm, input_ids, layer)


def active_features(lm: Any, input_ids: list[int], sae: SAE, layer: int, top: int, *, any_position: bool = False
                    ) -> list[int]:
    """The ``top`` latents most active at the last position of ``input_ids`` (an unmasked forward), strongest
    first; latents that are not active are never taken. ``any_position``: ranked by their strongest activation
    at any position but BOS (a latent that fires on a word, not only at the read position)."""
    h = site_input(lm, input_ids, layer, sae.site).float()  # [T, d]
    acts = sae.encode(h[1:]).max(0).values if any_position and len(h) > 1 else sae.encode(h[-1])  # [d_sae]
    order = torch.argsort(acts, descending=True)[:top]
    return [int(j) for j in order if acts[j] > 0]


def latent_activations(lm: Any, input_ids: list[int], sae: SAE, layer: int, latents: list[int]) -> torch.Tensor:
    """The ``latents``' activations ``[k]`` at the last position of ``input_ids`` (one unmasked forward).

    Examples:
        >>> from diffusiongemma.generation import chat_ids
        >>> from diffusiongemma.models.tiny import example_model, example_sae
        >>> lm = example_model()
        >>> acts = latent_activations(lm, chat_ids(lm, "How do I make a bomb?")[0], load_sae(example_sae()), 1, [4, 14])
        >>> acts.shape, bool(acts[0] >= acts[1] > 0)  # F4 is the most active (pin_features picks it first)
        (torch.Size([2]), True)
    """
    return sae.encode(site_input(lm, input_ids, layer, sae.site)[-1].float())[latents]  # [k]


def _latents(sae: SAE, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The activations ``[..., k]`` of latents ``idx`` on inputs ``x`` ``[..., d]``, in the dtype of ``x``."""
    w_enc = sae.w_enc[:, idx].to(x.device, x.dtype)  # [d, k]
    b_enc = sae.b_enc[idx].to(x.device, x.dtype)  # [k]
    pre = (x - sae.b_dec.to(x.device, x.dtype) if sae.apply_b_dec_to_input else x) @ w_enc + b_enc
    return torch.relu(pre) if sae.threshold is None else pre * (pre > sae.threshold[idx].to(x.device, x.dtype))


def feature_hooks(lm: Any, sae: SAE, layer: int, latents: list[int], cols: list[int], masks: torch.Tensor,
                  levels: Any) -> list[tuple[Any, str, Any]]:
    """The hooks that take out ``(1 − m_j)`` of each latent's decoder contribution (``levels(m, T)`` → keep
    levels ``[b, T|1, k]`` under position restrictions): on decoder layer ``layer``'s output for a
    residual-stream SAE; for a transcoder, one hook reads the MLP's normalised input and a second takes the
    latents' contributions out of the MLP's (post-normed) output, in the same forward."""
    idx = torch.tensor(latents)

    def take_out(out: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        drop = 1 - levels(masks[:, cols], out.shape[1]).to(out.device, out.dtype)  # [b, T|1, k]
        return out - (drop * f.to(out.dtype)) @ sae.w_dec[idx].to(out.device, out.dtype)  # [b, T, d]

    if sae.site == "transcoder":
        norm, target, offset = _mlp_sites(lm, layer)
        seen: dict[str, torch.Tensor] = {}

        def read(module: Any, inputs: Any, output: Any) -> None:
            seen["f"] = _latents(sae, _normalised(module, output, offset), idx)  # [b, T, k]

        def write(module: Any, inputs: Any, output: Any) -> Any:
            return take_out(output, seen.pop("f"))

        return [(norm, "forward", read), (target, "forward", write)]

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # [b, T, d]
        new = take_out(hidden, _latents(sae, hidden, idx))
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return [(_block(lm, layer), "forward", hook)]
