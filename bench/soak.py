"""Soak: gateway + worker on the echo model at concurrency 32 for 10 minutes, written to JSON.

Every minute: throughput, p50/p99, and the gateway's and the worker's resident memory. The goal
(issue: "keeps throughput and the gateway's and worker's RSS within 10% of the first minute's")
is judged minute by minute against minute 1, after a warm-up that is not counted.

    .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 32] [--out bench/results/soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import CLI, Proc, base_env, closed_loop, http_sender, machine, rss_mb
from core.net import free_port
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.runtime.oip import encode_request
from workers.runtime.registry import build_tiny


async def soak(args: argparse.Namespace, url: str, pids: dict[str, int]) -> list[dict[str, Any]]:
    import aiohttp

    body, length = encode_request({"INPUT0": np.ones((1, 16), np.float32)})
    assert length is not None
    minutes: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        send = http_sender(session, url, body, length)
        await closed_loop(send, args.concurrency, args.warmup, 0.0)
        for minute in range(args.minutes):
            row = await closed_loop(send, args.concurrency, 60.0, 0.0, list(pids.values()))
            row["minute"] = minute + 1
            row.update({f"{name}_rss_mb": rss_mb(pid) for name, pid in pids.items()})
            minutes.append(row)
            print(
                f"minute {minute + 1}: {row['throughput_rps']} req/s, p99 {row['p99_ms']} ms,"
                f" gateway {row['gateway_rss_mb']} MiB, worker {row['worker_rss_mb']} MiB,"
                f" errors {row['errors']}",
                flush=True,
            )
    return minutes


def verdict(minutes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each later minute against the first: the largest drift of each figure, and the goal."""
    first = minutes[0]
    out: dict[str, Any] = {}
    for key, worse in (("throughput_rps", -1), ("gateway_rss_mb", 1), ("worker_rss_mb", 1)):
        drifts = [worse * (m[key] - first[key]) / first[key] for m in minutes[1:] if first[key]]
        out[f"max_{key}_drift"] = round(max(drifts, default=0.0), 4)
    out["errors"] = sum(m["errors"] for m in minutes)
    out["goal_within_10_percent_of_minute_1"] = all(
        out[f"max_{k}_drift"] <= 0.10 for k in ("throughput_rps", "gateway_rss_mb", "worker_rss_mb")
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=20.0, help="Seconds before minute 1.")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    start = machine()
    scratch = Path(tempfile.mkdtemp(prefix="medserve-soak-"))
    build_tiny(ModelStore(scratch / "models", load_manifests()), "echo")
    env = base_env(scratch / "models")
    wport, gport = free_port(), free_port()
    procs = [
        Proc("worker", [*CLI, "worker", "--models", "echo", "--port", str(wport)], env, scratch)
    ]
    gateway_env = {
        **env,
        "MEDSERVE_HOME": str(scratch),
        "MEDSERVE_ROUTES": json.dumps({"echo": f"http://127.0.0.1:{wport}"}),
    }
    procs.append(Proc("gateway", [*CLI, "gateway", "--port", str(gport)], gateway_env, scratch))
    try:
        procs[0].wait_http(f"http://127.0.0.1:{wport}/v2/health/ready", 60)
        procs[1].wait_http(f"http://127.0.0.1:{gport}/readyz", 60)
        import uvloop

        uvloop.install()
        pids = {"gateway": procs[1].pid, "worker": procs[0].pid}
        minutes = asyncio.run(soak(args, f"http://127.0.0.1:{gport}/v2/models/echo/infer", pids))
    finally:
        for proc in procs:
            proc.stop()
    report = {
        "benchmark": "soak",
        "model": "echo",
        "concurrency": args.concurrency,
        "minutes": minutes,
        "verdict": verdict(minutes),
        "machine": {**start, "loadavg_end": machine()["loadavg"]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["verdict"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
