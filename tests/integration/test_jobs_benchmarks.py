"""Benchmark jobs end to end on real Redis, real `medserve jobs-worker` processes and a real model
worker serving the tiny MedVAL-4B and GREEN judge: `benchmark-medval` through the API (SSE
progress, artifacts) and the CLI, SIGKILL of its runner mid-job and resume, and
`benchmark-reports` over a CSV of pairs (GREEN on the worker, F1-SRR-BERT, BLEU, ROUGE and
BERTScore in the runner) and over a folder of X-rays run through the tiny SRRG model."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.bench_jobs_support import cli_job, gateway_process, sse
from tests.harness import JobsEnv, WorkerProcess
from workers.benchmarks import medval_data

pytestmark = [pytest.mark.slow]

MEDVAL, GREEN = "medval-4b", "green-radllama2-7b"


@pytest.fixture(scope="module")
def llm_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with WorkerProcess([MEDVAL, GREEN], tmp_path_factory.mktemp("models")) as worker:
        yield worker


@pytest.fixture
def api(jobs_env: JobsEnv, llm_worker: WorkerProcess) -> Iterator[TestClient]:
    jobs_env.settings_kwargs["routes"] = {MEDVAL: llm_worker.url, GREEN: llm_worker.url}
    with TestClient(create_app(jobs_env.settings)) as client:
        yield client


def artifact(client: TestClient, job_id: str, path: str) -> bytes:
    answer = client.get(f"/v1/jobs/{job_id}/artifacts/{path}")
    assert answer.status_code == 200, answer.text
    return answer.content


def medval_copy(root: Path, n_per_task: int) -> Path:
    medval_data.write_synthetic_csv(root / "data" / "test.csv", n_per_task=n_per_task, seed=3)
    return root


MEDVAL_PARAMS = {"max_tokens": 200, "constrained": True, "concurrency": 3}


def test_benchmark_medval_through_the_api(
    api: TestClient, jobs_env: JobsEnv, tmp_path: Path
) -> None:
    source = medval_copy(tmp_path / "medval", n_per_task=2)  # 6 tasks x 2 = 12 rows
    jobs_env.start_runner()
    body = {"type": "benchmark-medval", "params": {"source": str(source), **MEDVAL_PARAMS}}
    job = api.post("/v1/jobs", json=body)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    events = sse(api, job_id)
    assert events[-1] == ("end", {"id": job_id, "state": "succeeded"}), events[-3:]
    done = [e["progress"]["done"] for kind, e in events if kind == "progress"]
    assert done == sorted(done) and done[-1] == 12 and any(0 < d < 12 for d in done)

    view = api.get(f"/v1/jobs/{job_id}").json()
    summary = view["summary"]
    assert summary["rows"] == 12 and summary["graded"] + summary["failed"] == 12
    assert summary["graded"] >= 10  # a random model grades through the constrained retry
    paths = {a["path"] for a in api.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]}
    expected = {"metrics.json", "report.md", "confusion.png", "samples.parquet"}
    assert expected | {"medval-bench.csv"} <= paths

    metrics = json.loads(artifact(api, job_id, "metrics.json"))
    assert set(metrics["per_task"]) == set(medval_data.TASKS)
    assert metrics["overall"]["n"] == summary["graded"]
    assert metrics["evaluator"]["engine"] == "transformers"
    assert metrics["evaluator"]["weights_digest"].startswith("sha256:")
    assert metrics["machine_generated"] is True
    assert sum(map(sum, metrics["overall"]["risk"]["confusion"])) == summary["graded"]
    assert artifact(api, job_id, "confusion.png")[:4] == b"\x89PNG"
    assert "| **overall** |" in artifact(api, job_id, "report.md").decode()
    table = pq.read_table(io.BytesIO(artifact(api, job_id, "samples.parquet"))).to_pylist()
    assert [r["index"] for r in table] == list(range(12))
    graded = [r for r in table if r["model_risk"] is not None]
    assert all(r["model_risk"] in (1, 2, 3, 4) and r["physician_risk"] for r in graded)
    upstream = medval_data.read_csv_text(
        io.StringIO(artifact(api, job_id, "medval-bench.csv").decode())
    )
    assert [r["lm_risk_grade"] for r in upstream] == [
        "None" if r["model_risk"] is None else str(r["model_risk"]) for r in table
    ]


def test_benchmark_medval_resumes_after_sigkill(
    jobs_env: JobsEnv, llm_worker: WorkerProcess, tmp_path: Path
) -> None:
    source = medval_copy(tmp_path / "medval", n_per_task=2)  # 12 rows, shards of 5: 3 shards
    jobs_env.settings_kwargs["routes"] = {MEDVAL: llm_worker.url}
    first = jobs_env.start_runner()
    job = jobs_env.submit(
        "benchmark-medval", {"source": str(source), **MEDVAL_PARAMS, "concurrency": 1}
    )
    jobs_env.wait(job.id, lambda j: j.shards_done >= 1, 300, "a finished shard")
    first.kill()
    finished_before = set(jobs_env.store.shards(job.id))
    assert 1 <= len(finished_before) < 3

    jobs_env.start_runner()
    done = jobs_env.wait(job.id, lambda j: j.terminal, 300, "the job to finish after the kill")
    assert done.state == "succeeded", done.error
    assert done.attempt == 2 and done.done == 12
    starts = jobs_env.store.shard_starts(job.id)
    assert all(starts[s] == 1 for s in finished_before)  # finished shards never redone
    out = Path(done.artifact_uri)
    table = pq.read_table(out / "samples.parquet").to_pylist()
    assert [r["index"] for r in table] == list(range(12))  # each row exactly once
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 12 and metrics["graded"] == done.summary["graded"]


@pytest.fixture
def gateway(jobs_env: JobsEnv, tmp_path: Path) -> Iterator[str]:
    with gateway_process(jobs_env.env(), tmp_path / "gateway.log") as url:
        yield url


def test_benchmark_medval_through_the_cli(
    jobs_env: JobsEnv, llm_worker: WorkerProcess, gateway: str, tmp_path: Path
) -> None:
    jobs_env.settings_kwargs["routes"] = {MEDVAL: llm_worker.url}
    jobs_env.start_runner()
    shown = cli_job(
        jobs_env.env(),
        gateway,
        "examples/jobs/benchmark_medval.json",
        {"tasks": ["report2impression", "bhc2spanish"], **MEDVAL_PARAMS},
        tmp_path / "out",
    )
    assert shown["state"] == "succeeded" and shown["summary"]["rows"] == 4
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["per_task"]) == {"report2impression", "bhc2spanish"}
    for name in ("report.md", "confusion.png", "samples.parquet", "medval-bench.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0


REPORTS = [
    ("Heart size is normal. No pleural effusion.", "Small left pleural effusion.", "ap"),
    ("Mild cardiomegaly. Lungs are clear.", "Mild cardiomegaly. Lungs are clear.", "pa"),
    ("No pneumothorax.", "Moderate pulmonary edema.", "ap"),
    ("Stable cardiomegaly. Tube tip in place.", "Tube tip in place.", "pa"),
    ("1. No acute cardiopulmonary process.", "", "ap"),
    ("Right lower lobe consolidation.", "Right lower lobe consolidation. No effusion.", "pa"),
    ("Mild bilateral atelectasis.", "Lungs are clear.", "ap"),
]


@pytest.fixture(scope="module")
def metric_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.benchmarks_support import build_bert, build_srrbert, build_srrg

    root = tmp_path_factory.mktemp("metric-models")
    return {
        "srrbert": build_srrbert(root / "srrbert"),
        "bert": build_bert(root / "bert"),
        "srrg": build_srrg(root / "srrg"),
    }


def test_benchmark_reports_pairs_through_the_api(
    api: TestClient, jobs_env: JobsEnv, metric_models: dict[str, Path], tmp_path: Path
) -> None:
    from workers.benchmarks import green, lexical
    from workers.srrg.f1 import f1_srr_bert
    from workers.srrg.labels import load_labeller

    csv_path = tmp_path / "pairs.csv"
    lines = ["reference,hypothesis,view"] + [
        ",".join(json.dumps(v) for v in row) for row in REPORTS
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    jobs_env.start_runner()
    params = {
        "source": str(csv_path),
        "group_column": "view",
        "green": "required",
        "srrbert": {"model_dir": str(metric_models["srrbert"])},
        "bertscore": {"model_dir": str(metric_models["bert"]), "num_layers": 2},
        "concurrency": 3,
    }
    job = api.post("/v1/jobs", json={"type": "benchmark-reports", "params": params})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    events = sse(api, job_id)
    assert events[-1][1]["state"] == "succeeded", api.get(f"/v1/jobs/{job_id}").json()
    metrics = json.loads(artifact(api, job_id, "metrics.json"))
    m = metrics["metrics"]
    refs, hyps = [r[0] for r in REPORTS], [r[1] for r in REPORTS]
    reply = green.clean_response(_tiny_reply())
    assert m["green"]["mean"] == pytest.approx(green.green_score(reply)) == pytest.approx(0.6)
    assert metrics["provenance"]["green"]["weights_digest"].startswith("sha256:")
    labeller = load_labeller(metric_models["srrbert"], "leaves_with_statuses")
    direct = f1_srr_bert(refs, hyps, labeller, labeller.names)
    assert m["f1_srr_bert"]["aggregate"] == pytest.approx(direct.f1, abs=1e-12)
    assert m["f1_srr_bert"]["details"]["precision"] == pytest.approx(direct.precision)
    assert m["bleu"]["aggregate"] == pytest.approx(lexical.radeval_bleu(refs, hyps).aggregate)
    assert m["rougeL"]["mean"] == pytest.approx(lexical.rouge_l(refs, hyps).aggregate)
    assert 0 < m["bertscore"]["mean"] <= 1
    ap = [i for i, r in enumerate(REPORTS) if r[2] == "ap"]
    group_f1 = f1_srr_bert([refs[i] for i in ap], [hyps[i] for i in ap], labeller, labeller.names)
    assert metrics["per_group"]["ap"]["f1_srr_bert"] == pytest.approx(group_f1.f1)
    assert metrics["per_group"]["ap"]["n"] == 4
    table = pq.read_table(io.BytesIO(artifact(api, job_id, "samples.parquet"))).to_pylist()
    assert [r["f1_srr_bert"] for r in table] == pytest.approx(direct.sample_f1)
    assert [r["green_matched"] for r in table] == [3] * 7
    assert artifact(api, job_id, "metrics.png")[:4] == b"\x89PNG"
    assert "| f1_srr_bert |" in artifact(api, job_id, "report.md").decode()


def _tiny_reply() -> str:
    from model_store.manifest import load_manifests

    return str(load_manifests()[GREEN].tiny["reply"])


def test_benchmark_reports_from_xrays_through_the_cli(
    jobs_env: JobsEnv,
    llm_worker: WorkerProcess,
    gateway: str,
    metric_models: dict[str, Path],
    tmp_path: Path,
) -> None:
    from tests.benchmarks_support import xray_png

    folder = tmp_path / "xrays"
    folder.mkdir()
    for i, (reference, _, _) in enumerate(REPORTS[:4]):
        (folder / f"study{i}.png").write_bytes(xray_png(i))
        (folder / f"study{i}.txt").write_text(reference)
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "broken.txt").write_text("No effusion.")
    jobs_env.settings_kwargs["routes"] = {GREEN: llm_worker.url}
    jobs_env.start_runner()
    params = {
        "source": str(folder),
        "srrg": {"model_dir": str(metric_models["srrg"]), "num_beams": 1, "max_length": 16},
        "srrbert": {"model_dir": str(metric_models["srrbert"])},
    }
    shown = cli_job(
        jobs_env.env(), gateway, "examples/jobs/benchmark_reports.json", params, tmp_path / "out"
    )
    assert shown["summary"]["samples"] == 5 and shown["summary"]["scored"] == 4
    table = pq.read_table(tmp_path / "out" / "samples.parquet").to_pylist()
    broken = [r for r in table if r["image"].endswith("broken.png")]
    assert broken[0]["hypothesis"] is None and "image not used" in broken[0]["error"]
    assert all(isinstance(r["hypothesis"], str) for r in table if r not in broken)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["provenance"]["srrg"]["section"] == "findings"
    assert set(metrics["metrics"]) >= {"green", "f1_srr_bert", "bleu", "rougeL"}
    assert metrics["per_group"] is None  # a folder of X-rays has no group column


SRRG_MODELS = ["srrg-findings", "srr-bert-leaves-with-statuses"]


@pytest.fixture(scope="module")
def srrg_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerProcess, Path]]:
    models = tmp_path_factory.mktemp("srrg-models")
    with WorkerProcess([*SRRG_MODELS, GREEN], models) as worker:
        yield worker, models


def test_benchmark_reports_with_srrg_and_srr_bert_on_workers(
    api: TestClient, jobs_env: JobsEnv, srrg_worker: tuple[WorkerProcess, Path], tmp_path: Path
) -> None:
    from tests.benchmarks_support import xray_png
    from workers.srrg.f1 import f1_srr_bert
    from workers.srrg.labels import load_labeller

    folder = tmp_path / "xrays"
    folder.mkdir()
    for i, (reference, _, _) in enumerate(REPORTS[:4]):
        (folder / f"study{i}.png").write_bytes(xray_png(i))
        (folder / f"study{i}.txt").write_text(reference)
    worker, model_dir = srrg_worker
    jobs_env.settings_kwargs["routes"] = {m: worker.url for m in [*SRRG_MODELS, GREEN]}
    jobs_env.start_runner()
    params = {
        "source": str(folder),
        "green": "required",
        "srrg": {"worker": "srrg-findings", "num_beams": 1, "max_length": 16},
        "srrbert": {"worker": "srr-bert-leaves-with-statuses"},
    }
    job_id = api.post("/v1/jobs", json={"type": "benchmark-reports", "params": params}).json()["id"]
    assert sse(api, job_id)[-1][1]["state"] == "succeeded", api.get(f"/v1/jobs/{job_id}").json()
    metrics = json.loads(artifact(api, job_id, "metrics.json"))
    assert metrics["n_scored"] == 4
    assert metrics["provenance"]["srrg"]["worker"] == "srrg-findings"
    assert metrics["provenance"]["srrbert"]["weights_digest"].startswith("sha256:")
    table = pq.read_table(io.BytesIO(artifact(api, job_id, "samples.parquet"))).to_pylist()
    refs, hyps = [r["reference"] for r in table], [r["hypothesis"] for r in table]
    # the worker's labels give the F1 the library gives with the same weights in process
    labeller = load_labeller(model_dir / SRRG_MODELS[1], "leaves_with_statuses")
    direct = f1_srr_bert(refs, hyps, labeller, labeller.names)
    assert metrics["metrics"]["f1_srr_bert"]["aggregate"] == pytest.approx(direct.f1, abs=1e-12)


def test_a_cancelled_benchmark_keeps_its_finished_shards_in_the_metrics(
    jobs_env: JobsEnv, llm_worker: WorkerProcess, tmp_path: Path
) -> None:
    source = medval_copy(tmp_path / "medval", n_per_task=4)  # 24 rows, 5 shards
    jobs_env.settings_kwargs["routes"] = {MEDVAL: llm_worker.url}
    jobs_env.start_runner()
    job = jobs_env.submit(
        "benchmark-medval", {"source": str(source), **MEDVAL_PARAMS, "concurrency": 1}
    )
    jobs_env.wait(job.id, lambda j: j.shards_done >= 1, 300, "a finished shard")
    jobs_env.control.cancel("t1", job.id)
    stopped = jobs_env.wait(job.id, lambda j: j.terminal, 60, "the job to stop")
    assert stopped.state == "cancelled"
    out = Path(stopped.artifact_uri)
    metrics = json.loads((out / "metrics.json").read_text())
    table = pq.read_table(out / "samples.parquet").to_pylist()
    assert len(table) == 24 and metrics["rows"] == 24
    kept = 5 * stopped.shards_done
    assert sum(r["error"] != "not graded (job stopped early)" for r in table) == kept
    assert metrics["graded"] + metrics["failed"] == 24 and metrics["graded"] <= kept
