"""Parity with RadEval 2.2.1: on the same tiny SRR-BERT weights (written by our builder in the
released layout), our F1-SRR-BERT equals RadEval's `srrbert` metric (aggregate and per-sample),
our sentence labels equal RadEval's SRRBert for all four label sets (the Upper-with-Statuses id
quirk included), and our sentence split equals RadEval's on a report corpus. RadEval runs in its
own venv (.venv-radeval, scripts/radeval_ref_env.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model_store.manifest import Manifest
from workers.srrg import tiny
from workers.srrg.f1 import f1_srr_bert
from workers.srrg.label_maps import LABEL_SETS, METRIC_LABEL_SET, label_names
from workers.srrg.labels import load_labeller
from workers.srrg.sentences import punkt, split_sentences

pytestmark = [pytest.mark.parity, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REF_VENV = ROOT / ".venv-radeval"
SCRIPT = Path(__file__).with_name("radeval_reference.py")
RADEVAL_BATCH = 4  # SRRBert's default batch size: same batches, same padding
TOL = 1e-12

REFS = [
    "1. Small left pleural effusion.\n2. No pneumothorax.\n3. Stable cardiomegaly.",
    "Lungs and Airways:\n- No focal consolidation.\n\nPleura:\n- No pleural effusion.",
    "1. Moderate pulmonary edema. 2. Right lower lobe consolidation, e.g. pneumonia.",
    "No acute cardiopulmonary process.",
    "1. Nodule measures 3.5 cm vs. 2.1 cm previously.\n2. Discussed with Dr. Smith.",
    "",
    "Tubes, Catheters, and Support Devices:\n- ET tube tip 4 cm above the carina.",
    "1. Lungs are clear.",
]
HYPS = [
    "1. Small left pleural effusion.\n2. Stable cardiomegaly.",
    "Lungs and Airways:\n- Mild atelectasis.\n\nPleura:\n- Small pleural effusion.",
    "1. Mild pulmonary edema.",
    "No acute cardiopulmonary process.",
    "1. Nodule of 3.5 cm.",
    "1. No pneumothorax.",
    "Tubes, Catheters, and Support Devices:\n- Tube tip in place.",
    "",
]
SENTENCES = [s for report in REFS + HYPS for s in split_sentences(report)]


def manifest(key: str) -> Manifest:
    return Manifest(
        name=f"srr-bert-{key}".replace("_", "-"),
        family="srrg",
        version="1",
        source={"repo_id": LABEL_SETS[key].repo_ids[-1], "revision": "0" * 40},
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict]:
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("RadEval's venv is absent: build it with scripts/radeval_ref_env.sh")
    root = tmp_path_factory.mktemp("srrbert-parity")
    folders = {}
    for key in LABEL_SETS:
        folders[key] = root / key
        tiny.build(manifest(key), folders[key], seed=11)
    request = {
        "folders": {k: str(v) for k, v in folders.items()},
        "sentences": SENTENCES,
        "refs": REFS,
        "hyps": HYPS,
        "corpus": REFS + HYPS,
    }
    (root / "request.json").write_text(json.dumps(request))
    # A private copy: nltk refuses hard-linked data files (pathsec), and a copied venv may hold
    # hard links to another checkout's files.
    shutil.copytree(REF_VENV / "nltk_data", root / "nltk_data")
    env = {**os.environ, "NLTK_DATA": str(root / "nltk_data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(python), str(SCRIPT), str(root / "request.json"), str(root / "out.json")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
    assert done.returncode == 0, "the reference script failed (see stderr)"
    return folders, json.loads((root / "out.json").read_text())


def test_sentence_split_matches(reference) -> None:  # type: ignore[no-untyped-def]
    _, ref = reference
    assert [split_sentences(text) for text in REFS + HYPS] == ref["split"]
    assert [list(punkt().tokenize(text)) for text in REFS + HYPS] == ref["sent_tokenize"]


@pytest.mark.parametrize("key", list(LABEL_SETS))
def test_sentence_labels_match(reference, key: str) -> None:  # type: ignore[no-untyped-def]
    folders, ref = reference
    for batch in (RADEVAL_BATCH, 32):
        ours = load_labeller(folders[key], key, batch_size=batch)(SENTENCES)
        assert ours.tolist() == ref["labels"][key], f"{key}, batch {batch}"


def test_f1_srr_bert_matches(reference) -> None:  # type: ignore[no-untyped-def]
    folders, ref = reference
    key = METRIC_LABEL_SET
    labeller = load_labeller(folders[key], key, batch_size=RADEVAL_BATCH)
    ours = f1_srr_bert(REFS, HYPS, labeller, label_names(key))
    raw = ref["raw"]
    assert abs(ours.f1 - raw["weighted"]["f1-score"]) <= TOL
    assert abs(ours.precision - raw["weighted"]["precision"]) <= TOL
    assert abs(ours.recall - raw["weighted"]["recall"]) <= TOL
    assert 0.0 < ours.f1 < 1.0  # a table that tests something
    for mine, theirs in (
        (ours.sample_f1, raw["sample_f1"]),
        (ours.sample_precision, raw["sample_precision"]),
        (ours.sample_recall, raw["sample_recall"]),
    ):
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) <= TOL
    per_sample = ref["per_sample"]
    assert per_sample["srrbert_weighted_f1"] == pytest.approx(ours.sample_f1, abs=TOL)
    aggregate = ref["aggregate"]
    assert aggregate["srrbert_weighted_f1"] == round(ours.f1, 4)
    assert aggregate["srrbert_weighted_precision"] == round(ours.precision, 4)
    assert aggregate["srrbert_weighted_recall"] == round(ours.recall, 4)
    assert aggregate["srrbert_label_scores"]
    for label, row in aggregate["srrbert_label_scores"].items():
        mine = ours.per_label[label]
        assert abs(mine["f1"] - row["f1-score"]) <= TOL and mine["support"] == row["support"]
