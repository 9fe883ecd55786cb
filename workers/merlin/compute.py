"""Batched Merlin numerics on preprocessed volumes ([1,224,224,160] tensors from preprocess).

Image features, the contrastive embedding and phenotype logits come from one forward pass;
outputs are numpy arrays, one row per input, in input order. Micro-batching bounds memory:
one 224x224x160 volume through ResNet-152 I3D needs about 3 GB of activations in fp32.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from workers.merlin.i3d import I3ResNet
from workers.merlin.model import MerlinCLIP
from workers.merlin.prompts import (
    FIVE_YEAR_DISEASES,
    MAX_NEW_TOKENS,
    ORGAN_SYSTEMS,
    REPETITION_PENALTY,
    STOP_SEQUENCE,
    Finding,
    phenotypes,
    report_prompt,
    split_report,
)
from workers.merlin.report_model import ReportModel


def _chunks(items: Sequence, size: int | None) -> Iterator[Sequence]:
    size = size or len(items) or 1
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stack(volumes: Sequence[torch.Tensor], module: torch.nn.Module) -> torch.Tensor:
    """[1,H,W,D] tensors -> [B,1,H,W,D] on the module's device and dtype."""
    weight = next(module.parameters())
    return torch.stack(list(volumes)).to(device=weight.device, dtype=weight.dtype)


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)  # as released (no epsilon)


@dataclass
class ImageResult:
    features: np.ndarray  # [B,2048] pooled I3D features (the released ImageEmbedding)
    embedding: np.ndarray  # [B,512] contrastive embedding, L2-normalised
    phenotype_logits: np.ndarray  # [B,1692]


@torch.inference_mode()
def encode_images(
    model: MerlinCLIP, volumes: Sequence[torch.Tensor], micro_batch: int | None = None
) -> ImageResult:
    """Pooled features, contrastive embedding and phenotype logits of each volume."""
    parts: list[tuple[torch.Tensor, ...]] = []
    for chunk in _chunks(volumes, micro_batch):
        pooled = model.image(_stack(chunk, model.image))
        contrastive, logits = model.image.heads(pooled)
        parts.append((pooled, _l2(contrastive), logits))
    out = [torch.cat(p).float().cpu().numpy() for p in zip(*parts, strict=True)]
    return ImageResult(*out)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def top_phenotypes(probabilities: np.ndarray, k: int) -> list[dict]:
    """The k most probable phecodes of one image, most probable first."""
    table = phenotypes()
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [
        {"code": table[i].code, "name": table[i].name, "probability": float(probabilities[i])}
        for i in order
    ]


@torch.inference_mode()
def five_year(
    model: I3ResNet, volumes: Sequence[torch.Tensor], micro_batch: int | None = None
) -> np.ndarray:
    """[B,6] probabilities of CVD, IHD, HTN, DM, CKD, CLD within five years."""
    parts = []
    for chunk in _chunks(volumes, micro_batch):
        _, logits = model.heads(model(_stack(chunk, model)))
        parts.append(torch.sigmoid(logits))
    return torch.cat(parts).float().cpu().numpy()


def five_year_named(probabilities: np.ndarray) -> list[dict]:
    return [
        {"code": code, "name": name, "probability": float(p)}
        for (code, name), p in zip(FIVE_YEAR_DISEASES, probabilities, strict=True)
    ]


@torch.inference_mode()
def embed_texts(model: MerlinCLIP, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """[N,512] L2-normalised text embeddings (lower-cased, word/punct split, 1024 tokens)."""
    if model.encode_text is None:
        raise RuntimeError("the model was loaded without its text encoder")
    parts = [_l2(model.encode_text(list(chunk))) for chunk in _chunks(texts, batch_size)]
    return torch.cat(parts).float().cpu().numpy()


@dataclass(frozen=True)
class FindingScore:
    name: str
    positive_similarity: float  # mean cosine similarity to the positive prompts
    negative_similarity: float  # mean cosine similarity to the negative prompts
    margin: float  # positive - negative
    present: bool  # margin > 0


def prompt_bank(
    model: MerlinCLIP, findings: Sequence[Finding]
) -> dict[str, tuple[np.ndarray, ...]]:
    """Each finding's (positive [P,512], negative [N,512]) prompt embeddings, in one text pass."""
    texts = [t for f in findings for t in (*f.positive, *f.negative)]
    embedded = embed_texts(model, texts)
    bank, start = {}, 0
    for f in findings:
        middle, end = start + len(f.positive), start + len(f.positive) + len(f.negative)
        bank[f.name] = (embedded[start:middle], embedded[middle:end])
        start = end
    return bank


def zero_shot(
    image_embeddings: np.ndarray, bank: dict[str, tuple[np.ndarray, ...]]
) -> list[list[FindingScore]]:
    """Per image, per finding: mean similarity to positive against negative prompts."""
    results: list[list[FindingScore]] = [[] for _ in range(len(image_embeddings))]
    for name, (positive, negative) in bank.items():
        pos = (image_embeddings @ positive.T).mean(axis=1)
        neg = (image_embeddings @ negative.T).mean(axis=1)
        for row, (p, n) in enumerate(zip(pos, neg, strict=True)):
            results[row].append(FindingScore(name, float(p), float(n), float(p - n), bool(p > n)))
    return results


class StopOnSequence:
    """Stops a row once its last tokens equal `sequence` (the released stop criterion)."""

    def __init__(self, sequence: Sequence[int]) -> None:
        self.sequence = torch.tensor(list(sequence))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: object) -> torch.Tensor:
        n = len(self.sequence)
        if input_ids.shape[1] < n:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return (input_ids[:, -n:] == self.sequence.to(input_ids.device)).all(dim=1)


@torch.inference_mode()
def generate_reports(
    model: ReportModel,
    volumes: Sequence[torch.Tensor],
    organs: Sequence[str] = ORGAN_SYSTEMS,
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    repetition_penalty: float = REPETITION_PENALTY,
    stop: Sequence[int] = STOP_SEQUENCE,
    micro_batch: int | None = None,
) -> list[dict[str, str]]:
    """Per volume, {organ system: text}: one greedy generation per organ-system prompt."""
    from transformers import StoppingCriteriaList

    reports: list[dict[str, str]] = []
    tokenizer = model.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for chunk in _chunks(volumes, micro_batch):
        image = model.image_tokens(_stack(chunk, model.encode_image))
        texts: list[dict[str, str]] = [{} for _ in chunk]
        for organ in organs:
            prompt = model.prompt_embeddings(report_prompt(organ), len(chunk))
            inputs = torch.cat((image.to(prompt.dtype), prompt), dim=1)
            with warnings.catch_warnings():  # the penalty covers generated tokens, as released
                warnings.filterwarnings("ignore", message="Passing `repetition_penalty`")
                out = model.decoder.generate(
                    inputs_embeds=inputs,
                    attention_mask=torch.ones(
                        inputs.shape[:2], dtype=torch.long, device=inputs.device
                    ),
                    do_sample=False,
                    num_beams=1,
                    repetition_penalty=repetition_penalty,
                    max_new_tokens=max_new_tokens,
                    stopping_criteria=StoppingCriteriaList([StopOnSequence(stop)]),
                    pad_token_id=pad,
                )
            for row, text in enumerate(tokenizer.batch_decode(out, skip_special_tokens=True)):
                texts[row][organ] = split_report(text)
        reports.extend(texts)
    return reports
