"""The SRR-BERT sentence splitter equals nltk's Punkt (`nltk.sent_tokenize`) on report text.

Two references: `nltk.sent_tokenize` itself, run here on the shipped punkt_tab data placed in a
private nltk data root; and EXPECTED, the output of RadEval 2.2.1's `srr_bert_parse_sentences`
(numbering removal + `nltk.sent_tokenize`, nltk 3.10.4) recorded in .venv-radeval with the
punkt_tab files unpacked there from the llama-index-core wheel. The parity test re-runs RadEval.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from workers.srrg.sentences import PUNKT_DIR, punkt, split_sentences, strip_numbering

CORPUS = [
    "No acute cardiopulmonary process.",
    "1. Small left pleural effusion. 2. No pneumothorax. 3. Stable cardiomegaly.",
    "1. Nodule measures 3.5 cm, previously 2.1 cm.\n2. Findings discussed with Dr. Smith at 3 p.m.",
    "Opacities, e.g. in the right lower lobe, are likely atelectasis vs. pneumonia.",
    "Lungs and Airways:\n- No focal consolidation.\n- Mild atelectasis.\n\nPleura:\n- No effusion.",
    "ET tube tip 4.5 cm above the carina.NG tube in the stomach.",
    "Heart size is normal i.e. no cardiomegaly. Mediastinum is unremarkable",
    "Comparison is made to the study from Jan. 5. Interval improvement.",
    "Approx. 2 cm nodule. Recommend CT, etc. for follow-up.",
    "Left PICC line terminates in the SVC.2. Right IJ catheter unchanged.",
    "Findings: Mild pulmonary edema!Is there effusion? Possibly a small one.",
    "No. 2 rib fracture is healed. St. Mary's report reviewed.",
    "",
    "1.",
    "Mild cardiomegaly 2. Pulmonary vascular congestion 3. Small effusions",
]
EXPECTED = [
    ["No acute cardiopulmonary process."],
    ["Small left pleural effusion.", "No pneumothorax.", "Stable cardiomegaly."],
    ["Nodule measures 3.5 cm, previously 2.1 cm.", "Findings discussed with Dr. Smith at 3 p.m."],
    ["Opacities, e.g.", "in the right lower lobe, are likely atelectasis vs. pneumonia."],
    [
        "Lungs and Airways:\n- No focal consolidation.",
        "- Mild atelectasis.",
        "Pleura:\n- No effusion.",
    ],
    ["ET tube tip 4.5 cm above the carina.", "NG tube in the stomach."],
    ["Heart size is normal i.e.", "no cardiomegaly.", "Mediastinum is unremarkable."],
    ["Comparison is made to the study from Jan. Interval improvement."],
    ["Approx.", "2 cm nodule.", "Recommend CT, etc.", "for follow-up."],
    ["Left PICC line terminates in the SVC.", "Right IJ catheter unchanged."],
    ["Findings: Mild pulmonary edema!Is there effusion?", "Possibly a small one."],
    ["No.", "2 rib fracture is healed.", "St. Mary's report reviewed."],
    ["."],
    ["."],
    ["Mild cardiomegaly.", "Pulmonary vascular congestion.", "Small effusions."],
]
PUNKT_SHA256 = {
    "abbrev_types.txt": "92a3e070f43d9b4c5534758ca40ad7343b04e7e29bfe0c2eb658a39445a4f779",
    "collocations.tab": "8e2da1225e4dd2cc9dba261ee231ccb134859e21b46006e7f472c5ee269af0cf",
    "ortho_context.tab": "4bbcca25ed3d3f06c02402abf8419b9f033b8adc06e7b482eca4e45f81a5dc4c",
    "sent_starters.txt": "f3f8535483e1dba487241b764945168123bca3209a9645e59acd1225dc76edac",
}


def test_shipped_punkt_data_is_the_released_english_model() -> None:
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in PUNKT_DIR.iterdir()}
    assert found == PUNKT_SHA256


def test_split_matches_recorded_radeval_output() -> None:
    assert [split_sentences(text) for text in CORPUS] == EXPECTED


@pytest.fixture
def nltk_with_shipped_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import nltk
    import nltk.tokenize

    shutil.copytree(PUNKT_DIR, tmp_path / "tokenizers" / "punkt_tab" / "english")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    yield nltk
    nltk.tokenize._get_punkt_tokenizer.cache_clear()


def test_punkt_equals_nltk_sent_tokenize(nltk_with_shipped_data) -> None:  # type: ignore[no-untyped-def]
    nltk = nltk_with_shipped_data
    for text in CORPUS:
        cleaned = strip_numbering(text)
        assert list(punkt().tokenize(cleaned)) == nltk.sent_tokenize(cleaned)
        assert list(punkt().tokenize(text)) == nltk.sent_tokenize(text)


def test_no_download_is_attempted(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("nltk.download called")

    monkeypatch.setattr(nltk, "download", refuse)
    punkt.cache_clear()
    assert split_sentences("Dr. Smith called. No effusion.") == [
        "Dr. Smith called.",
        "No effusion.",
    ]
