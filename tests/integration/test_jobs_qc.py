"""Synthetic-data QC end to end: a real worker process serving RoentGen-v2, SRRG, SRR-BERT and the
demographic classifiers (tiny weights), real Redis and real job runners.

Planted failure: the sex classifier's tiny weights always say male, the race one always White and
the age one always 55, so the decisions are known in advance: female images and images asked
for age 20-30 fail, male 50-60 ones pass. A `synthetic-dataset` campaign with `qc` through the
API regenerates the rejected slots with the next derived seeds, keeps only accepted images,
keeps the rejected split, and warns about the female and 20-30 subgroups; its report equals a
recomputation from the per-image rows. The same campaign through the CLI, with its runner
SIGKILLed after a shard, gives the same images and decisions. `synthetic-qc` checks a generated
imagefolder in the released RoentGen-v2 prompt-CSV layout.
"""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.harness import CLI, ROOT, JobsEnv, WorkerProcess
from tests.qc_support import ALWAYS_MALE, ALWAYS_WHITE, QC_MODELS, check_report, plant
from tests.srrg_support import jpeg, xray
from workers.imaging.synthetic import read_png_label
from workers.jobs.campaign import plan_items
from workers.roentgen.contract import image_seed
from workers.runtime.client import SyncOIPClient

MODELS = ["roentgen-v2", *QC_MODELS]
FIRST_RUN: list[dict[str, Any]] = []  # the API test's rows, when it ran in this session
DECODING = {"num_beams": 1, "max_length": 24}
QC_TINY = {**DECODING, "allow_random_weights": True}  # the tiny models are random builds
CAMPAIGN: dict[str, Any] = {
    "findings": ["Small right pleural effusion."],
    "sexes": ["female", "male"],
    "age_bins": [[50, 60], [20, 30]],
    "races": ["WHITE"],
    "images_per_cell": 2,  # 4 cells -> 8 slots, 2 shards of 5
    "seed": 5,
    "steps": 1,
    "height": 64,
    "width": 64,
    "concurrency": 4,
    "qc": {"max_attempts": 2, "keep_rejected": True, "min_group_size": 4, **QC_TINY},
}


@pytest.fixture(scope="module")
def qc_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    models = tmp_path_factory.mktemp("models")
    plant(models, "cxr-sex", ALWAYS_MALE)
    plant(models, "cxr-race", ALWAYS_WHITE)
    with WorkerProcess(MODELS, models) as worker:
        worker.wait_ready(timeout=180)
        yield worker


@pytest.fixture
def env(jobs_env: JobsEnv, qc_worker: WorkerProcess) -> JobsEnv:
    jobs_env.settings_kwargs["routes"] = {m: qc_worker.url for m in MODELS}
    return jobs_env


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_campaign(out: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The planted decisions, the splits, the seeds and the report of one QC campaign."""
    plan = {item["index"]: item for item in plan_items(CAMPAIGN)}
    images = rows_of(out / "qc_images.jsonl")
    for row in images:
        assert row["seed"] == image_seed(plan[row["index"]]["seed"], row["qc_attempt"])
        expect_pass = row["sex"] == "male" and row["age_bin"] == "50-60"
        assert row["qc_passed"] is expect_pass, row
        assert row["qc_sex_pred"] == "male" and row["qc_race_pred"] == "WHITE"
        assert row["qc_age_pred"] == 55.0 and row["qc_age_delta"] == 55 - row["age"]
        assert ("sex" in row["qc_failed"]) is (row["sex"] == "female")
        assert ("age" in row["qc_failed"]) is (row["age_bin"] == "20-30")
        assert row["qc_report"] and row["qc_label_f1"] is not None
    assert len(images) == 2 + 6 * 2  # 2 slots pass at once, 6 fail twice

    accepted = rows_of(out / "metadata.jsonl")
    assert [r["index"] for r in accepted] == sorted(
        i for i, item in plan.items() if item["sex"] == "male" and item["age_bin"] == "50-60"
    )
    assert all(r["qc_attempts"] == 1 and r["qc_accepted"] for r in accepted)
    pngs = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png"))
    assert pngs == sorted(r["file_name"] for r in accepted)
    for row in accepted:
        label = read_png_label((out / row["file_name"]).read_bytes())
        assert label["synthetic"] is True and label["provenance"]["seed"] == row["seed"]

    rejected = rows_of(out / "rejected.jsonl")
    assert len(rejected) == 12 and not any(r["qc_passed"] for r in rejected)
    kept = sorted(p.relative_to(out).as_posix() for p in (out / "rejected").rglob("*.png"))
    assert kept == sorted(r["file_name"] for r in rejected)
    assert {r["qc_attempt"] for r in rejected} == {0, 1}

    report = json.loads((out / "qc.json").read_text())
    check_report(report, images)
    warned = {(w["dimension"], w["value"]) for w in report["warnings"]}
    assert warned == {("sex", "female"), ("age_bin", "20-30")}
    assert summary["qc"]["warnings"] == [w["message"] for w in report["warnings"]]
    assert summary["qc"]["slots"] == 8 and summary["qc"]["filled_slots"] == 2
    assert summary["images"] == 2 and summary["matches_plan"] is False
    assert report["checks_run"] == ["age", "findings", "race", "sex"]
    assert {m["model"] for m in report["models"]} == set(QC_MODELS)
    assert "WARNING: sex=female" in (out / "qc.md").read_text()
    assert "WARNING: sex=female" in (out / "README.md").read_text()
    for plot in ("qc_pass_rate", "qc_label_f1"):
        assert (out / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
    return images


def served(worker: WorkerProcess, model: str) -> int:
    """Images `model` has answered so far (the worker's own statistics)."""
    import httpx

    stats = httpx.get(f"{worker.url}/v2/models/{model}/stats", timeout=10).json()
    return int(stats["model_stats"][0]["inference_count"])


def test_qc_campaign_through_the_api(env: JobsEnv, qc_worker: WorkerProcess) -> None:
    before = {m: served(qc_worker, m) for m in QC_MODELS if m.startswith(("cxr", "srrg"))}
    env.start_runner()
    with TestClient(create_app(env.settings)) as api:
        answer = api.post("/v1/jobs", json={"type": "synthetic-dataset", "params": CAMPAIGN})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        done = env.wait(job_id, lambda j: j.terminal, 400, "the QC campaign")
        assert done.state == "succeeded", done.error
        listing = api.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]
        paths = {a["path"] for a in listing}
        assert {"qc.json", "qc.md", "qc_images.jsonl", "rejected.jsonl",
                "plots/qc_pass_rate.png"} <= paths  # fmt: skip
        served_report = api.get(f"/v1/jobs/{job_id}/artifacts/qc.json").json()
    out = Path(done.artifact_uri)
    assert served_report == json.loads((out / "qc.json").read_text())
    images = check_campaign(out, done.summary)
    images_in = ["cxr-age", "cxr-race", "cxr-sex", "srrg-impression"]  # SRR-BERT counts sentences
    assert {m: served(qc_worker, m) - before[m] for m in images_in} == dict.fromkeys(images_in, 14)

    accepted = rows_of(out / "metadata.jsonl")[0]
    data = np.array([(out / accepted["file_name"]).read_bytes()], dtype=np.object_)
    with SyncOIPClient(qc_worker.url) as client:
        report = client.infer("srrg-impression", {"IMAGE": data}, DECODING)
        assert bytes(report.outputs["report"][0]).decode() == accepted["qc_report"]
        sex = client.infer("cxr-sex", {"IMAGE": data})
        assert bytes(sex.outputs["prediction"][0]).decode() == "male"
    FIRST_RUN.append({"rows": images, "out": str(out)})  # for the CLI test's comparison


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "jobs", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=400)  # fmt: skip


@pytest.fixture
def gateway(env: JobsEnv, tmp_path: Path) -> Iterator[str]:
    from core.net import free_port
    from tests.harness import Proc, wait_for

    port = free_port()
    proc = Proc("gateway", [*CLI, "gateway", "--port", str(port)], env.env(), tmp_path).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/livez", 60, lambda r: r.status_code == 200, proc.logs)
        yield url
    finally:
        proc.stop()


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


@pytest.mark.slow
def test_qc_campaign_through_the_cli_survives_a_sigkill(env: JobsEnv, gateway: str) -> None:
    env.settings_kwargs["job_shard_size"] = 3  # 3 shards: a kill lands mid-campaign
    first = env.start_runner()
    cli_env = {**env.env(), "MEDSERVE_URL": gateway, "COLUMNS": "200"}
    run = cli(cli_env, "submit", "--type", "synthetic-dataset", "--params", json.dumps(CAMPAIGN))
    assert run.returncode == 0, run.stdout + run.stderr
    job_id = run.stdout.split()[0]
    env.wait(job_id, lambda j: j.shards_done >= 1, 300, "a finished shard")
    first.kill()
    kept = set(env.store.shards(job_id))
    assert len(kept) < 3, "the campaign ended before the kill"
    env.start_runner()
    watched = cli(cli_env, "watch", job_id)
    assert watched.returncode == 0 and "succeeded" in watched.stdout, watched.stdout
    done = env.store.get(job_id)
    assert done.state == "succeeded" and done.attempt == 2
    assert all(env.store.shard_starts(job_id)[s] == 1 for s in kept)
    out = Path(done.artifact_uri)
    images = check_campaign(out, done.summary)
    if FIRST_RUN:  # the same campaign through the API: same images, reports and decisions
        assert images == FIRST_RUN[0]["rows"]
        for row in images:
            if row["file_name"]:
                before = Path(FIRST_RUN[0]["out"]) / row["file_name"]
                assert np.array_equal(pixels(out / row["file_name"]), pixels(before))


def write_released_layout(folder: Path) -> list[dict[str, Any]]:
    """JPEGs named as the released inference code names them, and its prompt CSV's columns."""
    folder.mkdir()
    people = [("F", 28, "WHITE"), ("M", 50, "WHITE"), ("M", 60, "BLACK"),
              ("M", 45, "HISPANIC"), ("M", 20, "ASIAN"), ("F", 55, "WHITE")]  # fmt: skip
    rows = []
    for i, (gender, age, race) in enumerate(people):
        stem = f"demo{i:04d}"
        (folder / f"{stem}_0.jpg").write_bytes(jpeg(xray(40 + i)))
        sex = {"F": "female", "M": "male"}[gender]
        impression = "No acute cardiopulmonary process ."
        rows.append({"dicom_id": stem, "gender": gender, "anchor_age": age, "race": race,
                     "impression_short": impression,
                     "prompt_variation": f"{age} year old {race} {sex}. {impression}"})  # fmt: skip
    with (folder / "prompts.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_synthetic_qc_checks_an_imagefolder(env: JobsEnv, tmp_path: Path) -> None:
    source = tmp_path / "released"
    written = write_released_layout(source)
    env.start_runner()
    qc = {**QC_TINY, "min_group_size": 2}
    params = {"source": str(source / "prompts.csv"), "concurrency": 3, "qc": qc}
    job = env.submit("synthetic-qc", params)
    done = env.wait(job.id, lambda j: j.terminal, 300, "the QC job")
    assert done.state == "succeeded", done.error
    out = Path(done.artifact_uri)
    rows = rows_of(out / "qc_images.jsonl")
    assert [r["file_name"] for r in rows] == [f"{w['dicom_id']}_0.jpg" for w in written]
    assert [r["qc_passed"] for r in rows] == [False, True, False, True, False, False]
    assert [r["qc_failed"] for r in rows] == [["sex", "age"], [], ["race"], [], ["race", "age"],
                                              ["sex"]]  # fmt: skip
    assert rows[3]["qc_race_ok"] is None  # HISPANIC is not one of the classifier's classes
    assert rows[0]["finding"] == "No acute cardiopulmonary process ."
    assert [r["age_bin"] for r in rows] == ["18-39", "40-59", "60-79", "40-59", "18-39", "40-59"]
    report = json.loads((out / "qc.json").read_text())
    check_report(report, rows)
    assert done.summary["passed"] == 2 and done.summary["checked"] == 6
    warned = {(w["dimension"], w["value"]) for w in report["warnings"]}
    assert warned == {("sex", "female"), ("age_bin", "18-39")}  # n=1 subgroups are not warned
    assert [r["file_name"] for r in rows_of(out / "rejected.jsonl")] == [
        r["file_name"] for r in rows if not r["qc_passed"]
    ]

    # By default a model serving random weights is no check: it is skipped and named.
    job = env.submit("synthetic-qc", {**params, "qc": {**DECODING, "checks": ["sex", "age"]}})
    done = env.wait(job.id, lambda j: j.terminal, 300, "the QC job without random checks")
    assert done.state == "succeeded", done.error
    assert done.summary["checks_run"] == [] and done.summary["passed"] == 6
    assert set(done.summary["skipped_checks"]) == {"sex", "age"}
    assert "random weights" in done.summary["skipped_checks"]["sex"]
