"""F1-SRR-BERT on a small hand-computed table, with a keyword labeller instead of a model."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput
from workers.srrg.f1 import SAMPLE_EPS, f1_srr_bert

NAMES = ["A", "B", "C"]
KEYWORDS = ["alpha", "beta", "gamma"]


class KeywordLabeller:
    """Label k is on when the sentence mentions KEYWORDS[k]; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, sentences: list[str]) -> np.ndarray:
        self.calls.append(list(sentences))
        return np.array([[int(k in s.lower()) for k in KEYWORDS] for s in sentences])


def test_equal_supports() -> None:
    refs = ["1. Alpha seen. 2. Beta seen.", "Gamma.", "Nothing."]
    hyps = ["Alpha seen.", "Beta and gamma.", "Nothing here."]
    labeller = KeywordLabeller()
    result = f1_srr_bert(refs, hyps, labeller, NAMES)
    # A: tp 1 / pred 1 / true 1; B: tp 0 / pred 1 / true 1; C: tp 1 / pred 1 / true 1
    assert result.precision == pytest.approx(2 / 3, abs=1e-15)
    assert result.recall == pytest.approx(2 / 3, abs=1e-15)
    assert result.f1 == pytest.approx(2 / 3, abs=1e-15)
    assert result.per_label["B"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    one = 1 / (1 + SAMPLE_EPS)
    assert result.sample_precision == pytest.approx([one / 2, one / 2, 1.0], abs=1e-15)
    assert result.sample_recall == pytest.approx([one / 2, one / 2, 1.0], abs=1e-15)
    assert result.sample_f1 == pytest.approx(
        [(2 / (2 + SAMPLE_EPS)) / 2, (2 / (2 + SAMPLE_EPS)) / 2, 1.0], abs=1e-15
    )
    # one labeller call, sentences in RadEval's order: ref0, hyp0, ref1, hyp1, ...
    assert labeller.calls == [
        [
            "Alpha seen.",
            "Beta seen.",
            "Alpha seen.",
            "Gamma.",
            "Beta and gamma.",
            "Nothing.",
            "Nothing here.",
        ]
    ]
    assert result.ref_labels.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert result.hyp_labels.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_weighted_by_support() -> None:
    refs, hyps = ["alpha beta", "alpha"], ["alpha", "beta"]
    result = f1_srr_bert(refs, hyps, KeywordLabeller(), NAMES)
    # A: P 1, R 1/2, F 2/3, support 2; B: 0, 0, 0, support 1; C: support 0 (weight 0)
    assert result.precision == pytest.approx(2 / 3, abs=1e-15)
    assert result.recall == pytest.approx(1 / 3, abs=1e-15)
    assert result.f1 == pytest.approx(4 / 9, abs=1e-15)
    assert result.per_label["A"]["f1"] == pytest.approx(2 / 3, abs=1e-15)


def test_no_reference_labels_gives_zero_not_nan() -> None:
    result = f1_srr_bert(["nothing"], ["alpha"], KeywordLabeller(), NAMES)
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)
    assert result.sample_f1 == [0.0]


def test_identical_reports_score_one() -> None:
    refs = ["1. Alpha.\n2. Gamma.", "Beta."]
    result = f1_srr_bert(refs, list(refs), KeywordLabeller(), NAMES)
    assert result.f1 == 1.0 and result.precision == 1.0 and result.recall == 1.0


def test_pairs_must_match() -> None:
    with pytest.raises(InvalidInput):
        f1_srr_bert(["a"], [], KeywordLabeller(), NAMES)
    with pytest.raises(InvalidInput):
        f1_srr_bert([], [], KeywordLabeller(), NAMES)
