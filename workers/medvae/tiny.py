"""Builder for MedVAE: random weights written in the released layout and checkpoint format.

`model_weights/<config>.yaml` (flat for 4x1/8x1/3D, LDM-style `model.params` for the LoRA
variants) and `model_weights/<ckpt>.ckpt` = `{"state_dict": ...}` with the released key names,
LoRA branches included. Tiny: ch 32, one res block per level. Full size: the published LDM
kl-f4/kl-f8 shape (ch 128, ch_mult [1,2,4] or [1,2,4,4], two res blocks per level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from model_store.manifest import Manifest


def ddconfig_for(variant: Any, full_size: bool, options: dict[str, Any]) -> dict[str, Any]:
    levels = 3 if variant.factor == 4 else 4
    channels = 1 if variant.latent_channels == 1 or variant.dims == 3 else 3
    if full_size:
        ch, mult, blocks, res = 128, [1, 2, 4, 4][:levels], 2, 512 if variant.factor == 4 else 256
    else:
        ch = int(options.get("ch", 32))
        mult, blocks, res = [1, 2, 2, 2][:levels], int(options.get("num_res_blocks", 1)), 64
    return {
        "double_z": True,
        "z_channels": variant.latent_channels,
        "resolution": res,
        "in_channels": channels,
        "out_ch": channels,
        "ch": ch,
        "ch_mult": mult,
        "num_res_blocks": blocks,
        "attn_resolutions": [],
        "dropout": 0.0,
    }


def config_text(ddconfig: dict[str, Any], embed_dim: int, nested: bool) -> str:
    body: dict[str, Any] = {"ddconfig": ddconfig, "embed_dim": embed_dim}
    if nested:
        body = {
            "model": {
                "base_learning_rate": 4.5e-6,
                "target": "ldm.models.autoencoder.AutoencoderKL",
                "params": {"monitor": "val/rec_loss", **body},
            }
        }
    return yaml.safe_dump(body, sort_keys=False)


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    import torch

    from workers.medvae.autoencoder import MedVAE, inject_lora
    from workers.medvae.model import LORA_RANK, VARIANTS, WEIGHTS_DIR

    variant = VARIANTS[manifest.adapter["variant"]]
    ddconfig = ddconfig_for(variant, full_size, manifest.tiny)
    torch.manual_seed(seed)
    model = MedVAE(variant.dims, ddconfig, variant.latent_channels)
    if variant.lora:
        inject_lora(model, LORA_RANK)
        # Released LoRA branches are trained; random ones must not be zero or they test nothing.
        for name, param in model.named_parameters():
            if name.endswith("lora_up.weight"):
                torch.nn.init.normal_(param, std=0.05)
    folder = target / WEIGHTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / variant.config).write_text(
        config_text(ddconfig, variant.latent_channels, variant.lora)
    )
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0}, folder / variant.ckpt)
