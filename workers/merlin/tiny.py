"""Builder for Merlin: random weights written in the released layout, read by the same loaders.

Which model: `manifest.tiny["model"]` or `manifest.adapter["kind"]` ("clip", "five_year" or
"report"), else the manifest name ("five" -> five-year, "report" -> report, otherwise CLIP).
Tiny: a Bottleneck ResNet I3D body (`image_layers`, default [1,1,1,1]; `width_per_group`,
default 16; layer4 still has 2048 channels), a 1-layer Longformer with hidden size 768, and a
1-layer Llama (hidden 64) with a word-level tokenizer, all built offline in seconds.
Full size: the real ResNet-152 I3D and the Clinical-Longformer shape (12 layers, 50,265-token
embedding); the report LLM stays tiny (RadLLaMA-7B would be 27 GB of fp32 weights).
Convolution kernels and batch-norm statistics are randomised in full so a wrong axis order or
layer mapping cannot hide behind zero-padded, centred kernels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_store.manifest import Manifest
from workers.merlin.i3d import RESNET152_LAYERS, I3ResNet, resnet2d
from workers.merlin.model import (
    CLIP_CHECKPOINT,
    FIVE_YEAR_CHECKPOINT,
    FIVE_YEAR_CLASSES,
    PHENOTYPE_CLASSES,
    TEXT_DIR,
    MerlinCLIP,
    TextEncoder,
)
from workers.merlin.prompts import ORGAN_SYSTEMS
from workers.merlin.report_model import (
    ADAPTER_PREFIX,
    DECODER_PREFIX,
    LLM_DIR,
    REPORT_CHECKPOINTS,
    VisionFeatures,
)

LORA_RANK = 512
# yikuan8/Clinical-Longformer config.json (as copied by models fine-tuned from it).
CLINICAL_LONGFORMER = {
    "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "attention_window": [512] * 12, "max_position_embeddings": 4098,
    "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0,
    "eos_token_id": 2, "sep_token_id": 2,
}  # fmt: skip
REPORT_WORDS = (
    "generate a radiology report for ### : . , no normal mild small moderate acute abnormality "
    "atelectasis effusion and biliary tree ureters is the of with without hernia cyst free fluid "
    "patent degenerative change spine appendix unremarkable "
)


def model_kind(manifest: Manifest) -> str:
    kind = manifest.tiny.get("model") or manifest.adapter.get("kind")
    if kind is None:
        name = manifest.name.lower()
        kind = "five_year" if "five" in name else "report" if "report" in name else "clip"
    if kind not in ("clip", "five_year", "report"):
        raise ValueError(f"tiny.model must be clip, five_year or report, not {kind!r}")
    return kind


def randomise(module: nn.Module, gain: float = 1.0) -> None:
    """Full random conv kernels (fan-in scaled) and random batch-norm affine and statistics."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()
            nn.init.normal_(m.weight, std=gain * math.sqrt(2.0 / fan_in))
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, std=0.1)
            m.running_mean.normal_(std=0.1)
            m.running_var.uniform_(0.5, 1.5)


def image_body(options: dict[str, Any], full_size: bool, class_nb: int, heads: bool = True):
    layers = RESNET152_LAYERS if full_size else tuple(options.get("image_layers", (1, 1, 1, 1)))
    width = 64 if full_size else int(options.get("width_per_group", 16))
    body = I3ResNet(resnet2d(layers, width), class_nb=class_nb, heads=heads)
    randomise(body, gain=float(options.get("init_gain", 0.5)))
    return body


def longformer_tokenizer() -> Any:
    """A RoBERTa-style byte-level BPE tokenizer (all 256 bytes, no merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
        model_max_length=4096,
    )  # fmt: skip


def write_tokenizer(tokenizer: Any, folder: Path) -> None:
    tokenizer.save_pretrained(folder)
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # load exactly this tokenizer back
    path.write_text(json.dumps(config, indent=2))


def build_clip(target: Path, options: dict[str, Any], full_size: bool) -> None:
    from transformers import LongformerConfig, LongformerModel

    image = image_body(options, full_size, PHENOTYPE_CLASSES)
    tokenizer = longformer_tokenizer()
    fields = dict(CLINICAL_LONGFORMER)
    if not full_size:
        layers = int(options.get("text_layers", 1))
        window = int(options.get("attention_window", 8))
        fields.update(vocab_size=len(tokenizer), num_hidden_layers=layers,
                      intermediate_size=int(options.get("text_intermediate", 64)),
                      attention_window=[window] * layers, max_position_embeddings=1028)  # fmt: skip
    config = LongformerConfig(**fields)
    text = TextEncoder(LongformerModel(config), tokenizer)
    model = MerlinCLIP(image, text)
    folder = target / TEXT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    write_tokenizer(tokenizer, folder)
    torch.save(model.state_dict(), target / CLIP_CHECKPOINT)


def llama_tokenizer() -> Any:
    """Word-level tokenizer with Llama's special ids (unk 0, bos 1, eos 2) and a BOS prefix."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for word in (REPORT_WORDS + " ".join(ORGAN_SYSTEMS)).split():
        vocab.setdefault(word, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"###|[^\w\s#]"), "isolated")]
    )
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", model_max_length=2048,
    )  # fmt: skip


def decoder_state(decoder: nn.Module, rank: int) -> dict[str, torch.Tensor]:
    """The LM's tensors in the PEFT layout the released checkpoint has (LoRA on q/v)."""
    out = {}
    for key, value in decoder.state_dict().items():
        if key.endswith(("self_attn.q_proj.weight", "self_attn.v_proj.weight")):
            module = key[: -len(".weight")]
            out[f"{module}.base_layer.weight"] = value
            out[f"{module}.lora_A.default.weight"] = torch.randn(rank, value.shape[1]) * 0.05
            out[f"{module}.lora_B.default.weight"] = torch.randn(value.shape[0], rank) * 0.05
        else:
            out[key] = value
    return {DECODER_PREFIX + k: v for k, v in out.items()}


def build_report(target: Path, options: dict[str, Any], full_size: bool, variant: str) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    body = image_body(options, full_size, PHENOTYPE_CLASSES, heads=False)
    tokenizer = llama_tokenizer()
    hidden = int(options.get("llm_hidden_size", 64))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden,
        intermediate_size=int(options.get("llm_intermediate_size", 2 * hidden)),
        num_hidden_layers=int(options.get("llm_layers", 1)),
        num_attention_heads=int(options.get("llm_heads", 4)),
        num_key_value_heads=int(options.get("llm_heads", 4)), max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False,
    )  # fmt: skip
    decoder = LlamaForCausalLM(config)
    state = {
        f"encode_image.vision_model.{k}": v for k, v in VisionFeatures(body).state_dict().items()
    }
    adapter = nn.Linear(2048, hidden)
    state.update({f"{ADAPTER_PREFIX}linear2.{k}": v for k, v in adapter.state_dict().items()})
    state.update(decoder_state(decoder, int(options.get("lora_rank", LORA_RANK))))
    folder = target / LLM_DIR
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    write_tokenizer(tokenizer, folder)
    torch.save(state, target / REPORT_CHECKPOINTS[variant])


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    torch.manual_seed(seed)
    options = dict(manifest.tiny)
    target.mkdir(parents=True, exist_ok=True)
    kind = model_kind(manifest)
    if kind == "clip":
        build_clip(target, options, full_size)
    elif kind == "five_year":
        model = image_body(options, full_size, FIVE_YEAR_CLASSES)
        torch.save(model.state_dict(), target / FIVE_YEAR_CHECKPOINT)
    else:
        variant = str(manifest.adapter.get("variant", "mtl"))
        build_report(target, options, full_size, variant)
