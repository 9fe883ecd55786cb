"""SRR-BERT: multi-label disease classification of report sentences (torch).

As RadEval 2.2.1 `radeval/metrics/SRRBert/srr_bert.py` runs it: `BertForSequenceClassification`
loaded with `num_labels = len(label map)`, a BERT WordPiece tokenizer (max_length 512, padding to
the longest sentence of the batch, truncation), `sigmoid(logits) > 0.5`, label names from the
shipped maps (never the config's id2label). A report's labels are the OR of its sentences'.
RadEval takes the tokenizer from `microsoft/BiomedVLP-CXR-BERT-general`; here it is read from
`tokenizer_folder` when given, else from the model folder (the released repos ship vocab.txt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidInput, WeightsUnavailable
from workers.srrg.label_maps import label_names, label_set
from workers.srrg.sentences import split_sentences

MAX_TOKENS = 512
THRESHOLD = 0.5
MAX_SENTENCES = 4096  # one call; a report has tens


@dataclass
class ReportLabels:
    """One report: its sentences, each sentence's labels, and their OR."""

    sentences: list[str]
    sentence_labels: list[list[str]]
    labels: list[str]


class SRRBertLabeller:
    """Callable sentences -> 0/1 array [N, K]; usable as the labeller of `f1.f1_srr_bert`."""

    def __init__(self, model: Any, tokenizer: Any, key: str, batch_size: int = 32) -> None:
        self.model, self.tokenizer, self.key = model, tokenizer, key
        self.names = label_names(key)
        self.batch_size = batch_size

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def probabilities(self, sentences: list[str]) -> np.ndarray:
        """sigmoid(logits) [N, K] as float32, `batch_size` sentences per forward pass."""
        import torch

        if len(sentences) > MAX_SENTENCES:
            raise InvalidInput(f"{len(sentences)} sentences; send at most {MAX_SENTENCES}")
        out = np.zeros((len(sentences), len(self.names)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(sentences), self.batch_size):
                batch = sentences[start : start + self.batch_size]
                inputs = self.tokenizer(
                    batch,
                    add_special_tokens=True,
                    max_length=MAX_TOKENS,
                    padding=True,
                    truncation=True,
                    return_attention_mask=True,
                    return_tensors="pt",
                )
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                logits = self.model(**inputs).logits.float()
                out[start : start + len(batch)] = torch.sigmoid(logits).cpu().numpy()
        return out

    def __call__(self, sentences: list[str]) -> np.ndarray:
        return (self.probabilities(sentences) > THRESHOLD).astype(int)

    def names_of(self, flags: np.ndarray) -> list[str]:
        return [self.names[i] for i in np.flatnonzero(flags)]

    def label_reports(self, reports: list[str]) -> list[ReportLabels]:
        """Split each report into sentences (as F1-SRR-BERT does), label them in one pass."""
        parsed = [split_sentences(report) for report in reports]
        flags = self([s for sentences in parsed for s in sentences])
        results, start = [], 0
        for sentences in parsed:
            rows = flags[start : start + len(sentences)]
            start += len(sentences)
            results.append(
                ReportLabels(
                    sentences=sentences,
                    sentence_labels=[self.names_of(row) for row in rows],
                    labels=self.names_of(np.any(rows, axis=0)),
                )
            )
        return results


def _config_labels(folder: Path) -> int | None:
    config = json.loads((folder / "config.json").read_text())
    if "id2label" in config:
        return len(config["id2label"])
    value = config.get("num_labels")
    return value if isinstance(value, int) else None


def load_labeller(
    folder: Path,
    key: str,
    *,
    tokenizer_folder: Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> SRRBertLabeller:
    """Load one SRR-BERT model (`key`: leaves, upper, ..._with_statuses) from its store folder."""
    from transformers import BertForSequenceClassification, BertTokenizer

    size = label_set(key).size
    tokenizer_folder = tokenizer_folder or folder
    for path in (folder / "config.json", tokenizer_folder / "vocab.txt"):
        if not path.is_file():
            raise WeightsUnavailable(f"SRR-BERT {key}: {path.name} is missing in {path.parent}")
    declared = _config_labels(folder)
    if declared is not None and declared != size:
        raise WeightsUnavailable(
            f"SRR-BERT {key}: the checkpoint has {declared} labels, the {key} map {size}: "
            "wrong label set for these weights"
        )
    try:
        model = BertForSequenceClassification.from_pretrained(
            folder, num_labels=size, local_files_only=True
        )
        tokenizer = BertTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"SRR-BERT {key}: cannot load ({exc})") from exc
    return SRRBertLabeller(model.to(device).eval(), tokenizer, key, batch_size=batch_size)
