"""`latent-dataset` end to end: a real MedVAE worker process (tiny weights), a real job runner,
a folder of PNGs (one of them corrupt) -> latents + manifest."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.harness import JobsEnv, WorkerProcess

MODEL = "medvae-4-1-2d"


@pytest.fixture(scope="module")
def medvae_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with WorkerProcess([MODEL], tmp_path_factory.mktemp("models")) as worker:
        yield worker


def write_inputs(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(64, 64), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        (folder / f"cxr_{i:02d}.png").write_bytes(buffer.getvalue())
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored: not an image")


def test_latent_dataset_from_folder(
    tmp_path: Path, jobs_env: JobsEnv, medvae_worker: WorkerProcess
) -> None:
    source = tmp_path / "inputs"
    source.mkdir()
    write_inputs(source, 7)
    jobs_env.settings_kwargs["routes"] = {MODEL: medvae_worker.url}
    jobs_env.start_runner()
    job = jobs_env.submit(
        "latent-dataset", {"model": MODEL, "source": str(source), "format": "npy"}
    )
    done = jobs_env.wait(job.id, lambda j: j.terminal, 120, "the latent job to finish")

    assert done.state == "succeeded", done.error
    assert done.summary == {"encoded": 7, "errors": 1, "planned": 8}
    assert done.total == 8 and done.shards_total == 2  # shard size 5
    out = Path(done.artifact_uri)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(8))
    broken = [r for r in rows if r["status"] == "error"]
    assert len(broken) == 1 and broken[0]["source"].endswith("broken.png")
    for row in rows:
        if row["status"] != "ok":
            continue
        latent = np.load(out / row["latent_file"])
        assert list(latent.shape) == row["shape"]
        assert latent.shape[-2:] == (16, 16)  # 64x64 / 4 (medvae 4x)
        assert row["weights_digest"].startswith("sha256:")
    assert (out / "manifest.csv").read_text().splitlines()[0].startswith("index,source,status")
