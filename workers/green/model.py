"""GREEN-RadLlama2-7b weights: a Llama 2 causal LM and its tokenizer from the store folder.

Loaded as RadEval 2.2.1 loads it (`radeval/metrics/green_score/green.py`): fp16 on a GPU, fp32 on
the CPU, tokenizer with `add_eos_token=True`, `use_fast=True`, left padding, pad = EOS. Never
with `trust_remote_code`: the released checkpoint is a plain `LlamaForCausalLM`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import WeightsUnavailable
from workers.medval.model import load_lm


def load_judge(path: Path, device: str) -> tuple[Any, Any, str]:
    """(tokenizer, model, device) set up as RadEval's GREEN sets them up."""
    if not (Path(path) / "config.json").is_file():
        raise WeightsUnavailable(f"{Path(path).name} has no config.json; pull the GREEN model")
    tokenizer, model, device = load_lm(
        path, device, gpu_dtype="float16", add_eos_token=True, use_fast=True
    )
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model, device
