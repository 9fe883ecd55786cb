"""Load a released CheXpert-Plus SRRG report generator (`StanfordAIMI/chexpert-plus-srrg_findings`
/ `_impression`) from a store folder in the Hugging Face layout, and generate reports with it.

The model is a transformers `VisionEncoderDecoderModel` (SwinV2 image encoder, 2-layer BERT
decoder with cross-attention), its tokenizer a `BertTokenizer` (`vocab.txt`) and its image
processor a `ViTImageProcessor` (`preprocessor_config.json`), loaded with `local_files_only`.
Generation follows the published recipe (Stanford-AIMI/chexpert-plus `tutorials/RRG/INDEX.md`):
bos/eos/pad from the model config, `decoder_start_token_id` = the tokenizer's [CLS], max_length
128, decoded with `skip_special_tokens`. The recipe's `"beam_width": 2` is not a
`GenerationConfig` field and is silently ignored there (the snippet decodes greedily); the
authors' intent, two beams, is this module's default and `num_beams=1` reproduces the snippet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, WeightsUnavailable
from workers.srrg.contract import MAX_BEAMS
from workers.srrg.contract import MAX_LENGTH as MAX_LENGTH_LIMIT

log = logging.getLogger(__name__)

REPORT_MODELS: dict[str, str] = {
    "StanfordAIMI/chexpert-plus-srrg_findings": "findings",
    "StanfordAIMI/chexpert-plus-srrg_impression": "impression",
}
REQUIRED_FILES = ("config.json", "preprocessor_config.json", "vocab.txt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Generation:
    """Decoding settings; the defaults are the released ones."""

    num_beams: int = 2
    max_length: int = 128

    def __post_init__(self) -> None:
        if not 1 <= self.num_beams <= MAX_BEAMS:
            raise InvalidInput(f"num_beams must be 1..{MAX_BEAMS}, got {self.num_beams}")
        if not 2 <= self.max_length <= MAX_LENGTH_LIMIT:
            raise InvalidInput(f"max_length must be 2..{MAX_LENGTH_LIMIT}, got {self.max_length}")


def check_folder(folder: Path) -> Path:
    """The weights file of a report-model folder; WeightsUnavailable names what is missing."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise WeightsUnavailable(f"{folder.name}: missing {', '.join(missing)}")
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "vision-encoder-decoder":
        raise WeightsUnavailable(
            f"{folder.name}/config.json is a '{config.get('model_type')}' model, not the "
            "vision-encoder-decoder the SRRG report models are"
        )
    return weights[0]


def _first_id(*candidates: Any) -> int | None:
    for value in candidates:
        if isinstance(value, int):
            return value
    return None


class ReportModel:
    """A loaded report generator: image processor, VisionEncoderDecoderModel and tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, processor: Any, section: str) -> None:
        self.model, self.tokenizer, self.processor, self.section = (
            model,
            tokenizer,
            processor,
            section,
        )
        config, decoder = model.config, model.config.decoder
        self.bos = _first_id(config.bos_token_id, decoder.bos_token_id, tokenizer.cls_token_id)
        self.eos = _first_id(config.eos_token_id, decoder.eos_token_id, tokenizer.sep_token_id)
        self.pad = _first_id(config.pad_token_id, decoder.pad_token_id, tokenizer.pad_token_id)
        self.start = tokenizer.cls_token_id
        # The decoder's learned positions bound a report's length (512+ on the released models).
        self.max_positions = int(getattr(decoder, "max_position_embeddings", MAX_LENGTH_LIMIT))

    def check(self, settings: Generation) -> None:
        """Refuse settings this model cannot decode (before they reach a batch)."""
        if settings.max_length > self.max_positions:
            raise InvalidInput(
                f"max_length {settings.max_length} is more than this model's "
                f"{self.max_positions} decoder positions; ask for at most {self.max_positions}"
            )

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def pixel_values(self, images: list[Any]) -> Any:
        """Images (RGB PIL, see xray.decode_xray) -> the processor's pixel tensor [B,3,H,W]."""
        batch = self.processor(images=images, return_tensors="pt").pixel_values
        dtype = next(self.model.parameters()).dtype
        return batch.to(device=self.device, dtype=dtype)

    def generation_config(self, settings: Generation) -> Any:
        from transformers import GenerationConfig

        return GenerationConfig(
            bos_token_id=self.bos,
            eos_token_id=self.eos,
            pad_token_id=self.pad,
            decoder_start_token_id=self.start,
            num_return_sequences=1,
            max_length=settings.max_length,
            num_beams=settings.num_beams,
            use_cache=True,
        )

    def generate_ids(self, pixel_values: Any, settings: Generation) -> Any:
        import torch

        with torch.inference_mode():
            return self.model.generate(
                pixel_values, generation_config=self.generation_config(settings)
            )

    def generate(self, images: list[Any], settings: Generation | None = None) -> list[str]:
        """One report text per image, decoded without special tokens."""
        if not images:
            return []
        ids = self.generate_ids(self.pixel_values(images), settings or Generation())
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def load_report_model(
    folder: Path, section: str, *, device: str = "cpu", dtype: str = "float32"
) -> ReportModel:
    """Load a chexpert-plus-srrg model from `folder` (never from the network)."""
    import torch
    from transformers import BertTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    if section not in ("findings", "impression"):
        raise WeightsUnavailable(f"section must be findings or impression, not '{section}'")
    check_folder(folder)
    try:
        model = VisionEncoderDecoderModel.from_pretrained(
            folder, local_files_only=True, dtype=getattr(torch, dtype)
        )
        tokenizer = BertTokenizer.from_pretrained(folder, local_files_only=True)
        processor = ViTImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"{folder.name}: cannot load the report model ({exc})") from exc
    if model.config.decoder.vocab_size < len(tokenizer):
        raise WeightsUnavailable(
            f"{folder.name}: the tokenizer has {len(tokenizer)} tokens, the decoder only "
            f"{model.config.decoder.vocab_size}: tokenizer and weights do not belong together"
        )
    model.to(device).eval()
    log.info("srrg: loaded %s (%s) on %s", folder.name, section, device)
    return ReportModel(model, tokenizer, processor, section)
