"""Benchmark: training throughput in a job versus the same loop run directly, latents vs images.

One run, on generated demo data (`workers.training.demo`: planted-signal films, and their 4x
average-pooled latents in the latent-dataset layout):
1. `direct`: `train_latent_classifier` (latent arm + full-resolution image arm) in this process.
2. `job`: the same parameters as a `train-latent-classifier` job on a private Redis and one
   `medserve jobs-worker --queue training` process (same torch thread count).
3. `model_only`: `throughput.latent_vs_image`, the forward + backward + AdamW step alone on
   random tensors, at the same sizes (what MedVAE's throughput claim is about).
Both paths first run a 1-epoch warm-up (imports, first kernels), reported but not compared.
Images/s: `loop` = the library's timed training loop (batch fetch + step, no validation or
checkpoints); `wall` = images trained / wall seconds of the whole run (data loading, every
validation, checkpoints, test predictions, metrics, plots; for the job also claim and submit).
Writes JSON (default bench/results/training.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from cli.embedded_redis import EmbeddedRedis
from core.settings import Settings
from workers.jobs.control import JobControl
from workers.jobs.queue import JobQueue
from workers.jobs.records import JobStore
from workers.training import demo, throughput
from workers.training.callbacks import FolderCallbacks
from workers.training.latent import train_latent_classifier
from workers.training.params import ModelOptions


def params_for(data: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    params = demo.tiny_params(data["csv"], epochs=args.epochs, batch_size=args.batch,
                              image_size=args.side, patience=args.epochs)  # fmt: skip
    params["latents"] = str(data["latents"])
    params["eval"]["bootstrap"] = 0
    if args.arch == "densenet121":
        params["model"] = {"arch": "densenet121"}
    return params


def arms(doc: dict[str, Any], wall_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_s": round(wall_s, 3)}
    seen = 0
    for arm, speed in doc["throughput"].items():
        if isinstance(speed, dict):
            seen += speed["images_seen"]
            out[arm] = {"loop_images_per_s": round(speed["loop_images_per_s"], 2),
                        "step_images_per_s": round(speed["step_images_per_s"], 2),
                        "images_seen": speed["images_seen"],
                        "test_mean_auroc": doc["arms"][arm]["test"]["mean_auroc"]}  # fmt: skip
    out["loop_speedup_latent_vs_image"] = round(doc["throughput"]["loop_speedup"], 3)
    out["wall_images_per_s"] = round(seen / wall_s, 2)
    return out


def run_job(
    params: dict[str, Any], work: Path, threads: int
) -> tuple[dict[str, Any], float, float]:
    """The job's metrics doc and wall seconds, after a 1-epoch warm-up job in the same runner
    (its imports and first-batch costs: the cold wall seconds, also returned)."""
    redis = EmbeddedRedis(work / "redis", persist=False)
    url = redis.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(MEDSERVE_REDIS_URL=url, MEDSERVE_ARTIFACT_DIR=str(work / "artifacts"),
               MEDSERVE_TORCH_THREADS=str(threads), PYTHONPATH=str(ROOT))  # fmt: skip
    log = (work / "runner.log").open("wb")
    runner = subprocess.Popen([sys.executable, "-m", "cli", "jobs-worker", "--queue", "training"],
                              env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        settings = Settings(redis_url=url, artifact_dir=str(work / "artifacts"))
        store = JobStore.from_url(url, retry_for_s=10)
        control = JobControl(settings, store, JobQueue(settings))

        def timed(job_params: dict[str, Any]) -> tuple[Any, float]:
            start = time.perf_counter()
            job, _ = control.submit("bench", "train-latent-classifier", job_params)
            while not (done := store.get(job.id)).terminal:
                time.sleep(0.05)
            if done.state != "succeeded":
                raise RuntimeError(f"job ended {done.state}: {done.error}")
            return done, time.perf_counter() - start

        warm = {**params, "train": {**params["train"], "epochs": 1}}
        _, cold = timed(warm)
        done, wall = timed(params)
        control.queue.close()
        doc = json.loads((Path(done.artifact_uri) / "metrics.json").read_text())
        return doc, wall, cold
    finally:
        runner.terminate()
        runner.wait(timeout=30)
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--arch",
        choices=["densenet", "densenet121"],
        default="densenet",
        help="densenet: the tests' tiny config; densenet121: as published",
    )
    parser.add_argument("--patients", type=int, default=90)
    parser.add_argument("--side", type=int, default=64, help="Image side (latents: side / 4).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both runs.")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "training.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="medserve-bench-training-"))
    try:
        csv_path = demo.write_real(work / "real", args.patients, args.side, seed=0)
        data = {"csv": csv_path, "latents": demo.write_latents(work / "latents", csv_path)}
        params = params_for(data, args)
        load_before = os.getloadavg()[0]
        warm = {**params, "train": {**params["train"], "epochs": 1}}
        start = time.perf_counter()
        train_latent_classifier(warm, FolderCallbacks(work / "warm"))  # imports, first kernels
        direct_cold_s = time.perf_counter() - start
        start = time.perf_counter()
        direct = train_latent_classifier(params, FolderCallbacks(work / "direct"))
        direct_s = time.perf_counter() - start
        job, job_s, cold_s = run_job(params, work, args.threads)
        model = ModelOptions.model_validate(params["model"])
        model_only = throughput.latent_vs_image(
            model, args.side, 4, 1, n_labels=len(demo.LABELS), batch_size=args.batch,
            steps=10, device="cpu",
        )  # fmt: skip
        d, j = arms(direct, direct_s), arms(job, job_s)
        result = {
            "bench": "training",
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_avg_1m_before": load_before,
                "load_avg_1m_after": os.getloadavg()[0],
                "torch": torch.__version__,
                "threads": args.threads,
            },
            "setup": {
                "arch": args.arch,
                "images": len(csv_path.read_text().splitlines()) - 1,
                "image_side": args.side,
                "latent_shape": job["inputs"]["latent_shape"],
                "latent_stem": job["inputs"]["latent_stem"],
                "epochs": args.epochs,
                "batch_size": args.batch,
                "device": "cpu",
            },
            "direct": d | {"warm_up_wall_s (1 epoch, first call)": round(direct_cold_s, 3)},
            "job": j | {"warm_up_job_wall_s (1 epoch, cold runner)": round(cold_s, 3)},
            "job_vs_direct": {
                arm: round(j[arm]["loop_images_per_s"] / d[arm]["loop_images_per_s"], 3)
                for arm in ("latent", "image")
            }
            | {"wall": round(j["wall_images_per_s"] / d["wall_images_per_s"], 3)},
            "same_metrics_job_and_direct": all(
                job["arms"][a]["test"] == direct["arms"][a]["test"] for a in ("latent", "image")
            ),
            "model_only": {
                "latent": {
                    k: model_only["latent"][k] for k in ("images_per_s", "input_shape", "stem")
                },
                "image": {k: model_only["image"][k] for k in ("images_per_s", "input_shape")},
                "speedup": round(model_only["speedup"], 3),
            },
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
