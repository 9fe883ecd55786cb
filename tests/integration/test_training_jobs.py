"""The training jobs end to end: a real gateway app with the jobs routes, real Redis and real
`medserve jobs-worker --queue training` processes, on generated data with a planted signal.

`train-classifier` with all three strategies through the API (SSE progress with epoch, step,
loss and val AUROC; metrics equal scikit-learn's on the downloaded predictions); both job types
through the CLI; a runner SIGKILLed mid-run resumes to the same final metrics as an
uninterrupted run; cancel stops at a step boundary, keeps the checkpoint, and `resume_from`
finishes it to the same metrics; bad parameters are a 422 at submit time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.net import free_port
from service.app import create_app
from tests.harness import CLI, ROOT, JobsEnv, wait_until
from tests.training_data import (
    LABELS,
    read_predictions,
    recompute,
    tiny_params,
    write_latents,
    write_real,
    write_synthetic,
)

ALICE = {"Authorization": "Bearer key-alice"}
BOB = {"Authorization": "Bearer key-bob"}
STRATEGIES = ["real", "mixed", "pretrain-finetune"]
ONE_THREAD = {"MEDSERVE_TORCH_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("training-jobs")
    csv_path = write_real(root / "real")
    return {"root": root, "csv": csv_path, "synthetic": write_synthetic(root / "synthetic")}


def finished_job(env: JobsEnv, kind: str, tenant: str, fill: Any) -> str:
    """A succeeded job of `kind` whose artifact folder `fill(folder)` writes (its real layout)."""
    job, _ = env.store.create(kind, tenant, {}, artifact_root=env.settings.artifact_root)
    attempt, _ = env.store.claim(job.id, "test", 30.0)
    fill(Path(job.artifact_uri))
    env.store.finish(job.id, attempt, "succeeded", summary={})
    return job.id


def synthetic_job(env: JobsEnv, data: dict[str, Path], tenant: str) -> str:
    return finished_job(
        env, "synthetic-dataset", tenant, lambda out: shutil.copytree(data["synthetic"], out)
    )


@pytest.fixture
def api(jobs_env: JobsEnv) -> Iterator[TestClient]:
    settings = jobs_env.settings.model_copy(update={"api_keys": ["key-alice:alice", "key-bob:bob"]})
    with TestClient(create_app(settings)) as client:
        yield client


def sse(client: TestClient, path: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", path, headers=ALICE, timeout=300) as answer:
        assert answer.status_code == 200
        event = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                events.append((event, json.loads(line[6:])))
    return events


def check_against_sklearn(test: dict[str, Any], predictions: Path) -> None:
    """Every per-label metric and the race underdiagnosis rates equal scikit-learn's."""
    pred, names = read_predictions(predictions)
    again = recompute(pred, names)
    for name in names:
        for key in ("threshold", "auroc", "accuracy"):
            assert test["labels"][name][key] == again["labels"][name][key], (name, key)
    groups = test["underdiagnosis"]["by"]["race"]["groups"]
    assert {k: g["rate"] for k, g in groups.items()} == again["race"]


def test_three_strategies_through_the_api(
    api: TestClient, jobs_env: JobsEnv, data: dict[str, Path], tmp_path: Path
) -> None:
    jobs_env.start_runner("--queue", "training", **ONE_THREAD)
    params = tiny_params(data["csv"])
    params["synthetic"] = {"job": synthetic_job(jobs_env, data, "alice")}
    params["strategies"] = STRATEGIES
    answer = api.post(
        "/v1/jobs", json={"type": "train-classifier", "params": params}, headers=ALICE
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["params"]["synthetic"]["folder"].endswith(params["synthetic"]["job"])

    events = sse(api, f"/v1/jobs/{job['id']}/events")
    assert events[-1] == ("end", {"id": job["id"], "state": "succeeded"})
    details = [d["progress"]["detail"] for kind, d in events if kind == "progress"]
    steps = [d for d in details if d.get("loss") is not None]
    assert steps and {"stage", "epoch", "epochs", "step", "steps", "val_auroc"} <= set(steps[0])
    assert {d["stage"] for d in steps} >= {"real", "mixed"}  # progress across the stages
    assert any(d["val_auroc"] is not None for d in steps)

    done = api.get(f"/v1/jobs/{job['id']}", headers=ALICE).json()
    assert done["state"] == "succeeded" and set(done["summary"]["strategies"]) == set(STRATEGIES)
    listing = api.get(f"/v1/jobs/{job['id']}/artifacts", headers=ALICE).json()["artifacts"]
    paths = {a["path"] for a in listing}
    expected = {
        "metrics.json",
        "report.md",
        "checkpoints/latest.ckpt",
        "plots/underdiagnosis-race.png",
    }
    assert expected <= paths
    assert {f"predictions/{s}.csv" for s in STRATEGIES} | {
        f"plots/roc-{s}.png" for s in STRATEGIES
    } <= paths
    metrics = api.get(f"/v1/jobs/{job['id']}/artifacts/metrics.json", headers=ALICE).json()
    for strategy in STRATEGIES:
        test = metrics["strategies"][strategy]["test"]
        assert test["labels"]["Pleural Effusion"]["auroc"] > 0.8  # the planted signal is learnt
        assert test["labels"]["No Finding"]["auroc"] > 0.8
        csv_file = tmp_path / f"{strategy}.csv"
        got = api.get(f"/v1/jobs/{job['id']}/artifacts/predictions/{strategy}.csv", headers=ALICE)
        csv_file.write_bytes(got.content)
        check_against_sklearn(test, csv_file)
        summary = done["summary"]["strategies"][strategy]
        assert summary["mean_auroc"] == test["mean_auroc"]
    report = api.get(f"/v1/jobs/{job['id']}/artifacts/report.md", headers=ALICE).text
    assert all(f"| {s} |" in report for s in STRATEGIES)
    png = api.get(f"/v1/jobs/{job['id']}/artifacts/plots/roc-mixed.png", headers=ALICE).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_parameters_are_refused_at_submit(
    api: TestClient, jobs_env: JobsEnv, data: dict[str, Path], tmp_path: Path
) -> None:
    def refused(kind: str, params: dict[str, Any], *needles: str) -> None:
        answer = api.post("/v1/jobs", json={"type": kind, "params": params}, headers=ALICE)
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert all(n in message for n in needles), message

    good = tiny_params(data["csv"], data["synthetic"])
    refused("train-classifier", {**good, "strategies": ["real", "synthetic-only"]},
            "strategies.1", "pretrain-finetune")  # fmt: skip
    refused("train-classifier", {**good, "real": {**good["real"], "labels": [*LABELS, "Edema"]}},
            "no label column(s) ['Edema']")  # fmt: skip
    empty = tmp_path / "empty.csv"
    empty.write_text("Path,No Finding,Cardiomegaly\n")
    refused("train-classifier", tiny_params(empty), "empty")
    other = write_synthetic(tmp_path / "other", per_cell=1, findings={"Nodule.": [], "Mass": []})
    refused("train-classifier", {**tiny_params(data["csv"], other), "strategies": ["mixed"]},
            "no synthetic finding maps to a real label")  # fmt: skip
    refused("train-classifier", {**good, "train": {**good["train"], "epoch": 3}},
            "unknown param 'train.epoch' (did you mean 'epochs'?)")  # fmt: skip
    bobs = synthetic_job(jobs_env, data, "bob")
    refused("train-classifier", {**good, "synthetic": {"job": bobs}, "strategies": ["mixed"]},
            "synthetic.job", "no job")  # fmt: skip
    latent = finished_job(jobs_env, "latent-dataset", "alice", lambda out: out.mkdir(parents=True))
    refused("train-classifier", {**good, "synthetic": {"job": latent}, "strategies": ["mixed"]},
            "is a latent-dataset job")  # fmt: skip
    refused("train-latent-classifier", {**tiny_params(data["csv"]), "latents": {"job": latent}},
            "no manifest.jsonl")  # fmt: skip
    assert api.get("/v1/jobs?type=train-classifier", headers=ALICE).json()["jobs"] == []


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "jobs", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def gateway(jobs_env: JobsEnv, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with (tmp_path / "gateway.log").open("wb") as log:
        proc = subprocess.Popen([*CLI, "gateway", "--port", str(port)], env=jobs_env.env(),
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:

            def live() -> bool:
                try:
                    return httpx.get(f"{url}/livez", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(live, 60, "the gateway to answer", every=0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=15)


@pytest.mark.slow
def test_both_job_types_through_the_cli(
    jobs_env: JobsEnv, gateway: str, data: dict[str, Path], tmp_path: Path
) -> None:
    jobs_env.start_runner("--queue", "training", **ONE_THREAD)
    env = {**jobs_env.env(), "MEDSERVE_URL": gateway, "COLUMNS": "250"}
    latents = finished_job(jobs_env, "latent-dataset", "default",
                           lambda out: write_latents(out, data["csv"]))  # fmt: skip
    params = {**tiny_params(data["csv"], epochs=3), "latents": {"job": latents}}
    run = cli("submit", "--type", "train-latent-classifier", "--params", json.dumps(params),
              "--watch", env=env)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    job_id = run.stdout.split()[0]
    assert f"{job_id}: succeeded" in run.stdout
    assert "image epoch 3/3" in run.stdout and "val_auroc" in run.stdout  # the watch line

    out = tmp_path / "latent"
    assert cli("artifacts", job_id, "--download", str(out), env=env).returncode == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["arms"]) == {"latent", "image"}
    for arm in ("latent", "image"):
        test = metrics["arms"][arm]["test"]
        assert test["labels"]["Pleural Effusion"]["auroc"] > 0.8
        check_against_sklearn(test, out / "predictions" / f"{arm}.csv")
        assert metrics["throughput"][arm]["loop_images_per_s"] > 0
    shown = json.loads(cli("status", job_id, "--json", env=env).stdout)
    assert shown["summary"]["loop_speedup"] == metrics["throughput"]["loop_speedup"]

    params = tiny_params(data["csv"], epochs=2)
    run = cli("submit", "--type", "train-classifier", "--params", json.dumps(params), "--watch",
              env=env)  # fmt: skip
    assert run.returncode == 0 and "succeeded" in run.stdout, run.stdout + run.stderr
    assert "real epoch 2/2" in run.stdout


def long_params(data: dict[str, Path]) -> dict[str, Any]:
    """Real-only, 10 epochs, no early stop, dropout (the RNG matters), step checkpoints."""
    params = tiny_params(data["csv"], epochs=10, patience=10, checkpoint_every_steps=2)
    params["model"]["dropout"] = 0.1
    return params


def checkpoint_info(env: JobsEnv, job_id: str) -> dict[str, Any] | None:
    path = Path(env.store.get(job_id).artifact_uri) / "checkpoints" / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None


def final(env: JobsEnv, job_id: str) -> tuple[dict[str, Any], bytes]:
    out = Path(env.store.get(job_id).artifact_uri)
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics["strategies"]["real"], (out / "predictions" / "real.csv").read_bytes()


@pytest.mark.slow
def test_sigkill_and_cancel_resume_to_the_same_metrics(
    jobs_env: JobsEnv, data: dict[str, Path]
) -> None:
    first = jobs_env.start_runner("--queue", "training", **ONE_THREAD)
    killed = jobs_env.submit("train-classifier", long_params(data))

    def second_epoch(job: Any) -> bool:
        return (checkpoint_info(jobs_env, job.id) or {}).get("epoch", 0) >= 2

    info = jobs_env.wait(killed.id, second_epoch, 120, "a checkpoint in the second epoch")
    first.kill()
    out = Path(jobs_env.store.get(killed.id).artifact_uri)
    assert not (out / "metrics.json").exists(), "the run ended before the kill"
    at_kill = checkpoint_info(jobs_env, killed.id)
    assert at_kill is not None and info.state == "running"

    jobs_env.start_runner("--queue", "training", **ONE_THREAD)
    resumed = jobs_env.wait(killed.id, lambda j: j.terminal, 180, "the resumed run")
    assert resumed.state == "succeeded", resumed.error
    assert resumed.attempt == 2
    assert resumed.summary["resumed_from"]["attempt"] == 1
    assert resumed.summary["resumed_from"]["name"].startswith("real-e0")

    reference = jobs_env.submit("train-classifier", long_params(data))
    done = jobs_env.wait(reference.id, lambda j: j.terminal, 180, "the uninterrupted run")
    assert done.state == "succeeded" and done.attempt == 1
    want = final(jobs_env, reference.id)
    got = final(jobs_env, killed.id)
    assert got[0]["test"] == want[0]["test"]  # equal final metrics (exactly, on CPU)
    assert got[0]["training"]["real"]["history"] == want[0]["training"]["real"]["history"]
    assert got[1] == want[1]  # byte-identical predictions

    cancelled = jobs_env.submit("train-classifier", long_params(data))
    jobs_env.wait(cancelled.id, lambda j: checkpoint_info(jobs_env, j.id) is not None, 120,
                  "a first checkpoint")  # fmt: skip
    asked = time.monotonic()
    jobs_env.control.cancel("t1", cancelled.id)
    stopped = jobs_env.wait(cancelled.id, lambda j: j.terminal, 10, "the job to stop")
    latency = time.monotonic() - asked
    assert stopped.state == "cancelled" and latency < 1.5, latency
    kept = stopped.summary["checkpoint_info"]
    assert stopped.summary["checkpoint"] == "checkpoints/latest.ckpt"
    assert kept == checkpoint_info(jobs_env, cancelled.id) and "-s0" in kept["name"]  # a step
    assert not (Path(stopped.artifact_uri) / "metrics.json").exists()

    again = jobs_env.submit("train-classifier", {**long_params(data), "resume_from": cancelled.id})
    finished = jobs_env.wait(again.id, lambda j: j.terminal, 180, "the run resumed from the cancel")
    assert finished.state == "succeeded", finished.error
    assert finished.summary["resumed_from"]["name"] == kept["name"]
    assert final(jobs_env, again.id)[1] == want[1]


def test_training_jobs_go_to_the_training_queue(jobs_env: JobsEnv, data: dict[str, Path]) -> None:
    """Routing by type: a training job waits for a training runner; a default-queue runner
    never takes it (and a training runner never takes a campaign)."""
    import redis

    r = redis.Redis.from_url(jobs_env.server.url)
    job = jobs_env.submit("train-classifier", tiny_params(data["csv"], epochs=1))
    sleep = jobs_env.submit("sleep", {"items": 1, "item_ms": 1})
    assert r.llen("medserve-training") == 1 and r.llen("medserve-jobs") == 1
    jobs_env.start_runner()  # default queue only
    jobs_env.wait(sleep.id, lambda j: j.terminal, 60, "the sleep job on the default runner")
    time.sleep(1.0)
    assert jobs_env.store.get(job.id).state == "queued"
    assert r.llen("medserve-training") == 1
