"""Flame graphs of the gateway and the worker under load (py-spy), for the overhead figures.

Starts a worker (echo) and a gateway, drives `POST /v2/models/echo/infer` at `--concurrency`
with the shared load generator, and records each server with `py-spy record` for `--seconds`:
`bench/results/profile-gateway.svg` and `profile-worker.svg` (flame graphs), and the same
samples as collapsed stacks (`.txt`) plus the functions with the most samples in
`profile.json`.

    .venv/bin/python bench/profile_gateway.py [--concurrency 32] [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import CLI, Proc, base_env, closed_loop, http_sender, machine
from core.net import free_port
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.runtime.oip import encode_request
from workers.runtime.registry import build_tiny


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        sys.exit("py-spy is missing: pip install py-spy (it is in the dev extra)")
    return found


def record(pid: int, seconds: float, out: Path, fmt: str) -> subprocess.Popen:
    argv = [
        py_spy(),
        "record",
        "-p",
        str(pid),
        "-d",
        str(int(seconds)),
        "-r",
        "200",
        "-f",
        fmt,
        "-o",
        str(out),
        "--nonblocking",
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_functions(collapsed: Path, count: int = 25) -> list[dict[str, object]]:
    """The functions most often on top of the stack (own time), with how often each is on it
    at all."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")]
        total += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            inclusive[frame] += int(n)
    return [
        {
            "function": name,
            "own": round(n / total, 3),
            "on_stack": round(inclusive[name] / total, 3),
        }
        for name, n in own.most_common(count)
    ]


async def load(url: str, concurrency: int, seconds: float) -> dict:
    import aiohttp

    body, length = encode_request({"INPUT0": np.ones((1, 16), np.float32)})
    assert length is not None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        return await closed_loop(http_sender(session, url, body, length), concurrency, seconds, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="medserve-profile-"))
    build_tiny(ModelStore(scratch / "models", load_manifests()), "echo")
    env = base_env(scratch / "models")
    wport, gport = free_port(), free_port()
    worker = Proc(
        "worker", [*CLI, "worker", "--models", "echo", "--port", str(wport)], env, scratch
    )
    routes = json.dumps({"echo": f"http://127.0.0.1:{wport}"})
    gateway = Proc(
        "gateway",
        [*CLI, "gateway", "--port", str(gport)],
        {**env, "MEDSERVE_HOME": str(scratch), "MEDSERVE_ROUTES": routes},
        scratch,
    )
    report: dict = {"benchmark": "profile", "concurrency": args.concurrency, "machine": machine()}
    try:
        worker.wait_http(f"http://127.0.0.1:{wport}/v2/health/ready", 60)
        gateway.wait_http(f"http://127.0.0.1:{gport}/readyz", 60)
        spies = []
        for name, proc in (("gateway", gateway), ("worker", worker)):
            for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
                spies.append(
                    record(proc.pid, args.seconds, args.out / f"profile-{name}.{ext}", fmt)
                )
        url = f"http://127.0.0.1:{gport}/v2/models/echo/infer"
        report["load"] = asyncio.run(load(url, args.concurrency, args.seconds))
        for spy in spies:
            spy.wait(60)
    finally:
        gateway.stop()
        worker.stop()
    for name in ("gateway", "worker"):
        report[name] = top_functions(args.out / f"profile-{name}.txt")
    (args.out / "profile.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("load", "machine")}, indent=2))
    print(f"wrote {args.out}/profile-gateway.svg, profile-worker.svg, profile.json")


if __name__ == "__main__":
    main()
