"""Merlin's report-generation model: I3D ResNet tokens -> Linear(2048, 4096) -> RadLLaMA-7B.

Store folder (Hugging Face layout of `stanfordmimi/Merlin`, plus a local copy of what the
released package downloads at run time):

    <store>/resnet_gpt2_best_stanford_report_generation_average_mtl.pt   (merlin-vlm 0.0.7,
            `RadiologyReport=True`; `..._average.pt` is `RadiologyReportStage1_Stage2=True`)
    <store>/RadLLaMA-7b/   config.json (+ generation_config.json) and the tokenizer files of
            StanfordAIMI/RadLLaMA-7b; its weights are not needed

The checkpoint holds the whole `Clip3DForTextGeneration` state: the vision body
(`encode_image.vision_model.features.N`), the adapter (`adapter.linear2`) and the PEFT-wrapped
decoder (`decode_text.text_decoder.base_model.model.*`, LoRA r=512, alpha=16 on q/v). The LoRA
branches are folded into the base weights at load time, so inference needs no peft.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import WeightsUnavailable
from workers.merlin.i3d import FEATURE_DIM, I3ResNet, body_shape, resnet2d
from workers.merlin.model import load_into, read_state_dict

log = logging.getLogger(__name__)

REPORT_CHECKPOINTS = {
    "mtl": "resnet_gpt2_best_stanford_report_generation_average_mtl.pt",
    "stage1_stage2": "resnet_gpt2_best_stanford_report_generation_average.pt",
}
LLM_DIR = "RadLLaMA-7b"
LORA_ALPHA = 16
PROMPT_MAX_LENGTH = 1024
IMAGE_PREFIX = "encode_image.vision_model.features."
DECODER_PREFIX = "decode_text.text_decoder.base_model.model."
ADAPTER_PREFIX = "adapter."
# Position in the released nn.Sequential -> I3ResNet attribute.
FEATURE_NAMES = {
    "0": "conv1",
    "1": "bn1",
    "4": "layer1",
    "5": "layer2",
    "6": "layer3",
    "7": "layer4",
}


class VisionFeatures(nn.Module):
    """The I3ResNet body as the released `nn.Sequential` named `features`."""

    def __init__(self, body: I3ResNet) -> None:
        super().__init__()
        self.features = nn.Sequential(
            body.conv1, body.bn1, body.relu, body.maxpool,
            body.layer1, body.layer2, body.layer3, body.layer4,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W,D] -> [B, D/16 * H/32 * W/32, 2048] (490 tokens at 224x224x160)."""
        x = self.features(I3ResNet.to_slices_first(x))
        return x.flatten(2).transpose(1, 2)


class ReportImageEncoder(nn.Module):
    def __init__(self, body: I3ResNet) -> None:
        super().__init__()
        self.vision_model = VisionFeatures(body)


class Adapter(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear2 = nn.Linear(FEATURE_DIM, hidden)


class ReportModel(nn.Module):
    """Image tokens, adapter and a causal LM with the LoRA folded in, plus its tokenizer."""

    def __init__(self, body: I3ResNet, decoder: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.encode_image = ReportImageEncoder(body)
        self.adapter = Adapter(decoder.config.hidden_size)
        self.decoder = decoder
        self.tokenizer = tokenizer

    def image_tokens(self, volumes: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W,D] -> [B,N,hidden]: the prefix the decoder reads before the prompt."""
        return self.adapter.linear2(self.encode_image.vision_model(volumes))

    def prompt_embeddings(self, prompt: str, batch: int) -> torch.Tensor:
        """The prompt's token embeddings, its first token (BOS) dropped as released."""
        ids = self.tokenizer(
            [prompt] * batch,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=PROMPT_MAX_LENGTH,
        ).input_ids[:, 1:]
        embed = self.decoder.get_input_embeddings()
        return embed(ids.to(embed.weight.device))


def _vision_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The vision tensors renamed to I3ResNet attribute names (`features.4.0.x` -> `layer1.0.x`)."""
    out = {}
    for key, value in state.items():
        if key.startswith(IMAGE_PREFIX):
            index, rest = key[len(IMAGE_PREFIX) :].split(".", 1)
            if index in FEATURE_NAMES:
                out[f"{FEATURE_NAMES[index]}.{rest}"] = value
    return out


def fold_lora(state: dict[str, torch.Tensor], alpha: float = LORA_ALPHA) -> dict[str, torch.Tensor]:
    """Decoder tensors with W + (alpha/r) B A folded in; both PEFT key layouts are accepted
    (`x.base_layer.weight` from peft >= 0.7, `x.weight` from older releases)."""
    base: dict[str, torch.Tensor] = {}
    lora: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            module, part = key.split(".lora_", 1)
            lora.setdefault(module, {})[part[0]] = value
        else:
            base[key.replace(".base_layer.", ".")] = value
    for module, pair in lora.items():
        name = f"{module}.weight"
        if set(pair) != {"A", "B"} or name not in base:
            raise WeightsUnavailable(f"LoRA branch {module} is incomplete in the checkpoint")
        a, b = pair["A"].float(), pair["B"].float()
        base[name] = base[name].float() + (alpha / a.shape[0]) * (b @ a)
    return base


def _decoder_from_config(folder: Path) -> tuple[nn.Module, Any]:
    """A causal LM built on the meta device from the local config, and its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    if not (folder / "config.json").is_file():
        raise WeightsUnavailable(
            f"{LLM_DIR}/config.json is missing: copy the config and tokenizer files of "
            "StanfordAIMI/RadLLaMA-7b into the model folder"
        )
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, use_fast=True)
    except Exception as exc:
        raise WeightsUnavailable(
            f"{LLM_DIR}/ has no readable config and tokenizer ({exc})"
        ) from exc
    with torch.device("meta"):
        decoder = AutoModelForCausalLM.from_config(config)
    if (folder / "generation_config.json").is_file():
        decoder.generation_config = GenerationConfig.from_pretrained(folder, local_files_only=True)
    return decoder, tokenizer


def _materialise_buffers(decoder: nn.Module) -> None:
    """Rebuild the rotary embedding (non-persistent buffers) left on the meta device."""
    for name, module in decoder.named_modules():
        if any(b.is_meta for b in module.buffers(recurse=False)):
            if not name.endswith("rotary_emb"):
                raise WeightsUnavailable(f"decoder buffer {name} was not in the checkpoint")
            parent = decoder.get_submodule(name.rsplit(".", 1)[0]) if "." in name else decoder
            rebuilt = type(module)(config=decoder.config)
            setattr(parent, name.rsplit(".", 1)[-1], rebuilt)


def load_report(
    root: Path,
    *,
    variant: str = "mtl",
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> ReportModel:
    """The report-generation checkpoint of `variant` ("mtl" or "stage1_stage2"), eval mode."""
    if variant not in REPORT_CHECKPOINTS:
        raise WeightsUnavailable(
            f"unknown report variant {variant!r}: {sorted(REPORT_CHECKPOINTS)}"
        )
    name = REPORT_CHECKPOINTS[variant]
    state = read_state_dict(root / name)
    unknown = [k for k in state if not k.startswith((IMAGE_PREFIX, DECODER_PREFIX, ADAPTER_PREFIX))]
    if unknown:
        raise WeightsUnavailable(f"{name} holds tensors of another model (first: {unknown[0]})")
    vision = _vision_state(state)
    layers, width = body_shape(vision, "")
    if min(layers) == 0:
        raise WeightsUnavailable(f"{name} has no '{IMAGE_PREFIX}*' tensors: wrong file")
    body = I3ResNet(resnet2d(layers, width), heads=False)
    load_into(body, vision, f"{name} (vision)")
    decoder, tokenizer = _decoder_from_config(root / LLM_DIR)
    decoder_state = fold_lora({k[len(DECODER_PREFIX) :]: v for k, v in state.items()
                               if k.startswith(DECODER_PREFIX)})  # fmt: skip
    own = decoder.state_dict()
    missing = [k for k in own if k not in decoder_state]
    extra = [k for k in decoder_state if k not in own and "rotary_emb" not in k]
    bad = [k for k in own if k in decoder_state and decoder_state[k].shape != own[k].shape]
    if missing or extra or bad:
        raise WeightsUnavailable(
            f"{name}: the decoder in {LLM_DIR}/config.json does not match the checkpoint "
            f"({len(missing)} missing, {len(extra)} unexpected, {len(bad)} of another shape; "
            f"first: {(missing + extra + bad)[0]})"
        )
    decoder.load_state_dict({k: decoder_state[k].to(dtype) for k in own}, assign=True)
    _materialise_buffers(decoder)
    model = ReportModel(body, decoder, tokenizer)
    adapter = {
        k[len(ADAPTER_PREFIX) :]: v for k, v in state.items() if k.startswith(ADAPTER_PREFIX)
    }
    load_into(model.adapter, adapter, f"{name} (adapter)")
    log.info("merlin: loaded %s (I3D body %s, decoder %s)", name, layers, type(decoder).__name__)
    return model.to(device=device, dtype=dtype).eval()
