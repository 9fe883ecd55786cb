"""Batched numerics of the SRRG family: what the adapters' `predict` runs on one batch.

Report models: each image becomes the released processor's pixel tensor on its own (in the
worker's preprocessing threads), a batch is stacked and decoded in one `generate` call.
SRR-BERT: one batch of sentences is tokenized together (padding to its longest sentence, as
RadEval does per batch) and run in one forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.srrg.labels import SRRBertLabeller
from workers.srrg.model import Generation, ReportModel


def pixels(model: ReportModel, image: Any) -> torch.Tensor:
    """One RGB PIL image -> the image processor's [3, H, W] float tensor (on the CPU)."""
    batch = model.processor(images=[image], return_tensors="pt").pixel_values
    return batch[0].contiguous()


def generate_batch(
    model: ReportModel, batch: list[torch.Tensor], settings: Generation
) -> list[str]:
    """Reports for a batch of processor tensors, decoded without special tokens."""
    dtype = next(model.model.parameters()).dtype
    stacked = torch.stack(batch).to(device=model.device, dtype=dtype)
    ids = model.generate_ids(stacked, settings)
    texts = model.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [str(text).strip() for text in texts]


def label_batch(labeller: SRRBertLabeller, sentences: list[str]) -> np.ndarray:
    """sigmoid(logits) [N, K] float32 of a batch of sentences (one forward pass when the
    labeller's batch size is the batcher's, as the adapter sets it)."""
    return labeller.probabilities(sentences)
