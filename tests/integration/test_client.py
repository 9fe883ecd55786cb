"""`medserve_client` against a real embedded stack (gateway and worker processes, tiny models,
a private Redis and a real job runner): every route and job type, with the sync client and
the async one. A new route or job type is one more test function here.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from cli.embedded_redis import EmbeddedRedis
from medserve_client import AsyncClient, Client, Conflict, InvalidRequest, NotFound, Unavailable
from medserve_client.results import Generation, Latent
from tests.harness import ROOT, RunnerProcess, clean_env

MODELS = ["echo", "medval-4b", "medvae-4-1-2d", "medvae-8-1-3d", "roentgen-v2"]
XRAY = ROOT / "examples" / "medvae" / "data" / "phantom_xray.png"
CT = ROOT / "examples" / "medvae" / "data" / "phantom_ct.nii.gz"
SMALL = {"steps": 1, "height": 64, "width": 64}  # a tiny RoentGen image in well under a second


class Caller:
    """Calls a client method by name on the sync or the async client, and collects events."""

    def __init__(self, flavour: str, url: str) -> None:
        self.flavour = flavour
        self.loop = asyncio.new_event_loop() if flavour == "async" else None
        self.client: Any = AsyncClient(url) if self.loop else Client(url)

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        return self.loop.run_until_complete(result) if self.loop else result

    def events(self, job_id: str) -> list[Any]:
        if self.loop is None:
            return list(self.client.job_events(job_id))

        async def collect() -> list[Any]:
            return [event async for event in self.client.job_events(job_id)]

        return self.loop.run_until_complete(collect())

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
        else:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()


@pytest.fixture(scope="module")
def redis_for_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("client-redis"), persist=False)
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def stack(embedded_stack, redis_for_jobs: str):
    return embedded_stack(MODELS, redis_url=redis_for_jobs, job_shard_size=2)


@pytest.fixture(scope="module")
def runner(stack, redis_for_jobs: str) -> Iterator[RunnerProcess]:
    env = clean_env(
        MEDSERVE_REDIS_URL=redis_for_jobs, MEDSERVE_HOME=str(stack.home),
        MEDSERVE_ROUTES=json.dumps(stack.routes), MEDSERVE_JOB_SHARD_SIZE="2",
        MEDSERVE_TORCH_THREADS="1",
    )  # fmt: skip
    process = RunnerProcess(env, stack.home / "client-runner.log")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=["sync", "async"])
def call(request: pytest.FixtureRequest, stack) -> Iterator[Caller]:
    caller = Caller(request.param, stack.url)
    yield caller
    caller.close()


def test_health_and_models(call: Caller) -> None:
    assert call("live") is True
    assert call("readiness").ready
    assert {m.name for m in call("list_models")} == set(MODELS)
    info = call("get_model", "medvae-4-1-2d")
    assert (info.family, info.ready, info.weights) == ("medvae", True, "random-tiny")
    assert info.weights_digest.startswith("sha256:") and info.input["dims"] == 2
    with pytest.raises(NotFound, match="served models"):
        call("get_model", "no-such-model")


def test_roentgen_generate_gives_images_with_provenance(call: Caller, tmp_path: Path) -> None:
    result = call("roentgen_generate", age=60, sex="female", race="asian",
                  impression="No acute process.", n=2, seed=3, **SMALL)  # fmt: skip
    assert isinstance(result, Generation) and result.synthetic
    assert result.prompt == "60 year old ASIAN female. No acute process."
    seeds = [i.seed for i in result.images]
    assert [i.index for i in result.images] == [0, 1] and seeds[0] == 3
    assert result.provenance["seeds"] == seeds and result.weights == "random-tiny"
    picture = result.images[0].to_pil()
    assert picture.size == (64, 64) and picture.mode == "L"
    pixels = result.images[1].to_numpy()
    assert pixels.shape == (64, 64) and pixels.dtype == np.uint8
    paths = result.save(tmp_path)
    assert [p.name for p in paths] == ["cxr-0-seed3.png", f"cxr-1-seed{seeds[1]}.png"]
    assert Image.open(paths[0]).info["synthetic"] == "true"


def test_roentgen_dicom_and_npy_outputs_read_as_arrays(call: Caller) -> None:
    dicom = call("roentgen_generate", "50 year old female. Normal.", output="dicom", **SMALL)
    assert dicom.images[0].extension == ".dcm" and dicom.images[0].to_numpy().shape == (64, 64)
    npy = call("roentgen_generate", "50 year old female. Normal.", output="npy", **SMALL)
    assert npy.images[0].to_numpy().shape == (64, 64)


def test_errors_carry_the_gateway_message_and_request_id(call: Caller) -> None:
    with pytest.raises(InvalidRequest) as caught:
        call("roentgen_generate", age=60, sex="robot", impression="x", **SMALL)
    assert caught.value.status == 422 and "sex" in caught.value.message
    assert caught.value.request_id


def test_medvae_encode_a_file_and_decode_it_back(call: Caller) -> None:
    latent = call("medvae_encode", XRAY)
    assert isinstance(latent, Latent) and latent.format == "npy" and latent.factor == 4
    array = latent.to_numpy()
    assert list(array.shape) == latent.shape and array.dtype == np.float32
    recon = call("medvae_decode", latent)
    original = Image.open(XRAY)
    assert recon.synthetic and recon.to_pil().size == original.size
    assert recon.model == latent.model == "medvae-4-1-2d"


def test_medvae_encode_pixels_and_read_a_safetensors_latent(call: Caller) -> None:
    pixels = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    latent = call("medvae_encode", pixels, latent="s2", format="safetensors")
    assert latent.latent == "s2" and latent.to_numpy().shape == tuple(latent.shape)
    from_array = call("medvae_decode", call("medvae_encode", pixels).to_numpy())
    assert from_array.to_numpy().shape == (32, 32)


def test_medvae_volumes_come_back_as_arrays_with_their_affine(call: Caller) -> None:
    import nibabel as nib

    latent = call("medvae_encode", CT, model="medvae-8-1-3d", modality="ct", format="nifti")
    volume = latent.volume()
    assert list(volume.array.shape) == latent.shape and volume.affine.shape == (4, 4)
    recon = call("medvae_decode", latent, model="medvae-8-1-3d")
    got = recon.volume()
    reference = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(recon.data))
    assert np.allclose(got.array, reference.get_fdata(), atol=1e-4)
    assert np.allclose(got.affine, reference.affine) and recon.value_unit == "HU"


def test_medval_grades_a_report_and_a_batch(call: Caller) -> None:
    grade = call("medval_evaluate", "FINDINGS: Mild cardiomegaly.", "IMPRESSION: Normal.",
                 task="report2impression", max_tokens=200)  # fmt: skip
    assert grade.risk_level in (1, 2, 3, 4) and grade.machine_generated
    assert grade.engine == "transformers" and grade.weights == "random-tiny"
    items = [{"task": "query2question", "reference": "q", "candidate": c} for c in ("a", "b")]
    batch = call("medval_evaluate_batch", items, max_tokens=200, constrained=True)
    assert len(batch.results) == 2 and all(r.risk_level for r in batch.results)


def test_a_job_streams_progress_and_its_artifacts_download(
    call: Caller, runner, tmp_path: Path
) -> None:
    job = call("submit_sleep", items=6, item_ms=20)
    assert job.state == "queued" and len(job.id) == 32
    events = call.events(job.id)
    assert events[-1].event == "end" and events[-1].data["state"] == "succeeded"
    done = [e.job.progress.done for e in events if e.job is not None]
    assert done == sorted(done) and done[-1] == 6
    assert call("find_job", job.id[:8]).id == job.id
    listing = call("list_artifacts", job.id)
    assert "items.jsonl" in [a.path for a in listing.artifacts]
    text = call("read_artifact", job.id, "items.jsonl").decode()
    assert [json.loads(line)["index"] for line in text.splitlines()] == list(range(6))
    paths = call("download_artifacts", job.id, tmp_path / "out")
    assert len(paths) == len(listing.artifacts)
    assert (tmp_path / "out" / "items.jsonl").read_text() == text
    assert job.id in {j.id for j in call("list_jobs", state="succeeded").jobs}


def test_wait_cancel_and_idempotency(call: Caller, runner) -> None:
    long = call("submit_sleep", items=2000, item_ms=20, idempotency_key=f"k-{call.flavour}")
    again = call("submit_job", "sleep", {"items": 2000, "item_ms": 20},
                 idempotency_key=f"k-{call.flavour}")  # fmt: skip
    assert again.id == long.id
    assert call("cancel_job", long.id).cancel_requested
    seen: list[str] = []
    final = call("wait_job", long.id, on_progress=lambda j: seen.append(j.state), timeout_s=60)
    assert final.state == "cancelled" and seen
    quick = call("submit_sleep", items=1, item_ms=0)
    assert call("wait_job", quick.id, timeout_s=60).succeeded
    with pytest.raises(Conflict):
        call("cancel_job", quick.id)
    with pytest.raises(InvalidRequest, match="items"):
        call("submit_sleep", items=0)


def test_synthetic_dataset_job(call: Caller, runner) -> None:
    job = call("submit_synthetic_dataset", ["No acute cardiopulmonary process."],
               sexes=["female"], age_bins=[[40, 59]], races=[], images_per_cell=2, seed=1,
               **SMALL)  # fmt: skip
    final = call("wait_job", job.id, timeout_s=120)
    assert final.succeeded, final.error
    paths = {a.path for a in call("list_artifacts", job.id).artifacts}
    assert "metadata.jsonl" in paths and len([p for p in paths if p.endswith(".png")]) == 2


def test_latent_dataset_job_resolves_a_relative_folder_on_the_callers_side(
    call: Caller, runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "inputs").mkdir()
    for i in range(3):
        buffer = io.BytesIO()
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(buffer, format="PNG")
        (tmp_path / "inputs" / f"x{i}.png").write_bytes(buffer.getvalue())
    monkeypatch.chdir(tmp_path)
    job = call("submit_latent_dataset", "inputs", format="npy")
    assert job.params["source"] == str(tmp_path / "inputs")
    final = call("wait_job", job.id, timeout_s=120)
    assert final.succeeded and final.summary["encoded"] == 3, final.error


@pytest.mark.parametrize("kind", ["train_classifier", "train_latent_classifier"])
def test_training_jobs_are_accepted_with_the_examples_parameters(
    call: Caller, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = json.loads((ROOT / "examples" / "jobs" / f"{kind}.json").read_text())["body"]
    monkeypatch.chdir(ROOT)
    job = call(f"submit_{kind}", **params["params"])
    assert job.type == kind.replace("_", "-") and job.state == "queued"
    assert job.params["real"]["csv"] == str(ROOT / params["params"]["real"]["csv"])
    assert call("cancel_job", job.id).state == "cancelled"  # no training runner here
    with pytest.raises(InvalidRequest, match="real"):
        call(f"submit_{kind}", **{**params["params"], "real": {"csv": "missing.csv"}})


def test_the_client_retries_after_retry_after_and_gives_up_when_told(embedded_stack) -> None:
    shedding = embedded_stack(["echo"], max_inflight=1)
    slow = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 1], "data": [1]}],
            "parameters": {"delay_ms": 1500}}  # fmt: skip
    hold = threading.Thread(
        target=lambda: httpx.post(f"{shedding.url}/v2/models/echo/infer", json=slow, timeout=30)
    )
    with Client(shedding.url, max_retries=0) as impatient, Client(shedding.url) as patient:
        hold.start()
        time.sleep(0.3)
        with pytest.raises(Unavailable) as caught:
            impatient.list_models()
        assert caught.value.retry_after == 1 and "MEDSERVE_MAX_INFLIGHT" in caught.value.message
        started = time.monotonic()
        assert [m.name for m in patient.list_models()] == ["echo"]  # after one or two waits
        assert time.monotonic() - started >= 0.9
    hold.join()
