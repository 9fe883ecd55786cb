"""Load a released MedVAE checkpoint (YAML config + `{"state_dict": ...}` .ckpt) into `MedVAE`.

The store folder mirrors the Hugging Face layout (`model_weights/medvae_4x1.yaml`,
`model_weights/vae_4x_1c_2D.ckpt`, ...). The converter handles the three released shapes of a
checkpoint: plain 2D, LoRA (rank-4 branches inside every ResnetBlock/AttnBlock convolution, folded
into the weights after loading), and 3D (including 2D kernels inflated into the middle slice of the
last kernel axis, as the released 3D loader does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from core.errors import WeightsUnavailable
from workers.medvae.autoencoder import MedVAE, inject_lora, merge_lora

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One released model: where its files are and what it does."""

    key: str
    dims: int
    factor: int
    latent_channels: int
    config: str
    ckpt: str
    lora: bool = False


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("medvae_4_1_2d", 2, 4, 1, "medvae_4x1.yaml", "vae_4x_1c_2D.ckpt"),
        Variant("medvae_4_3_2d", 2, 4, 3, "medvae_4x3.yaml", "vae_4x_3c_2D.ckpt", lora=True),
        Variant("medvae_8_1_2d", 2, 8, 1, "medvae_8x1.yaml", "vae_8x_1c_2D.ckpt"),
        Variant("medvae_8_4_2d", 2, 8, 4, "medvae_8x4.yaml", "vae_8x_4c_2D.ckpt", lora=True),
        Variant("medvae_4_1_3d", 3, 4, 1, "medvae_4x1.yaml", "vae_4x_1c_3D.ckpt"),
        Variant("medvae_8_1_3d", 3, 8, 1, "medvae_8x1.yaml", "vae_8x_1c_3D.ckpt"),
    )
}
WEIGHTS_DIR = "model_weights"
LORA_RANK = 4
IGNORED_PREFIXES = ("loss.", "model_ema.", "discriminator.")


def read_config(path: Path) -> tuple[dict[str, Any], int]:
    """(ddconfig, embed_dim) from a flat YAML or an LDM-style one under model.params."""
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise WeightsUnavailable(f"{path.name} is not a MedVAE config (expected a YAML mapping)")
    node = doc
    if "ddconfig" not in node:
        node = (doc.get("model") or {}).get("params") or {}
    if "ddconfig" not in node or "embed_dim" not in node:
        raise WeightsUnavailable(f"{path.name} has no ddconfig/embed_dim (flat or model.params)")
    return dict(node["ddconfig"]), int(node["embed_dim"])


def read_state_dict(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """The `state_dict` of a checkpoint, read with `weights_only` unless the file is trusted."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # non-tensor objects in a Lightning checkpoint
        if not allow_pickle:
            raise WeightsUnavailable(
                f"{path.name} holds objects beyond tensors; only checkpoints pulled from the "
                "pinned revision (sha256-checked) are unpickled"
            ) from exc
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path.name} has no state_dict")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _inflate(param: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A 2D kernel placed in the middle slice of the last axis of a 3D kernel, zeros elsewhere."""
    out = torch.zeros_like(target)
    out[..., target.shape[-1] // 2] = param
    return out


def load_weights(
    model: MedVAE, state: dict[str, torch.Tensor], *, lora: bool, merge: bool = True
) -> dict[str, Any]:
    """Copy a released state dict into `model` (in place). Returns a short load report."""
    has_lora = any(".lora_down." in k for k in state)
    if lora or has_lora:
        inject_lora(model, LORA_RANK)
    own = model.state_dict()
    ignored, inflated = [], 0
    for key, value in state.items():
        if key.startswith(IGNORED_PREFIXES) or key not in own:
            ignored.append(key)
            continue
        target = own[key]
        if value.shape == target.shape:
            target.copy_(value)
        elif value.dim() == 4 and target.dim() == 5 and value.shape == target.shape[:-1]:
            target.copy_(_inflate(value, target))
            inflated += 1
        else:
            raise WeightsUnavailable(
                f"checkpoint tensor {key} has shape {tuple(value.shape)}, the config says "
                f"{tuple(target.shape)}: config and checkpoint do not belong together"
            )
    missing = [k for k in own if k not in state]
    stage2 = not any(k.startswith(("channel_ds.", "channel_proj.")) for k in missing)
    core = [k for k in missing if not k.startswith(("channel_ds.", "channel_proj."))]
    if core:
        raise WeightsUnavailable(
            f"checkpoint lacks {len(core)} tensors of the autoencoder (first: {core[0]})"
        )
    merged = merge_lora(model) if merge else 0
    if ignored:
        log.info("medvae: %d checkpoint tensors not used by inference", len(ignored))
    return {"ignored": len(ignored), "inflated": inflated, "lora_merged": merged, "stage2": stage2}


def load_variant(
    root: Path, variant: Variant, *, allow_pickle: bool = False, merge_lora: bool = True
) -> tuple[MedVAE, dict[str, Any]]:
    """Build and load one variant from a store folder laid out like the released repository."""
    config = root / WEIGHTS_DIR / variant.config
    ckpt = root / WEIGHTS_DIR / variant.ckpt
    for path in (config, ckpt):
        if not path.exists():
            raise WeightsUnavailable(f"{variant.key}: {WEIGHTS_DIR}/{path.name} is missing")
    ddconfig, embed_dim = read_config(config)
    model = MedVAE(variant.dims, ddconfig, embed_dim)
    if model.factor != variant.factor or embed_dim != variant.latent_channels:
        raise WeightsUnavailable(
            f"{variant.key}: config gives {model.factor}x / {embed_dim} channels, expected "
            f"{variant.factor}x / {variant.latent_channels}"
        )
    report = load_weights(
        model, read_state_dict(ckpt, allow_pickle), lora=variant.lora, merge=merge_lora
    )
    return model.eval(), report
