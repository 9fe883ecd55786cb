"""`merlin-embeddings` end to end: a real Merlin worker (tiny weights, the shared stack's), a
real job runner SIGKILLed after its first shard and a second runner that finishes the job
without redoing that shard; the output is a Parquet table `datasets` loads."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import numpy as np
import pytest

from tests.harness import JobsEnv
from tests.merlin_support import ct_phantom, dicom_series, nifti_bytes, zip_bytes
from workers.merlin.contract import example_ct_base64

pytestmark = pytest.mark.slow
MODELS = ["merlin", "merlin-five-year", "merlin-report"]


def write_inputs(folder: Path) -> None:
    folder.mkdir()
    (folder / "a_phantom.nii.gz").write_bytes(base64.b64decode(example_ct_base64()))
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    (folder / "b_plain.nii").write_bytes(nifti_bytes(ct_phantom((40, 40, 24), 1), affine, False))
    (folder / "c_broken.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 40))
    (folder / "d_series.zip").write_bytes(zip_bytes(dicom_series(ct_phantom((40, 40, 24), 2))))
    (folder / "notes.txt").write_text("not a CT: ignored")


def test_embeddings_job_resumes_after_sigkill_into_a_parquet_table(
    tmp_path: Path, jobs_env: JobsEnv, embedded_stack
) -> None:
    stack = embedded_stack(MODELS)
    source = tmp_path / "cts"
    write_inputs(source)
    jobs_env.settings_kwargs["routes"] = {"merlin": stack.routes["merlin"]}
    first = jobs_env.start_runner(MEDSERVE_JOB_SHARD_SIZE="2")
    job = jobs_env.submit("merlin-embeddings", {"source": str(source), "concurrency": 2})
    jobs_env.wait(job.id, lambda j: j.shards_done >= 1, 240, "the first shard")
    first.kill()
    finished = set(jobs_env.store.shards(job.id))
    jobs_env.start_runner(MEDSERVE_JOB_SHARD_SIZE="2")
    done = jobs_env.wait(job.id, lambda j: j.terminal, 240, "the job on the second runner")

    assert done.state == "succeeded", done.error
    assert done.summary == {"embedded": 3, "errors": 1, "planned": 4}
    assert done.shards_total == 2
    assert finished == {0}  # killed with the second shard in flight (it needs seconds)
    assert done.attempt == 2
    starts = jobs_env.store.shard_starts(job.id)
    assert starts[0] == 1  # the finished shard is never redone

    import datasets

    out = Path(done.artifact_uri)
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet"]  # fmt: skip
    table = datasets.load_dataset(
        "parquet", data_dir=str(out / "data"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert table["index"] == [0, 1, 2, 3]
    assert table["id"] == ["a_phantom", "b_plain", "c_broken", "d_series"]
    assert table["status"] == ["ok", "ok", "error", "ok"]
    assert "not a valid NIfTI" in table["error"][2] and table["embedding"][2] is None
    for row in (0, 1, 3):
        embedding = np.array(table["embedding"][row])
        assert embedding.shape == (512,) and abs(np.linalg.norm(embedding) - 1) < 1e-4
        probabilities = np.array(table["phenotypes"][row])
        assert probabilities.shape == (1692,) and (probabilities >= 0).all()
        assert table["weights_digest"][row].startswith("sha256:")
    assert table["input_shape"][0] == [40, 40, 24] and table["orientation"][0] == "LPS"
    assert table["spacing"][1] == [1.0, 1.0, 2.0]
    assert not np.allclose(table["embedding"][0], table["embedding"][1])  # inputs matter
    assert (out / "phecodes.json").is_file() and "load_dataset" in (out / "README.md").read_text()
