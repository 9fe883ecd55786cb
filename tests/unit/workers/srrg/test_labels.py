"""SRR-BERT labels on tiny same-architecture weights, against the model run directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput, WeightsUnavailable
from workers.srrg.label_maps import LABEL_SETS, label_names, label_set, label_set_for_repo
from workers.srrg.labels import load_labeller

SENTENCES = [
    "Small left pleural effusion.",
    "No pneumothorax.",
    "Stable cardiomegaly with mild pulmonary edema and a right lower lobe consolidation.",
    "Lungs are clear.",
    "Tube tip in place.",
]


def direct(folder: Path, sentence: str) -> np.ndarray:
    """BertForSequenceClassification on one unpadded sentence, thresholded at 0.5."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizer

    model = BertForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = BertTokenizer.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        logits = model(**tokenizer([sentence], return_tensors="pt")).logits
    return (torch.sigmoid(logits) > 0.5).int().numpy()[0]


def test_label_maps_sizes_and_quirk() -> None:
    assert {k: len(label_names(k)) for k in LABEL_SETS} == {
        "leaves": 55,
        "upper": 25,
        "leaves_with_statuses": 163,
        "upper_with_statuses": 73,
    }
    assert label_names("leaves")[0] == "No Finding"
    assert label_names("leaves_with_statuses")[162] == "No Finding"
    for repo in (
        "StanfordAIMI/SRR-BERT-Upper-with-Statuses",
        "StanfordAIMI/SRRG-BERT-Upper-with-Statuses",
    ):
        assert label_set_for_repo(repo).key == "upper_with_statuses"
    with pytest.raises(InvalidInput):
        label_set("organs")


def test_labels_equal_the_model_run_directly(srrg_tiny: Callable[..., Path]) -> None:
    folder = srrg_tiny("leaves_with_statuses")
    labeller = load_labeller(folder, "leaves_with_statuses", batch_size=32)
    flags = labeller(SENTENCES)
    assert flags.shape == (len(SENTENCES), 163)
    for row, sentence in zip(flags, SENTENCES, strict=True):
        assert row.tolist() == direct(folder, sentence).tolist()
    assert len({tuple(row) for row in flags}) > 1  # the tiny model tells sentences apart
    one_by_one = load_labeller(folder, "leaves_with_statuses", batch_size=1)(SENTENCES)
    assert (one_by_one == flags).all()


def test_reports_are_or_merged_over_sentences(srrg_tiny: Callable[..., Path]) -> None:
    labeller = load_labeller(srrg_tiny("leaves_with_statuses"), "leaves_with_statuses")
    report = "1. Small left pleural effusion. 2. No pneumothorax."
    (result,) = labeller.label_reports([report])
    assert result.sentences == ["Small left pleural effusion.", "No pneumothorax."]
    merged = set(result.sentence_labels[0]) | set(result.sentence_labels[1])
    assert set(result.labels) == merged
    names = label_names("leaves_with_statuses")
    assert result.labels == [n for n in names if n in merged]  # output-index order


@pytest.mark.parametrize("key", ["leaves", "upper", "upper_with_statuses"])
def test_every_label_set_loads(srrg_tiny: Callable[..., Path], key: str) -> None:
    labeller = load_labeller(srrg_tiny(key), key)
    assert labeller(SENTENCES[:2]).shape == (2, label_set(key).size)


def test_wrong_label_set_or_missing_files_refused(
    srrg_tiny: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(WeightsUnavailable, match="wrong label set"):
        load_labeller(srrg_tiny("upper"), "leaves")
    with pytest.raises(WeightsUnavailable, match=r"config\.json is missing"):
        load_labeller(tmp_path, "leaves")
