"""Benchmark jobs against a real OpenAI-compatible server: vLLM on the CPU (.venv-vllm) serving
a tiny Idefics3 multimodal model that answers "Left" to everything, started once for the module.

- `benchmark-smmile` through the API: zero-shot, ICL and both ablations, exact match, the same
  server as the LLM judge, per speciality and image type;
- `benchmark-smmile` (multiple choice) through the CLI, the endpoint being the platform
  gateway's own `/v1/chat/completions` (proxied to vLLM);
- `benchmark-medval` with the OpenAI-compatible evaluator (grades from the constrained retry).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.bench_jobs_support import VLLM_PYTHON, cli_job, gateway_process, sse, vllm_server
from tests.harness import JobsEnv
from workers.benchmarks import medval_data
from workers.benchmarks.smmile_data import write_tiny_dataset

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SERVED = "tiny-vlm"
CONDITIONS = [
    "0-shot",
    "ICL",
    "ICL+irrelevant",
    "ICL+most_relevant_first",
    "ICL+most_relevant_last",
]


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.benchmarks_support import build_vlm

    if not VLLM_PYTHON.exists():
        pytest.skip(".venv-vllm is missing: build it with `make vllm-env` (scripts/vllm_env.sh)")
    root = tmp_path_factory.mktemp("vlm")
    model = build_vlm(root / "model", reply="Left")
    with vllm_server(
        model,
        SERVED,
        root / "vllm.log",
        "--max-model-len",
        "4096",
        "--limit-mm-per-prompt",
        '{"image": 16}',
    ) as url:
        yield url


@pytest.fixture
def api(jobs_env: JobsEnv) -> Iterator[TestClient]:
    with TestClient(create_app(jobs_env.settings)) as client:
        yield client


def test_smmile_zero_shot_icl_ablations_and_judge_through_the_api(
    api: TestClient, jobs_env: JobsEnv, vllm_url: str, tmp_path: Path
) -> None:
    write_tiny_dataset(tmp_path / "smmile")
    endpoint = {"base_url": vllm_url, "model": SERVED}
    params = {
        "source": str(tmp_path / "smmile"),
        "endpoint": endpoint,
        "judge": endpoint,
        "irrelevant_example": True,
        "most_relevant": ["first", "last"],
        "max_tokens": 16,
        "concurrency": 3,
    }
    jobs_env.start_runner()
    job = api.post("/v1/jobs", json={"type": "benchmark-smmile", "params": params})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    events = sse(api, job_id)
    assert events[-1][1]["state"] == "succeeded", api.get(f"/v1/jobs/{job_id}").json()
    assert [e["progress"]["done"] for k, e in events if k == "progress"][-1] == 15

    metrics = json.loads(api.get(f"/v1/jobs/{job_id}/artifacts/metrics.json").content)
    assert list(metrics["conditions"]) == CONDITIONS
    for name, result in metrics["conditions"].items():
        # "Left" is right for the radiology problem only, in every condition
        assert result["accuracy"] == pytest.approx(100 / 3), name
        strata = result["stratification"]
        assert strata["speciality_accuracy"] == {"radiology": 100, "dermatology": 0, "pathology": 0}
        assert strata["flag_image_type_accuracy"]["X-Ray"] == 100
        judge = result["llm_judge"]  # the judge answers "Left": never a well-formed 0/1
        assert judge["accuracy"] == 0 and judge["summary"]["llm_err_count"] == 3
    assert metrics["conditions"]["0-shot"]["stratification"]["flag_num_ICL_accuracy"] == {
        "0": 100 / 3
    }

    table = pq.read_table(
        io.BytesIO(api.get(f"/v1/jobs/{job_id}/artifacts/samples.parquet").content)
    ).to_pylist()
    rows = {(r["condition"], r["problem_id"]): r for r in table}
    assert all(r["response"] == "Left" and r["error"] is None for r in table)
    assert rows[("0-shot", "problem-0")]["icl"] is None
    assert json.loads(rows[("ICL", "problem-0")]["icl"]) == [["problem-0", 0], ["problem-0", 1]]
    last = rows[("ICL+most_relevant_last", "problem-0")]
    assert json.loads(last["icl"]) == [["problem-0", 1], ["problem-0", 0]] and last["moved"]
    assert rows[("ICL+most_relevant_first", "problem-1")]["moved"] is False
    injected = json.loads(rows[("ICL+irrelevant", "problem-0")]["injected"])
    assert injected[0] != "problem-0"
    assert len(json.loads(rows[("ICL+irrelevant", "problem-0")]["icl"])) == 3
    report = api.get(f"/v1/jobs/{job_id}/artifacts/report.md").text
    assert "ICL minus zero-shot: +0.0 points." in report and "| radiology |" in report
    assert api.get(f"/v1/jobs/{job_id}/artifacts/accuracy.png").content[:4] == b"\x89PNG"


def test_smmile_mcqa_through_the_cli_and_the_platform_openai_route(
    jobs_env: JobsEnv, vllm_url: str, tmp_path: Path
) -> None:
    write_tiny_dataset(tmp_path / "smmile")
    env = jobs_env.env(MEDSERVE_VLLM_BASE_URL=vllm_url, MEDSERVE_VLLM_MODEL=SERVED)
    jobs_env.start_runner()
    with gateway_process(env, tmp_path / "gateway.log") as gateway:
        params = {
            "source": str(tmp_path / "smmile"),
            "task_format": "mcqa",
            "modes": ["ICL"],
            "endpoint": {"base_url": f"{gateway}/v1", "model": SERVED},
            "irrelevant_example": False,
            "most_relevant": [],
            "max_tokens": 16,
        }
        shown = cli_job(
            env, gateway, "examples/jobs/benchmark_smmile.json", params, tmp_path / "out"
        )
    assert shown["summary"]["accuracy"] == {"ICL": pytest.approx(100 / 3, abs=1e-3)}
    table = pq.read_table(tmp_path / "out" / "samples.parquet").to_pylist()
    by_problem = {r["problem_id"]: r for r in table}
    first = by_problem["problem-0"]
    assert json.loads(first["options"])[first["selected_option"]] == "Left" and first["correct"]
    assert by_problem["problem-1"]["selected_option"] == "EXTRACTION_FAILED"
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["conditions"]["ICL"]["scoring"] == "mcqa"


def test_medval_bench_with_an_openai_compatible_evaluator(
    api: TestClient, jobs_env: JobsEnv, vllm_url: str, tmp_path: Path
) -> None:
    medval_data.write_synthetic_csv(tmp_path / "medval" / "test.csv", n_per_task=1, seed=5)
    params = {
        "source": str(tmp_path / "medval"),
        "max_tokens": 256,
        "concurrency": 3,
        "evaluator": {"base_url": vllm_url, "model": SERVED},
    }
    jobs_env.start_runner()
    job_id = api.post("/v1/jobs", json={"type": "benchmark-medval", "params": params}).json()["id"]
    assert sse(api, job_id)[-1][1]["state"] == "succeeded"
    metrics = json.loads(api.get(f"/v1/jobs/{job_id}/artifacts/metrics.json").content)
    assert metrics["graded"] == 6 and metrics["overall"]["n"] == 6
    assert (metrics["evaluator"]["engine"], metrics["evaluator"]["served_model"]) == (
        "vllm",
        SERVED,
    )
    table = pq.read_table(
        io.BytesIO(api.get(f"/v1/jobs/{job_id}/artifacts/samples.parquet").content)
    ).to_pylist()
    assert all(r["constrained"] for r in table)  # "Left" never parses: the retry grades
