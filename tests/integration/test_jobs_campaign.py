"""A 200-image RoentGen-v2 campaign (tiny weights, 64x64, 1 step) through a real model worker and
real job runners, with a SIGKILL mid-campaign: exact balance, no duplicates, no gaps, every
image labelled synthetic with provenance, and the folder loads as a Hugging Face imagefolder."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.harness import JobsEnv, WorkerProcess
from workers.imaging.synthetic import read_png_label

MODEL = "roentgen-v2"
CAMPAIGN = {
    "findings": ["No acute cardiopulmonary process."],
    "sexes": ["female", "male"],
    "age_bins": [[18, 34], [35, 49], [50, 64], [65, 79], [80, 95]],
    "races": ["WHITE", "BLACK", "ASIAN", "HISPANIC"],
    "images_per_cell": 5,  # 1 x 2 x 5 x 4 = 40 cells -> 200 images
    "seed": 11,
    "steps": 1,
    "height": 64,
    "width": 64,
    "concurrency": 8,
}


@pytest.fixture(scope="module")
def roentgen_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with WorkerProcess([MODEL], tmp_path_factory.mktemp("models")) as worker:
        yield worker


def test_balanced_campaign_survives_sigkill_and_loads(
    jobs_env: JobsEnv, roentgen_worker: WorkerProcess
) -> None:
    jobs_env.settings_kwargs.update(routes={MODEL: roentgen_worker.url}, job_shard_size=20)
    first = jobs_env.start_runner()
    job = jobs_env.submit("synthetic-dataset", CAMPAIGN)
    jobs_env.wait(job.id, lambda j: j.shards_done >= 2, 300, "two finished shards")
    first.kill()
    kept = set(jobs_env.store.shards(job.id))
    jobs_env.start_runner()
    done = jobs_env.wait(job.id, lambda j: j.terminal, 600, "the campaign to finish")

    assert done.state == "succeeded", done.error
    assert done.attempt == 2 and done.total == 200 and done.shards_total == 10
    starts = jobs_env.store.shard_starts(job.id)
    assert all(starts[s] == 1 for s in kept)  # finished shards were not redone
    assert sum(starts.values()) <= 11  # at most the shard in flight at the kill ran twice

    out = Path(done.artifact_uri)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(200))  # no duplicates, no gaps
    pngs = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png"))
    assert pngs == sorted(r["file_name"] for r in rows)  # no orphans from the killed runner
    cells = Counter((r["sex"], r["age_bin"], r["race"], r["finding"]) for r in rows)
    assert len(cells) == 40 and set(cells.values()) == {5}  # exact balance
    assert Counter(r["sex"] for r in rows) == {"female": 100, "male": 100}
    assert set(Counter(r["race"] for r in rows).values()) == {50}
    assert done.summary["matches_plan"] and done.summary["per_cell_min"] == 5
    assert all(r["synthetic"] is True and r["weights_digest"].startswith("sha256:") for r in rows)
    assert len({r["seed"] for r in rows}) == 200
    assert json.loads((out / "balance.json").read_text())["images"] == 200

    sample = rows[123]
    data = (out / sample["file_name"]).read_bytes()
    with Image.open(out / sample["file_name"]) as image:
        assert image.size == (64, 64)
    label = read_png_label(data)
    assert label["synthetic"] is True and "SYNTHETIC" in label["description"]
    assert label["provenance"]["prompt"] == sample["prompt"]
    assert label["provenance"]["seed"] == sample["seed"]
    assert label["provenance"]["weights_digest"] == sample["weights_digest"]

    from datasets import load_dataset

    dataset = load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(dataset) == 200
    assert Counter(dataset["sex"]) == {"female": 100, "male": 100}
    assert dataset[0]["image"].size == (64, 64) and dataset[0]["synthetic"] is True
