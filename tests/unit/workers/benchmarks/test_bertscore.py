"""BERTScore on a tiny random BERT: values that hold for any encoder (identical sentences score 1,
an empty candidate 0), the baseline rescaling formula, and refusals."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, WeightsUnavailable
from tests.benchmarks_support import build_bert
from workers.benchmarks import bertscore, report_metrics

pytestmark = pytest.mark.slow  # imports torch and transformers (~5 s)
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory):
    return build_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def test_identical_and_empty_candidates(bert) -> None:
    refs = ["the heart size is normal .", "no pleural effusion"]
    out = bertscore.bertscore(refs, [refs[0], ""], bert, num_layers=2)
    assert out.per_sample[0] == pytest.approx(1.0, abs=1e-6)
    assert out.details["precision"][1] == 0.0 and out.details["recall"][1] == 0.0
    assert out.per_sample[1] == 0.0  # 0/0 is set to 0, as bert-score does
    assert out.aggregate == pytest.approx(0.5, abs=1e-6)


def test_baseline_rescaling(bert, tmp_path) -> None:
    baseline = tmp_path / "b.tsv"
    baseline.write_text("LAYER,P,R,F\n0,0,0,0\n1,0.1,0.2,0.5\n")
    refs, hyps = ["the heart is normal", "left lung"], ["the heart is normal", "right lung"]
    raw = bertscore.bertscore(refs, hyps, bert, num_layers=1)
    scaled = bertscore.bertscore(refs, hyps, bert, num_layers=1, baseline_path=baseline)
    assert scaled.per_sample == pytest.approx([(f - 0.5) / 0.5 for f in raw.per_sample], abs=1e-6)
    assert scaled.details["recall"] == pytest.approx(
        [(r - 0.2) / 0.8 for r in raw.details["recall"]], abs=1e-6
    )
    with pytest.raises(InvalidInput, match="layer 2"):
        bertscore.bertscore(refs, hyps, bert, num_layers=2, baseline_path=baseline)


def test_refusals(bert, tmp_path) -> None:
    with pytest.raises(WeightsUnavailable):
        bertscore.load_encoder(tmp_path, 1)
    with pytest.raises(InvalidInput, match="num_layers"):
        bertscore.load_encoder(bert, 9)
    with pytest.raises(InvalidInput):
        bertscore.bertscore(["a"], [], bert, 1)


def test_only_with_a_model_folder(bert) -> None:
    assert "bertscore" not in report_metrics.lexical_metrics()
    metrics = report_metrics.lexical_metrics(str(bert), num_layers=2)
    out = report_metrics.evaluate(["no pleural effusion"], ["no pleural effusion"], metrics)
    assert out["metrics"]["bertscore"]["aggregate"] == pytest.approx(1.0, abs=1e-6)
