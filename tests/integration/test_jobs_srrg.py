"""`srrg-reports` end to end: a real SRRG worker process (tiny weights), real job runners, a folder
of X-rays (PNG, DICOM, a broken file) -> a Parquet/JSONL report table; SIGKILL mid-job resumes
from the finished shards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.harness import JobsEnv, WorkerProcess
from tests.srrg_support import dicom, gradient, png, xray
from workers.runtime.client import SyncOIPClient

MODELS = ["srrg-findings", "srrg-impression"]


@pytest.fixture(scope="module")
def srrg_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with WorkerProcess(MODELS, tmp_path_factory.mktemp("models")) as worker:
        yield worker


def write_inputs(folder: Path, count: int) -> None:
    (folder / "study").mkdir(parents=True)
    for i in range(count):
        (folder / f"cxr_{i:02d}.png").write_bytes(png(xray(i)))
    (folder / "study" / "frontal.dcm").write_bytes(dicom(gradient().astype(np.uint16) * 200))
    (folder / "broken.png").write_bytes(b"not a png at all" * 10)
    (folder / "notes.txt").write_text("ignored: not an X-ray")


def test_reports_table_for_a_folder(
    tmp_path: Path, jobs_env: JobsEnv, srrg_worker: WorkerProcess
) -> None:
    import pyarrow.parquet as pq

    source = tmp_path / "inputs"
    write_inputs(source, 5)
    jobs_env.settings_kwargs["routes"] = {m: srrg_worker.url for m in MODELS}
    jobs_env.start_runner()
    params = {"source": str(source), "num_beams": 1, "max_length": 16}
    job = jobs_env.submit("srrg-reports", params)
    done = jobs_env.wait(job.id, lambda j: j.terminal, 120, "the report job to finish")

    assert done.state == "succeeded", done.error
    assert done.summary["reports"] == 6 and done.summary["errors"] == 1
    assert done.summary["planned"] == 7 and done.shards_total == 2  # shard size 5
    out = Path(done.artifact_uri)
    table = pq.read_table(out / "reports.parquet").to_pylist()
    rows = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]
    assert table == rows and [r["index"] for r in rows] == list(range(7))
    ids = [r["image_id"] for r in rows]
    assert ids == ["broken", *(f"cxr_{i:02d}" for i in range(5)), "study/frontal"]
    broken = rows[0]
    assert broken["status"] == "error" and "not an image" in broken["error"]
    assert broken["findings"] is None and broken["structure_valid"] is None
    with SyncOIPClient(srrg_worker.url) as client:
        for row in rows[1:]:
            assert row["status"] == "ok" and row["machine_generated"] is True
            assert row["findings_weights_digest"].startswith("sha256:")
            assert row["structure_valid"] == (
                row["findings_structure_valid"] and row["impression_structure_valid"]
            )
            data = Path(row["source"]).read_bytes()
            for section in ("findings", "impression"):
                direct = client.infer(
                    f"srrg-{section}",
                    {"IMAGE": np.array([data], dtype=np.object_)},
                    {"num_beams": 1, "max_length": 16},
                )
                assert row[section] == bytes(direct.outputs["report"][0]).decode()
    card = (out / "README.md").read_text()
    assert "MACHINE-GENERATED" in card and "data_files: reports.parquet" in card


def test_sigkill_mid_job_resumes_from_the_finished_shards(
    tmp_path: Path, jobs_env: JobsEnv, srrg_worker: WorkerProcess
) -> None:
    source = tmp_path / "inputs"
    source.mkdir()
    for i in range(15):
        (source / f"cxr_{i:02d}.png").write_bytes(png(xray(100 + i)))
    jobs_env.settings_kwargs["routes"] = {m: srrg_worker.url for m in MODELS}
    first = jobs_env.start_runner()
    params = {"source": str(source), "sections": ["impression"], "concurrency": 1}
    job = jobs_env.submit("srrg-reports", params)  # released decoding: 2 beams, 128 tokens
    jobs_env.wait(job.id, lambda j: j.shards_done >= 1, 120, "a finished shard")
    first.kill()
    finished = set(jobs_env.store.shards(job.id))
    assert 1 <= len(finished) < 3, "the job ended before the kill: make its items slower"

    jobs_env.start_runner()
    done = jobs_env.wait(job.id, lambda j: j.terminal, 180, "the job on the second runner")
    assert done.state == "succeeded", done.error
    assert done.attempt == 2 and done.summary["reports"] == 15
    starts = jobs_env.store.shard_starts(job.id)
    assert all(starts[shard] == 1 for shard in finished)  # never redone
    rows = Path(done.artifact_uri, "reports.jsonl").read_text().splitlines()
    assert [json.loads(r)["image_id"] for r in rows] == [f"cxr_{i:02d}" for i in range(15)]
