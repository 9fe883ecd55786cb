"""Causal LM weights (MedVAL-4B: a Qwen3) and their tokenizer from a store folder (transformers).

`load_lm` is the one loader of the chat-generation families (MedVAL, GREEN): left padding, eval
mode, fp32 on the CPU and `gpu_dtype` on a GPU, tokenizer options passed through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_lm(
    path: Path, device: str, *, gpu_dtype: str = "bfloat16", **tokenizer_options: Any
) -> tuple[Any, Any, str]:
    """(tokenizer, model, device) with left padding, eval mode, `gpu_dtype` on GPU, fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device in ("auto", ""):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else getattr(torch, gpu_dtype)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, **tokenizer_options)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    model = model.to(device).eval()
    return tokenizer, model, device
