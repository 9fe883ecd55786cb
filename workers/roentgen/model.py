"""RoentGen-v2 weights: load the released diffusers layout onto a device.

Loading follows the released code: a `StableDiffusionPipeline` folder, with the fine-tuned text
encoder and tokenizer taken from `text_encoder_and_tokenizer/` when present, no safety checker,
SDPA attention.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

SCHEDULER_EXTRAS: dict[str, dict[str, Any]] = {
    "pndm": {"skip_prk_steps": True},
    "ddim": {"clip_sample": False},
    "dpmsolver++": {"algorithm_type": "dpmsolver++", "solver_order": 2},
}
# diffusers renamed `torch_dtype` to `dtype`; the released code pins 0.35 (old name only).
DTYPE_KEYWORD = (
    "dtype"
    if hasattr(importlib.import_module("diffusers.utils.deprecation_utils"), "_resolve_dtype")
    else "torch_dtype"
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_pipeline(path: Path, device: str, dtype: torch.dtype) -> Any:
    """The released layout -> a StableDiffusionPipeline on `device` in `dtype`."""
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0
    from transformers import CLIPTextModel, CLIPTokenizer

    kwargs: dict[str, Any] = {
        DTYPE_KEYWORD: dtype,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
        "local_files_only": True,
    }
    both = Path(path) / "text_encoder_and_tokenizer"
    if both.is_dir():
        kwargs["text_encoder"] = CLIPTextModel.from_pretrained(both, dtype=dtype)
        kwargs["tokenizer"] = CLIPTokenizer.from_pretrained(both)
    pipe = StableDiffusionPipeline.from_pretrained(str(path), **kwargs)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval().requires_grad_(False)
    return pipe


def make_scheduler(name: str, config: dict[str, Any]) -> Any:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

    classes = {
        "pndm": PNDMScheduler,
        "ddim": DDIMScheduler,
        "dpmsolver++": DPMSolverMultistepScheduler,
    }
    return classes[name].from_config(config, **SCHEDULER_EXTRAS[name])
