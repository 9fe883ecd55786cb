"""Merlin's contrastive/phenotype model and its five-year model, loaded from the store folder.

The store folder mirrors the Hugging Face repository `stanfordmimi/Merlin` (checkpoints at the
root, as released) plus local copies of what the released package downloads at run time:

    <store>/i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt
    <store>/Clinical-Longformer/   config.json + tokenizer files of yikuan8/Clinical-Longformer
    <store>/resnet_clinical_longformer_five_year_disease_prediction.pt   (five-year model)

The checkpoints hold every weight (Longformer included), so only the Longformer's config and
tokenizer are needed, never its weights. Module and parameter names follow
`merlin.models.build.MerlinArchitecture`, so `load_state_dict` maps key for key.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import WeightsUnavailable
from workers.merlin.i3d import CONTRASTIVE_DIM, I3ResNet, body_shape, resnet2d

log = logging.getLogger(__name__)

CLIP_CHECKPOINT = "i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt"
FIVE_YEAR_CHECKPOINT = "resnet_clinical_longformer_five_year_disease_prediction.pt"
TEXT_DIR = "Clinical-Longformer"
PHENOTYPE_CLASSES = 1692
FIVE_YEAR_CLASSES = 6
TEXT_HIDDEN = 768
TEXT_MAX_LENGTH = 1024
IMAGE_PREFIX = "encode_image.i3_resnet."
TEXT_PREFIX = "encode_text."
# Saved by older transformers as a buffer; current LongformerModel recomputes it.
BENIGN_EXTRA = re.compile(r"(^|\.)embeddings\.position_ids$")
_WORD_PUNCT = re.compile(r"\w+|[^\w\s]+")


def sanitize_report(text: str) -> str:
    """Lower-case, split into runs of word characters and of punctuation, join with spaces.

    The released text preprocessing (nltk `wordpunct_tokenize`, whose pattern this is)."""
    return " ".join(_WORD_PUNCT.findall(text.lower()))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors (memory-mapped when possible); WeightsUnavailable if unreadable."""
    if not path.is_file():
        raise WeightsUnavailable(f"{path.name} is missing from the model folder {path.parent}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        try:  # legacy (non-zip) files cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsUnavailable(
                f"{path.name} is not a readable PyTorch checkpoint of tensors (corrupt or "
                "truncated download?); pull it again"
            ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise WeightsUnavailable(f"{path.name} holds no state dict")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def build_i3resnet(state: dict[str, torch.Tensor], prefix: str, class_nb: int) -> I3ResNet:
    """An I3ResNet shaped like the body saved under `prefix` (ResNet-152 for released files)."""
    layers, width = body_shape(state, prefix)
    if min(layers) == 0 or width <= 0:
        raise WeightsUnavailable(
            f"the checkpoint has no I3D ResNet tensors under '{prefix}': wrong file for this model"
        )
    classifier = state.get(f"{prefix}classifier.weight")
    if classifier is None or classifier.shape[0] != class_nb:
        got = None if classifier is None else int(classifier.shape[0])
        raise WeightsUnavailable(
            f"the checkpoint's classifier has {got} outputs, this model needs {class_nb}: "
            "wrong checkpoint file (CLIP vs five-year)"
        )
    return I3ResNet(resnet2d(layers, width), class_nb=class_nb)


def load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Copy `state` into `module`, refusing missing, unexpected or mis-shaped tensors."""
    own = module.state_dict()
    extra = [k for k in state if k not in own and not BENIGN_EXTRA.search(k)]
    missing = [k for k in own if k not in state]
    bad = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or bad:
        first = (missing or extra or bad)[0]
        raise WeightsUnavailable(
            f"{what}: {len(missing)} tensors missing, {len(extra)} unexpected, {len(bad)} of "
            f"another shape (first: {first}); the file does not belong to this model"
        )
    module.load_state_dict({k: state[k] for k in own}, strict=True)


class ImageEncoder(nn.Module):
    """Holds the I3ResNet under the released name `i3_resnet`."""

    def __init__(self, i3_resnet: I3ResNet) -> None:
        super().__init__()
        self.i3_resnet = i3_resnet


class TextEncoder(nn.Module):
    """Clinical-Longformer; the first token's last hidden state -> Linear(768, 512)."""

    def __init__(self, text_encoder: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.linear_layer = nn.Linear(TEXT_HIDDEN, CONTRASTIVE_DIM)
        self.tokenizer = tokenizer

    def forward(self, texts: list[str], max_length: int = TEXT_MAX_LENGTH) -> torch.Tensor:
        """Texts -> unnormalised [N,512] embeddings (released preprocessing and truncation)."""
        batch = self.tokenizer(
            [sanitize_report(t) for t in texts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        device = self.linear_layer.weight.device
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.text_encoder(**batch).last_hidden_state[:, 0, :]
        return self.linear_layer(hidden)


class MerlinCLIP(nn.Module):
    """Image encoder (I3ResNet-152 + phenotype and contrastive heads) and text encoder."""

    def __init__(self, image: I3ResNet, text: TextEncoder | None) -> None:
        super().__init__()
        self.encode_image = ImageEncoder(image)
        self.encode_text = text
        self.logit_scale = nn.Parameter(torch.ones([]))

    @property
    def image(self) -> I3ResNet:
        return self.encode_image.i3_resnet


def load_text_encoder(root: Path) -> TextEncoder:
    """Longformer (config only, random weights until the checkpoint is loaded) + tokenizer."""
    from transformers import AutoTokenizer, LongformerConfig, LongformerModel

    folder = root / TEXT_DIR
    if not (folder / "config.json").is_file():
        raise WeightsUnavailable(
            f"{TEXT_DIR}/config.json is missing: copy the config and tokenizer files of "
            "yikuan8/Clinical-Longformer into the model folder"
        )
    try:
        config = LongformerConfig.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:
        raise WeightsUnavailable(
            f"{TEXT_DIR}/ does not hold a readable Longformer config and tokenizer ({exc})"
        ) from exc
    if config.hidden_size != TEXT_HIDDEN:
        raise WeightsUnavailable(
            f"{TEXT_DIR}/config.json has hidden_size {config.hidden_size}; Merlin needs 768"
        )
    return TextEncoder(LongformerModel(config), tokenizer)


def load_clip(
    root: Path, *, with_text: bool = True, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> MerlinCLIP:
    """The released CLIP checkpoint (image + phenotype heads + text) in eval mode."""
    state = read_state_dict(root / CLIP_CHECKPOINT)
    image = build_i3resnet(state, IMAGE_PREFIX, PHENOTYPE_CLASSES)
    text = load_text_encoder(root) if with_text else None
    model = MerlinCLIP(image, text)
    if not with_text:
        state = {k: v for k, v in state.items() if not k.startswith(TEXT_PREFIX)}
    load_into(model, state, CLIP_CHECKPOINT)
    layers, width = body_shape(state, IMAGE_PREFIX)
    log.info("merlin: loaded %s (I3D body %s, width %d)", CLIP_CHECKPOINT, layers, width)
    return model.to(device=device, dtype=dtype).eval()


def load_five_year(
    root: Path, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> I3ResNet:
    """The five-year disease model: an I3ResNet whose classifier has 6 outputs."""
    state = read_state_dict(root / FIVE_YEAR_CHECKPOINT)
    model = build_i3resnet(state, "", FIVE_YEAR_CLASSES)
    load_into(model, state, FIVE_YEAR_CHECKPOINT)
    return model.to(device=device, dtype=dtype).eval()
