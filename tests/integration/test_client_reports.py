"""`medserve_client` on the report and CT families (SRRG, GREEN, Merlin) against real stacks
(the stacks the examples use, so a full run starts none of its own), and every job type's
`submit_<type>` with its example's parameters. A new route or job type is one test here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medserve_client import Client, InvalidRequest
from tests.harness import ROOT

SRRG = ["srrg-findings", "srrg-impression", "srr-bert-leaves", "srr-bert-leaves-with-statuses",
        "srr-bert-upper", "srr-bert-upper-with-statuses"]  # fmt: skip
MERLIN = ["merlin", "merlin-five-year", "merlin-report"]
EXAMPLES = ROOT / "examples"
CT = EXAMPLES / "merlin" / "data" / "phantom_ct.nii.gz"
XRAY = EXAMPLES / "srrg" / "data" / "cxr_0.png"


def _example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


@pytest.fixture(scope="module")
def srrg(embedded_stack) -> Client:
    return Client(embedded_stack(SRRG).url)


@pytest.fixture(scope="module")
def merlin(embedded_stack) -> Client:
    return Client(embedded_stack(MERLIN).url)


def test_srrg_generate_gives_a_structured_report(srrg: Client) -> None:
    report = srrg.srrg_generate(XRAY, sections=["findings", "impression"], max_length=32)
    assert report.machine_generated and report.findings and report.impression
    assert report.findings.section == "findings" and report.impression.section == "impression"
    assert isinstance(report.findings.headers, dict | None) and report.text
    assert report.findings.model == "srrg-findings" and report.findings.weights == "random-tiny"


def test_srrg_labels_and_score(srrg: Client) -> None:
    text = "Lungs and Airways:\n- No focal consolidation.\n\nPleura:\n- Small left effusion."
    labelled = srrg.srrg_labels([text], label_set="leaves", probabilities=True)
    (one,) = labelled.results
    assert one.sentences and labelled.label_names and labelled.label_set == "leaves"
    assert len(one.sentences[0].probabilities or []) == len(labelled.label_names)
    score = srrg.srrg_score(["1. Small left pleural effusion."], ["1. No effusion."])
    assert 0.0 <= score.f1 <= 1.0 and len(score.per_sample) == 1
    with pytest.raises(InvalidRequest):
        srrg.srrg_labels([""])


def test_green_scores_one_pair_and_a_batch(embedded_stack) -> None:
    with Client(embedded_stack(["green-radllama2-7b"]).url) as client:
        one = client.green_score("Heart size is normal.", "Small left pleural effusion.")
        assert len(one.results) == 1 and one.machine_generated
        pairs = _example("green/score.json")["body"]["pairs"]
        batch = client.green_score_batch(pairs)
        assert len(batch.results) == 2 and batch.green == pytest.approx(
            sum(r.green for r in batch.results) / 2
        )


def test_merlin_analyze_report_and_text_embeddings(merlin: Client) -> None:
    analysis = merlin.merlin_analyze(CT, top_k=3, findings=["ascites"],
                                     embedding_format="npy")  # fmt: skip
    assert len(analysis.phenotypes) == 3 and analysis.findings[0].name == "ascites"
    assert analysis.embedding().shape == (512,) and analysis.machine_generated
    assert analysis.preprocessing["output_shape"]
    report = merlin.merlin_report(CT, organ_systems=["liver", "kidneys"], max_new_tokens=8)
    assert [s.organ_system for s in report.sections] == ["liver", "kidneys"]
    assert report.machine_generated and report.disclaimer
    texts = merlin.merlin_embed_text(["Liver: normal.", "Kidneys: cysts."], format="npy")
    matrix = texts.to_numpy()
    assert matrix.shape == (2, texts.dim) and np.allclose(np.linalg.norm(matrix, axis=1), 1, 1e-3)
    assert merlin.merlin_embed_text("Liver: normal.").to_numpy().shape == (1, texts.dim)


JOB_EXAMPLES = {
    "srrg-reports": "srrg/reports_job.json",
    "merlin-embeddings": "merlin/embeddings_job.json",
    "benchmark-medval": "jobs/benchmark_medval.json",
    "benchmark-reports": "jobs/benchmark_reports.json",
    "benchmark-smmile": "jobs/benchmark_smmile.json",
    "synthetic-qc": "jobs/synthetic_qc.json",
}


@pytest.mark.parametrize("kind", sorted(JOB_EXAMPLES))
def test_every_job_type_is_submitted_with_its_examples_parameters(
    kind: str, embedded_stack, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    example = _example(JOB_EXAMPLES[kind])
    stack = embedded_stack(list(example.get("models") or ["echo"]), redis_url=redis_url)
    monkeypatch.chdir(ROOT)
    with Client(stack.url) as client:
        method = getattr(client, f"submit_{kind.replace('-', '_')}")
        job = method(**example["body"]["params"])
        assert (job.type, job.state) == (kind, "queued")
        assert job.params["source"] == str(ROOT / example["body"]["params"]["source"])
        assert client.cancel_job(job.id).state == "cancelled"  # leave nothing queued
