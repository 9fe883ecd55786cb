"""Lexical report metrics beside GREEN: BLEU as RadEval computes it, BLEU from sacrebleu, ROUGE
from Google's rouge-score. Each returns a `MetricResult` (corpus value and per-sample values).

- `radeval_bleu`: RadEval 2.2.1 `radeval/metrics/bleu` (the pycocoevalcap BLEU scorer):
  whitespace tokens, no lower-casing, one reference per sample, "closest" reference length, the
  corpus value from summed n-gram counts, per-sample values with the scorer's 1e-15 / 1e-9
  offsets and brevity penalty. RadEval's `bleu` key is order 4.
- `sacre_bleu`: `sacrebleu.corpus_bleu` (13a tokenizer, 0-100 scale) and `sentence_bleu`.
- `rouge`: `rouge_score.RougeScorer(types, use_stemmer=True)` F-measure, mean over samples, as
  RadEval's `rouge` metric does (rouge1, rouge2, rougeL).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from core.errors import InvalidInput

TINY, SMALL = 1e-15, 1e-9  # the coco scorer's offsets: 0 matches give ~0, never a 0/0


@dataclass
class MetricResult:
    """A corpus-level value and one value per sample (None where a sample has none)."""

    aggregate: float
    per_sample: list[float | None]
    details: dict[str, Any] = field(default_factory=dict)
    corpus: bool = False  # True: the aggregate is not the mean of per_sample (e.g. BLEU)


def _pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise InvalidInput(f"{len(refs)} references but {len(hyps)} hypotheses; give one each")


def _ngram_counts(words: list[str], n: int) -> Counter:
    return Counter(
        tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)
    )


def _bleu(correct: list[float], guess: list[float], testlen: float, reflen: float, n: int) -> float:
    value = 1.0
    for k in range(n):
        value *= (correct[k] + TINY) / (guess[k] + SMALL)
    value **= 1.0 / n
    ratio = (testlen + TINY) / (reflen + SMALL)
    return value * math.exp(1 - 1 / ratio) if ratio < 1 else value


def radeval_bleu(refs: Sequence[str], hyps: Sequence[str], n: int = 4) -> MetricResult:
    """BLEU-n as RadEval reports it (see the module docstring)."""
    _pairs(refs, hyps)
    totals_correct, totals_guess = [0.0] * n, [0.0] * n
    testlen = reflen = 0
    per_sample: list[float | None] = []
    for ref, hyp in zip(refs, hyps, strict=True):
        ref_words, hyp_words = ref.split(), hyp.split()
        ref_counts, hyp_counts = _ngram_counts(ref_words, n), _ngram_counts(hyp_words, n)
        guess = [float(max(0, len(hyp_words) - k + 1)) for k in range(1, n + 1)]
        correct = [0.0] * n
        for gram, count in hyp_counts.items():
            correct[len(gram) - 1] += min(ref_counts.get(gram, 0), count)
        per_sample.append(_bleu(correct, guess, len(hyp_words), len(ref_words), n))
        testlen += len(hyp_words)
        reflen += len(ref_words)
        for k in range(n):
            totals_correct[k] += correct[k]
            totals_guess[k] += guess[k]
    aggregate = _bleu(totals_correct, totals_guess, testlen, reflen, n) if refs else 0.0
    details = {"testlen": testlen, "reflen": reflen, "order": n}
    return MetricResult(aggregate, per_sample, details, corpus=True)


def sacre_bleu(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
    """sacrebleu's corpus BLEU and sentence BLEU per sample (0-100, default settings)."""
    import sacrebleu

    _pairs(refs, hyps)
    bleu = sacrebleu.BLEU()
    corpus = bleu.corpus_score(list(hyps), [list(refs)])
    per_sample: list[float | None] = [
        sacrebleu.sentence_bleu(h, [r]).score for r, h in zip(refs, hyps, strict=True)
    ]
    details = {"signature": str(bleu.get_signature()), "precisions": corpus.precisions}
    return MetricResult(corpus.score, per_sample, details, corpus=True)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(
    refs: Sequence[str], hyps: Sequence[str], types: Sequence[str] = ROUGE_TYPES
) -> dict[str, MetricResult]:
    """ROUGE F-measures per sample and their mean, one result per ROUGE type."""
    from rouge_score import rouge_scorer

    _pairs(refs, hyps)
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    scores = [scorer.score(r, h) for r, h in zip(refs, hyps, strict=True)]
    out = {}
    for kind in types:
        values: list[float | None] = [s[kind].fmeasure for s in scores]
        out[kind] = MetricResult(fmean(values) if values else 0.0, values)  # type: ignore[arg-type]
    return out


def rouge_l(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
    """ROUGE-L F-measure (rouge-score, stemming on)."""
    return rouge(refs, hyps, ("rougeL",))["rougeL"]
