"""Builder for RoentGen-v2: a StableDiffusionPipeline folder in the released layout.

Writes `model_index.json`, `unet/`, `vae/`, `scheduler/`, `text_encoder/`, `tokenizer/` and,
as the released training code does, the fine-tuned text encoder and tokenizer again under
`text_encoder_and_tokenizer/`. Tiny: a few-hundred-kB UNet/VAE/CLIP for tests. Full size: the
SD-2.1-base architecture (UNet ~866M parameters, ViT-H text tower) with random weights, for
benchmarks. The tokenizer is built offline (no vocabulary can be downloaded): byte-level
characters plus whole-word merges for common radiology words.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from model_store.manifest import Manifest

# Released inference settings (configs/infer_config_demo.yaml, inference_code/run_inference.py).
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# SD-2.1-base UNet (research/hf_configs.md §1).
FULL_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "attention_head_dim": (5, 10, 20, 20),
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "upcast_attention": False,
}
TINY_UNET: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (32, 64),
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "attention_head_dim": (2, 4),
    "cross_attention_dim": 32,
    "use_linear_projection": True,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

# SD-2.x VAE; four blocks give the downsampling factor of 8 in both sizes.
FULL_VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
}
TINY_VAE: dict[str, Any] = {
    "block_out_channels": (8, 16, 32, 32),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}

# OpenCLIP ViT-H/14 text tower as used by SD 2.x.
FULL_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "projection_dim": 512,
    "hidden_act": "gelu",
}
TINY_TEXT: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
}

# Words that become single tokens, so typical prompts fit the 77-token window like real BPE.
_WORD_TEXT = """
year old female male white black asian hispanic no acute cardiopulmonary process normal chest
radiograph intrathoracic abnormalities abnormality identified findings impression pleural effusion
effusions pneumothorax consolidation atelectasis cardiomegaly edema pulmonary opacity opacities
left right bilateral lower upper lobe lung lungs heart size mediastinal contours stable mild
moderate severe small large the and of with without is are in on at there as to for since prior
unchanged interval increased decreased new likely possible suggestive concerning pneumonia
infection support devices tube line catheter tip enlarged silhouette hilar vascular congestion
basilar bibasilar subsegmental clear osseous structures intact frontal lateral view views
portable upright supine evidence focal airspace disease within limits
"""
WORDS = _WORD_TEXT.split()


def _tokenizer(max_length: int = 77) -> Any:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in chars:
            vocab[char + suffix] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(WORDS):
        current = word[0]
        for i, char in enumerate(word[1:]):
            nxt = char + ("</w>" if i == len(word) - 2 else "")
            if (current, nxt) not in merges:
                merges.append((current, nxt))
            current += nxt
            vocab.setdefault(current, len(vocab))
    pairs: Any = merges  # the stubs say list[str]; the BPE backend wants pairs
    return CLIPTokenizer(vocab=vocab, merges=pairs, model_max_length=max_length)


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    text_cfg = dict(FULL_TEXT if full_size else TINY_TEXT)
    text_cfg.setdefault("vocab_size", len(tokenizer))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            **text_cfg,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(**(FULL_UNET if full_size else TINY_UNET))
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215,
        **(FULL_VAE if full_size else TINY_VAE),
    )
    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(target, safe_serialization=True)
    # The released repository keeps the fine-tuned text tower here as well.
    both = target / "text_encoder_and_tokenizer"
    shutil.rmtree(both, ignore_errors=True)
    text_encoder.save_pretrained(both, safe_serialization=True)
    tokenizer.save_pretrained(both)
