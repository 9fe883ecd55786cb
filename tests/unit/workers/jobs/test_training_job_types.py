"""The training job types without a runner: queue routing, torch-free import, parameter
normalisation (job-only fields kept from the library, references resolved), the watch line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.jobs import detail_text
from core.constants import JOBS_QUEUE, TRAINING_QUEUE
from core.errors import InvalidInput, NotFound
from workers.jobs import training
from workers.jobs.records import JobRecord
from workers.jobs.types import SubmitContext, job_type, queue_for

ROOT = Path(__file__).resolve().parents[4]


def test_training_types_declare_the_training_queue_and_others_the_default() -> None:
    assert queue_for("train-classifier") == queue_for("train-latent-classifier") == TRAINING_QUEUE
    assert queue_for("sleep") == queue_for("synthetic-dataset") == JOBS_QUEUE
    assert queue_for("no-such-type") == JOBS_QUEUE  # a runner then fails it with a clear error


def test_validating_the_job_types_imports_no_model_library(tmp_path: Path) -> None:
    """The gateway validates training jobs: it must not need torch, PIL, scikit-learn, ..."""
    from workers.training.demo import tiny_params, write_latents, write_real, write_synthetic

    csv_path = write_real(tmp_path / "real", patients=30)
    params = {**tiny_params(csv_path, write_synthetic(tmp_path / "syn", per_cell=1)),
              "strategies": ["real", "mixed", "pretrain-finetune"]}  # fmt: skip
    latent = {**tiny_params(csv_path), "latents": str(write_latents(tmp_path / "lat", csv_path))}
    code = (
        "import json, sys\n"
        "from workers.jobs.types import job_type\n"
        "job_type('train-classifier').validate(json.loads(sys.argv[1]))\n"
        "job_type('train-latent-classifier').validate(json.loads(sys.argv[2]))\n"
        "heavy = {'torch', 'PIL', 'sklearn', 'scipy', 'matplotlib', 'monai', 'torchvision'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code, json.dumps(params), json.dumps(latent)],
                   cwd=ROOT, check=True)  # fmt: skip


def test_library_params_drop_what_only_the_job_uses() -> None:
    params = {"real": {"csv": "/d/x.csv"}, "resume_from": "abc",
              "synthetic": {"job": "j1", "folder": "/a/t/j1", "finding_map": None}}  # fmt: skip
    assert training.library_params(params) == {
        "real": {"csv": "/d/x.csv"},
        "synthetic": {"folder": "/a/t/j1", "finding_map": None},
    }
    assert training.absolute("rel/x.csv") == str(Path.cwd() / "rel/x.csv")
    assert training.absolute("s3://b/x.csv") == "s3://b/x.csv"


def record(job_id: str, kind: str, uri: str) -> JobRecord:
    return JobRecord(id=job_id, type=kind, tenant="t", params={}, state="succeeded",
                     artifact_uri=uri)  # fmt: skip


def test_references_to_other_jobs_resolve_to_their_folders(tmp_path: Path) -> None:
    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / "metadata.jsonl").write_text("{}\n")
    jobs = {"s1": record("s1", "synthetic-dataset", str(tmp_path / "syn")),
            "l1": record("l1", "latent-dataset", str(tmp_path / "lat"))}  # fmt: skip

    def lookup(job_id: str) -> JobRecord:
        if job_id not in jobs:
            raise NotFound("no such job")
        return jobs[job_id]

    submit = SubmitContext("t", lookup)
    kind = job_type("train-classifier")
    out = kind.resolve({"real": {"csv": "x.csv"}, "synthetic": {"job": "s1"}}, submit)
    assert out["synthetic"]["folder"] == str(tmp_path / "syn")
    assert out["real"]["csv"] == str(Path.cwd() / "x.csv")
    for bad, needle in (({"job": "zz"}, "no job 'zz'"), ({"job": "l1"}, "latent-dataset job"),
                        ({"job": "s1", "folder": "/x"}, "not both")):  # fmt: skip
        with pytest.raises(InvalidInput, match=needle):
            kind.resolve({"real": {"csv": "x.csv"}, "synthetic": bad}, submit)
    latent = job_type("train-latent-classifier")
    with pytest.raises(InvalidInput, match=r"has no manifest\.jsonl yet"):
        latent.resolve({"real": {"csv": "x.csv"}, "latents": {"job": "l1"}}, submit)
    with pytest.raises(InvalidInput, match="resume_from: no job"):
        kind.resolve({"real": {"csv": "x.csv"}, "resume_from": "gone"}, submit)


def test_the_watch_line_shows_epoch_step_loss_and_val_auroc() -> None:
    detail = {"stage": "pretrain-finetune/finetune", "epoch": 2, "epochs": 4, "step": 5,
              "steps": 12, "loss": 0.41234, "val_auroc": None}  # fmt: skip
    assert detail_text(detail) == "pretrain-finetune/finetune epoch 2/4 step 5/12 loss 0.4123"
    assert detail_text({**detail, "val_auroc": 0.83456}).endswith("val_auroc 0.8346")
    assert detail_text({"rows": 3}) == "rows=3" and detail_text({}) == ""
