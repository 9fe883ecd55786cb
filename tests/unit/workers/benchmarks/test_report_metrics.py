"""Report metrics: BLEU against hand-computed values, sacrebleu and rouge-score against their
documented examples, and the aggregator (any per-sample callable, per group, missing values)."""

from __future__ import annotations

import json
import math

import pytest

from core.errors import InvalidInput
from workers.benchmarks import lexical, report_metrics
from workers.benchmarks.lexical import MetricResult

REF, HYP = "the cat sat on the mat", "the cat sat on mat"
# 1-4 gram precisions 5/5, 3/4, 2/3, 1/2; hypothesis 5 words, reference 6
HAND_BLEU4 = (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25 * math.exp(1 - 6 / 5)


def test_radeval_bleu_by_hand() -> None:
    result = lexical.radeval_bleu([REF], [HYP])
    assert result.aggregate == pytest.approx(HAND_BLEU4, rel=1e-8)
    assert result.per_sample == pytest.approx([HAND_BLEU4], rel=1e-8)
    assert lexical.radeval_bleu([REF], [HYP], n=1).aggregate == pytest.approx(math.exp(-0.2))
    assert lexical.radeval_bleu(["a b c d"], ["a b c d"]).aggregate == pytest.approx(1.0)
    # no 4-gram: the scorer's offsets give (1e-15 / 1e-9) ** (1 / 4), not 0 and not 1
    assert lexical.radeval_bleu(["a b c"], ["a b c"]).aggregate == pytest.approx(1e-6**0.25)
    assert lexical.radeval_bleu(["a b c"], ["x y z"]).aggregate < 1e-6
    assert lexical.radeval_bleu(["a b c"], [""]).per_sample == [0.0]


def test_radeval_bleu_corpus_sums_counts_and_is_case_sensitive() -> None:
    result = lexical.radeval_bleu([REF, "a b c d"], [HYP, "a b c d"], n=2)
    # unigrams 9/9, bigrams (3+3)/(4+3); 9 hypothesis words, 10 reference words
    assert result.aggregate == pytest.approx(math.sqrt(6 / 7) * math.exp(1 - 10 / 9))
    assert result.corpus and result.details["testlen"] == 9
    assert lexical.radeval_bleu(["Heart"], ["heart"], n=1).aggregate < 1e-6


def test_sacrebleu_values() -> None:
    result = lexical.sacre_bleu([REF], [HYP])
    assert result.aggregate == pytest.approx(100 * HAND_BLEU4, abs=1e-3)
    same = lexical.sacre_bleu(["The dog bit the man."], ["The dog bit the man."])
    assert same.aggregate == pytest.approx(100.0)
    # sacrebleu README example (two reference streams), through the library itself
    import sacrebleu

    refs = [
        ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
        ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
    ]
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    assert sacrebleu.corpus_bleu(hyps, refs).score == pytest.approx(48.53, abs=0.01)


def test_rouge_against_the_documented_example() -> None:
    ref, hyp = (
        "The quick brown fox jumps over the lazy dog",
        "The quick brown dog jumps on the log.",
    )
    scores = lexical.rouge([ref], [hyp])
    assert scores["rouge1"].aggregate == pytest.approx(0.7058823529411765)
    assert scores["rougeL"].aggregate == pytest.approx(0.5882352941176471)
    assert lexical.rouge_l([ref, ref], [hyp, ref]).per_sample == pytest.approx([0.5882353, 1.0])


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(InvalidInput):
        lexical.radeval_bleu(["a"], ["a", "b"])
    with pytest.raises(InvalidInput, match="group labels"):
        report_metrics.evaluate(["a"], ["a"], {}, groups=["x", "y"])


def test_aggregator_takes_any_per_sample_callable() -> None:
    def words_kept(refs, hyps):  # a stand-in for F1-SRR-BERT: per-sample values only
        return [
            len(set(h.split()) & set(r.split())) / len(r.split()) if r else None
            for r, h in zip(refs, hyps, strict=True)
        ]

    refs, hyps = ["a b", "a b c d", ""], ["a", "a b c d", "x"]
    out = report_metrics.evaluate(refs, hyps, {"kept": words_kept}, groups=["cxr", "ct", "ct"])
    kept = out["metrics"]["kept"]
    assert kept["per_sample"] == [0.5, 1.0, None]
    assert (kept["aggregate"], kept["n_scored"], kept["n_missing"]) == (0.75, 2, 1)
    assert kept["std"] == pytest.approx(0.25)
    assert out["per_group"] == {"ct": {"n": 2, "kept": 1.0}, "cxr": {"n": 1, "kept": 0.5}}
    json.dumps(out)


def test_corpus_metrics_are_recomputed_per_group() -> None:
    refs, hyps = [REF, "a b c d"], [HYP, "a b c d"]
    out = report_metrics.evaluate(refs, hyps, report_metrics.lexical_metrics(), groups=["x", "y"])
    assert out["per_group"]["x"]["bleu"] == pytest.approx(HAND_BLEU4, rel=1e-8)
    assert out["per_group"]["y"]["bleu"] == pytest.approx(1.0)
    assert out["metrics"]["bleu"]["aggregate"] != out["metrics"]["bleu"]["mean"]
    assert set(out["metrics"]) == {"bleu", "sacrebleu", "rouge1", "rouge2", "rougeL"}


def test_green_answers_as_a_metric() -> None:
    answers = [
        "[Matched Findings]:\n2. a",
        "[Clinically Significant Errors]:\n(a) x: 2. y\n\n[Matched Findings]:\n2. a",
    ]
    out = report_metrics.evaluate(
        ["r1", "r2"], ["h1", "h2"], {"green": report_metrics.green_metric(answers)}
    )
    assert out["metrics"]["green"]["per_sample"] == pytest.approx([1.0, 0.5])
    assert out["metrics"]["green"]["aggregate"] == pytest.approx(0.75)
    with pytest.raises(InvalidInput, match="GREEN answers"):
        report_metrics.evaluate(["r"], ["h"], {"green": report_metrics.green_metric(answers)})


def test_a_metric_giving_the_wrong_number_of_values_is_refused() -> None:
    with pytest.raises(InvalidInput, match="gave 1 values for 2"):
        report_metrics.evaluate(["a", "b"], ["a", "b"], {"bad": lambda r, h: MetricResult(0, [0])})
