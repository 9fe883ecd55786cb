"""The training library end to end on generated data: learning, strategies, metrics recomputed
with scikit-learn from the saved predictions, stop/resume and SIGKILL/resume equality, the
latent classifier, and submit-time input errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from sklearn.metrics import roc_auc_score

from core.errors import InvalidInput
from tests.training_data import (
    read_predictions,
    recompute,
    tiny_params,
    write_latents,
    write_real,
    write_synthetic,
)
from workers.training.callbacks import Callbacks, FolderCallbacks, TrainingStopped
from workers.training.classifier import train_classifier
from workers.training.inputs import validate_classifier_inputs, validate_latent_inputs
from workers.training.latent import train_latent_classifier

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ["real", "mixed", "pretrain-finetune"]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread: small models on shared cores run faster so, and the killed
    subprocess and this process then compute with the same thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("training")
    csv_path = write_real(root / "real")
    return {
        "root": root,
        "csv": csv_path,
        "synthetic": write_synthetic(root / "synthetic"),
        "latents": write_latents(root / "latents", csv_path),
    }


def strategy_params(data: dict[str, Path]) -> dict[str, Any]:
    params = tiny_params(data["csv"], data["synthetic"])
    params["strategies"] = STRATEGIES
    params["model"]["dropout"] = 0.1  # the torch RNG matters, so resuming must restore it
    return params


class Recorder(FolderCallbacks):
    """Also records stage starts, to check what the host is told."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.stages: list[tuple[str, int, int]] = []

    def stage(self, name: str, epochs: int, steps_per_epoch: int) -> None:
        self.stages.append((name, epochs, steps_per_epoch))


@pytest.fixture(scope="module")
def full_run(data: dict[str, Path]) -> tuple[dict[str, Any], Path, Recorder]:
    host = Recorder(data["root"] / "full")
    return train_classifier(strategy_params(data), host), host.folder, host


def test_every_strategy_learns_and_metrics_equal_sklearn(
    full_run: tuple[dict[str, Any], Path, Recorder],
) -> None:
    doc, out, host = full_run
    assert list(doc["strategies"]) == STRATEGIES
    assert [s[0] for s in host.stages] == [
        "real",
        "mixed",
        "pretrain-finetune/pretrain",
        "pretrain-finetune/finetune",
    ]
    trained = [h for s in doc["strategies"].values() for h in s["training"].values()]
    assert host.steps == sum(h["steps_per_epoch"] * h["epochs_run"] for h in trained)
    epoch_ends = [e for e in host.events if e[3] is not None]
    assert [e[3] for e in epoch_ends] == [
        x["val_mean_auroc"] for h in trained for x in h["history"]
    ]
    assert set(doc["strategies"]["pretrain-finetune"]["training"]) == {
        "pretrain-finetune/pretrain",
        "pretrain-finetune/finetune",
    }
    for strategy in STRATEGIES:
        metrics = doc["strategies"][strategy]["test"]
        assert metrics["labels"]["Pleural Effusion"]["auroc"] > 0.8  # the planted signal
        assert metrics["labels"]["No Finding"]["auroc"] > 0.8
        pred, names = read_predictions(out / "predictions" / f"{strategy}.csv")
        again = recompute(pred, names)
        for name in names:
            for key in ("threshold", "auroc", "accuracy"):
                assert metrics["labels"][name][key] == again["labels"][name][key], (name, key)
        assert metrics["mean_auroc"] == pytest.approx(again["mean_auroc"], abs=1e-15)
        groups = metrics["underdiagnosis"]["by"]["race"]["groups"]
        assert {k: g["rate"] for k, g in groups.items()} == again["race"]
        gap = metrics["underdiagnosis"]["by"]["race"]["gap"]
        assert gap == pytest.approx(max(again["race"].values()) - min(again["race"].values()))
        lo, hi = metrics["mean_auroc_ci"]
        assert lo <= metrics["mean_auroc"] <= hi
    assert json.loads((out / "metrics.json").read_text())["strategies"].keys() == set(STRATEGIES)
    report = (out / "report.md").read_text()
    assert all(f"| {s} |" in report for s in STRATEGIES)
    for png in ("roc-real", "roc-pretrain-finetune", "underdiagnosis-race", "underdiagnosis-sex"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["seeds"]["seed"] == 0 and doc["environment"]["device"] == "cpu"


def test_stop_at_step_boundaries_and_resume_gives_the_same_run(
    data: dict[str, Path], full_run: tuple[dict[str, Any], Path, Recorder]
) -> None:
    doc, out, _ = full_run
    folder = data["root"] / "stopped"
    callbacks, resume, stops = FolderCallbacks(folder, stop_after_steps=5), None, 0
    while True:
        try:
            again = train_classifier(strategy_params(data), callbacks, resume=resume)
            break
        except TrainingStopped as stopped:
            stops += 1
            assert stopped.checkpoint == callbacks.checkpoints[-1]  # cancel keeps the last one
            resume = callbacks.latest()
            callbacks = FolderCallbacks(folder, stop_after_steps=37)
    assert stops >= 3  # stopped mid-epoch, in several stages and strategies
    assert any("-s0" in name for name in os.listdir(folder / "checkpoints"))
    for strategy in STRATEGIES:
        a = (out / "predictions" / f"{strategy}.csv").read_bytes()
        assert a == (folder / "predictions" / f"{strategy}.csv").read_bytes()
        assert again["strategies"][strategy]["test"] == doc["strategies"][strategy]["test"]
        history = again["strategies"][strategy]["training"]
        assert {k: v["history"] for k, v in history.items()} == {
            k: v["history"] for k, v in doc["strategies"][strategy]["training"].items()
        }


KILLED_RUN = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
from workers.training.callbacks import FolderCallbacks
from workers.training.classifier import train_classifier
import json

class Slow(FolderCallbacks):
    def progress(self, epoch, step, loss, metric):
        super().progress(epoch, step, loss, metric)
        time.sleep(0.05)

train_classifier(json.loads(sys.argv[1]), Slow(sys.argv[2]))
"""


def test_sigkill_mid_run_then_resume_gives_the_same_metrics(
    data: dict[str, Path], full_run: tuple[dict[str, Any], Path, Recorder]
) -> None:
    """Killed after its first epoch's checkpoint, resumed here: the same as the full run's
    `real` strategy (each strategy is seeded on its own, so a real-only run is the same)."""
    params = strategy_params(data) | {"strategies": ["real"]}
    params["train"]["checkpoint_every_steps"] = 3  # execution only: same run, more resume points
    folder = data["root"] / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_RUN,
            json.dumps(params),
            str(folder),
            str(torch.get_num_threads()),
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    first = folder / "checkpoints" / "real-e001.ckpt"
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and first.exists()
    assert not (folder / "checkpoints" / "real-done.ckpt").exists()  # killed before the end
    resumed = train_classifier(
        params, FolderCallbacks(folder), resume=(folder / "checkpoints" / "latest").read_bytes()
    )
    doc, out, _ = full_run
    assert resumed["strategies"]["real"]["test"] == doc["strategies"]["real"]["test"]
    assert (folder / "predictions" / "real.csv").read_bytes() == (
        out / "predictions" / "real.csv"
    ).read_bytes()


def test_inputs_on_an_fsspec_filesystem(data: dict[str, Path]) -> None:
    """CSV, images and synthetic set on `memory://`: validated and trained through fsspec."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for name, folder in (("real", data["csv"].parent), ("synthetic", data["synthetic"])):
        for path in folder.rglob("*"):
            if path.is_file():
                fs.pipe_file(f"/cxr/{name}/{path.relative_to(folder)}", path.read_bytes())
    params = tiny_params(Path("x"), epochs=1)
    params["real"]["csv"] = "memory://cxr/real/labels.csv"
    params["synthetic"] = {"folder": "memory://cxr/synthetic"}
    params["strategies"] = ["mixed"]
    params["eval"]["bootstrap"] = 0
    summary = validate_classifier_inputs(params)
    assert summary["synthetic"]["images"] == 64
    doc = train_classifier(params)
    assert doc["strategies"]["mixed"]["test"]["n_test"] == summary["real"]["splits"]["test"]
    fs.rm("/cxr", recursive=True)


def test_resume_refuses_another_runs_checkpoint(data: dict[str, Path]) -> None:
    class StopNow(Callbacks):
        def __init__(self) -> None:
            self.saved: list[bytes] = []

        def should_stop(self) -> bool:
            return True

        def save_checkpoint(self, data: bytes, name: str) -> None:
            self.saved.append(data)

    params = tiny_params(data["csv"])
    host = StopNow()
    with pytest.raises(TrainingStopped):
        train_classifier(params, host)
    params["train"]["lr"] = 0.5
    with pytest.raises(InvalidInput, match="another run"):
        train_classifier(params, resume=host.saved[-1])


def test_latent_classifier_against_images(data: dict[str, Path]) -> None:
    params = tiny_params(data["csv"], epochs=3)
    params["latents"] = str(data["latents"])
    summary = validate_latent_inputs(params)
    assert summary["latent_shape"] == [1, 8, 8] and summary["image_side"] == 32
    assert summary["latent_stem"] == "no-pool" and summary["matched"] == summary["latents"]
    out = data["root"] / "latent"
    doc = train_latent_classifier(params, FolderCallbacks(out))
    assert set(doc["arms"]) == {"latent", "image"}
    for arm in ("latent", "image"):
        assert doc["arms"][arm]["test"]["labels"]["Pleural Effusion"]["auroc"] > 0.8
        assert doc["throughput"][arm]["loop_images_per_s"] > 0
        pred, _ = read_predictions(out / "predictions" / f"{arm}.csv")
        assert doc["arms"][arm]["test"]["labels"]["No Finding"]["auroc"] == roc_auc_score(
            pred["test"]["y"][:, 0], pred["test"]["p"][:, 0]
        )
    assert doc["throughput"]["loop_speedup"] > 0
    assert "latent/image" in (out / "report.md").read_text()


def test_submit_time_errors(data: dict[str, Path], tmp_path: Path) -> None:
    summary = validate_classifier_inputs(strategy_params(data))
    assert summary["synthetic"]["images"] == 64 and summary["synthetic"]["dropped_unmapped"] == 0
    assert sum(summary["real"]["splits"].values()) == summary["real"]["images"]

    params = tiny_params(data["csv"])
    params["real"]["labels"] = ["No Finding", "Edema"]
    with pytest.raises(InvalidInput, match=r"no label column\(s\) \['Edema'\]"):
        validate_classifier_inputs(params)

    empty = tmp_path / "empty.csv"
    empty.write_text("Path,No Finding\n")
    with pytest.raises(InvalidInput, match="empty"):
        validate_classifier_inputs(tiny_params(empty))

    other = write_synthetic(tmp_path / "other", per_cell=1, findings={"Nodule": [], "Mass": []})
    params = tiny_params(data["csv"], other)
    params["strategies"] = ["mixed"]
    with pytest.raises(InvalidInput, match="no synthetic finding maps to a real label"):
        validate_classifier_inputs(params)

    params = tiny_params(data["csv"])
    params["strategies"] = ["pretrain-finetune"]
    with pytest.raises(InvalidInput, match="need a `synthetic` dataset"):
        validate_classifier_inputs(params)

    moved = tmp_path / "moved.csv"
    moved.write_text(data["csv"].read_text())
    with pytest.raises(InvalidInput, match=r"real image file .* not found"):
        validate_classifier_inputs(tiny_params(moved))

    params = tiny_params(moved)
    params["real"]["images"] = str(data["csv"].parent)
    params["latents"] = str(data["latents"])
    params["real"]["csv"] = str(moved)
    assert validate_latent_inputs(params)["matched"] > 0  # joined through the images root
    (tmp_path / "lat").mkdir()
    (tmp_path / "lat" / "manifest.jsonl").write_text(
        json.dumps(
            {
                "index": 0,
                "source": "/elsewhere/x.png",
                "status": "ok",
                "latent_file": "l.npy",
                "shape": [1, 8, 8],
                "model": "medvae-4-1-2d",
            }
        )
        + "\n"
    )
    params["latents"] = str(tmp_path / "lat")
    with pytest.raises(InvalidInput, match="none of the latents' source files"):
        validate_latent_inputs(params)
    assert math.isfinite(summary["real"]["positives"]["Cardiomegaly"])
