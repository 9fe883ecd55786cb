"""MedVAL-4B weights: a Qwen3 causal LM and its tokenizer from the store folder (transformers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_lm(path: Path, device: str) -> tuple[Any, Any, str]:
    """(tokenizer, model, device) with left padding, eval mode, bf16 on GPU and fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device in ("auto", ""):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    model = model.to(device).eval()
    return tokenizer, model, device
