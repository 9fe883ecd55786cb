"""Scale-out on one machine: 1 vs 2 workers behind one gateway, and a campaign on 1 vs 2 workers.

(1) echo throughput through `medserve gateway` routing to one worker, and through a second
    gateway routing to that worker and another (replicas, balanced per request), in one run,
    two ways: plain echo (CPU-bound: every hop competes for the same cores) and echo whose
    batch sleeps `--device-ms` with batches capped at `--device-batch` (a model bound by its
    own device, as on one GPU per worker: the sleep uses no CPU);
(2) a tiny RoentGen-v2 `synthetic-dataset` campaign with 1 and 2 workers (concurrency per
    replica), images/s from the job's start to its end, and how many images each worker made.
Writes JSON (default bench/results/scale.json).

    .venv/bin/python bench/scale.py [--duration 4] [--concurrency 32] [--images-per-cell 4]
"""

from __future__ import annotations

import argparse
import asyncio
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli.embedded_redis import EmbeddedRedis
from core.net import free_port
from core.settings import Settings
from workers.jobs.control import JobControl
from workers.jobs.queue import JobQueue
from workers.jobs.records import JobStore

CLI = [sys.executable, "-m", "cli"]


class Procs:
    """Child processes of the bench, each with a log file; all stopped at the end."""

    def __init__(self, work: Path) -> None:
        self.work, self.procs = work, []  # type: ignore[var-annotated]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
        self.env.update(MEDSERVE_MODEL_DIR=str(work / "models"), MEDSERVE_HOME=str(work),
                        MEDSERVE_LOG_LEVEL="WARNING", MEDSERVE_HEALTH_INTERVAL_S="0.5")  # fmt: skip

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("ab")
        proc = subprocess.Popen([*CLI, *argv], cwd=ROOT, env={**self.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
        self.procs.append(proc)
        return proc

    def worker(self, name: str, model: str, **env: str) -> str:
        port = free_port()
        self.start(name, ["worker", "--models", model, "--port", str(port)], **env)
        url = f"http://127.0.0.1:{port}"
        wait_ok(url + "/v2/health/ready", 300)
        return url

    def gateway(self, name: str, routes: dict[str, list[str]]) -> str:
        port = free_port()
        self.start(name, ["gateway", "--port", str(port)], MEDSERVE_ROUTES=json.dumps(routes))
        url = f"http://127.0.0.1:{port}"
        wait_ok(url + "/readyz", 120)
        return url

    def stop(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        for p in [proc] if proc else reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_ok(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


async def load(url: str, body: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed-loop clients on one aiohttp session: throughput and latency percentiles."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        stop = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                async with session.post(url + "/v2/models/echo/infer", data=body,
                                        headers=headers) as resp:  # fmt: skip
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 2),
        "p99_ms": round(1000 * ordered[int(len(ordered) * 0.99)], 2),
    }


def served(url: str, model: str) -> int:
    stats = httpx.get(f"{url}/v2/models/{model}/stats", timeout=5).json()["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


def echo_part(procs: Procs, args: argparse.Namespace) -> dict[str, Any]:
    batch = {"MEDSERVE_MAX_BATCH_SIZE": str(args.device_batch)}
    a, b = procs.worker("echo-a", "echo", **batch), procs.worker("echo-b", "echo", **batch)
    gateways = {1: procs.gateway("gateway-1", {"echo": [a]}),
                2: procs.gateway("gateway-2", {"echo": [a, b]})}  # fmt: skip
    out: dict[str, Any] = {"max_batch_size": args.device_batch, "concurrency": args.concurrency}
    for variant, delay in (("cpu_bound", 0.0), ("device_bound", args.device_ms)):
        doc = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
                           "data": [0.5] * 16}], "parameters": {"delay_ms": delay}}  # fmt: skip
        body = json.dumps(doc).encode()
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        asyncio.run(load(gateways[1], body, args.concurrency, 1.0))  # warm-up
        for _ in range(args.rounds):  # alternate, so drift on the shared machine hits both
            for workers, url in gateways.items():
                before = [served(a, "echo"), served(b, "echo")]
                run = asyncio.run(load(url, body, args.concurrency, args.duration))
                run["per_worker"] = [served(a, "echo") - before[0], served(b, "echo") - before[1]]
                runs[workers].append(run)
        best = {w: max(r, key=lambda x: x["req_per_s"]) for w, r in runs.items()}
        out[variant] = {
            "delay_ms_per_batch": delay,
            "one_worker": best[1],
            "two_workers": best[2],
            "speedup": round(best[2]["req_per_s"] / best[1]["req_per_s"], 3),
            "all_runs": runs,
        }
    return out


def campaign_part(procs: Procs, args: argparse.Namespace) -> dict[str, Any]:
    redis = EmbeddedRedis(procs.work / "redis", persist=False)
    redis_url = redis.start()
    try:
        model = "roentgen-v2"
        urls = [procs.worker("roentgen-a", model)]  # builds the tiny weights once
        urls.append(procs.worker("roentgen-b", model))
        settings = Settings(redis_url=redis_url, artifact_dir=str(procs.work / "artifacts"))
        store = JobStore.from_url(redis_url, retry_for_s=10)
        control = JobControl(settings, store, JobQueue(settings))
        params = {"findings": ["No acute cardiopulmonary process."], "sexes": ["female", "male"],
                  "age_bins": [[18, 49], [50, 95]], "races": ["WHITE", "BLACK"],
                  "images_per_cell": args.images_per_cell, "seed": 5, "steps": 1,
                  "height": 64, "width": 64, "concurrency": args.campaign_concurrency}  # fmt: skip
        out: dict[str, Any] = {"model": f"{model} (random-tiny)", "size": 64, "steps": 1,
                               "concurrency_per_replica": args.campaign_concurrency}  # fmt: skip
        for count in (1, 2):
            runner = procs.start(f"runner-{count}", ["jobs-worker"], MEDSERVE_REDIS_URL=redis_url,
                                 MEDSERVE_ARTIFACT_DIR=str(procs.work / "artifacts"),
                                 MEDSERVE_ROUTES=json.dumps({model: urls[:count]}))  # fmt: skip
            before = [served(u, model) for u in urls]
            job, _ = control.submit("bench", "synthetic-dataset", {**params, "seed": 5 + count})
            deadline = time.monotonic() + 3600
            while not (done := store.get(job.id)).terminal and time.monotonic() < deadline:
                time.sleep(0.2)
            if done.state != "succeeded" or done.started_at is None or done.finished_at is None:
                raise RuntimeError(
                    f"campaign on {count} worker(s) ended {done.state}: {done.error}"
                )
            seconds = done.finished_at - done.started_at
            out[f"{count}_workers"] = {
                "images": done.total,
                "seconds": round(seconds, 2),
                "images_per_s": round(done.total / seconds, 3),
                "per_worker": [served(u, model) - b for u, b in zip(urls, before, strict=True)],
            }
            procs.stop(runner)
        out["speedup"] = round(
            out["2_workers"]["images_per_s"] / out["1_workers"]["images_per_s"], 3
        )
        control.queue.close()
        return out
    finally:
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per echo run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating echo runs")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--device-ms", type=float, default=20.0)
    parser.add_argument("--device-batch", type=int, default=8)
    parser.add_argument("--images-per-cell", type=int, default=4, help="x 8 cells")
    parser.add_argument("--campaign-concurrency", type=int, default=4)
    parser.add_argument("--skip-campaign", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medserve-bench-scale-"))
    procs = Procs(work)
    started = os.getloadavg()[0]
    try:
        result: dict[str, Any] = {"bench": "scale", "echo": echo_part(procs, args)}
        if not args.skip_campaign:
            result["campaign"] = campaign_part(procs, args)
        result["machine"] = {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1m_start": round(started, 2),
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
            "note": "shared machine: other work ran beside the bench",
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2)[:6000])
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
