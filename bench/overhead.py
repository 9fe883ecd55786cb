"""Platform overhead on the echo model, side by side with PyTriton in one run, written to JSON.

(a) in-process: OIP decode, preprocess, the dynamic batcher, predict, postprocess, encode,
    in this process (no HTTP); `a_direct` is the adapter alone (no codec, no batcher);
(b) through a `medserve worker` process (OIP v2 over HTTP, and `b_worker_grpc` over gRPC);
(c) through `medserve gateway` and that worker (HTTP, and `c_gateway_grpc`);
(d) the same echo model served by PyTriton, a real Triton server (HTTP and gRPC; needs
    `make triton-env`).

One closed-loop load generator (bench/loadgen.py) drives every served target at each
concurrency, `--runs` times with the targets interleaved, so each ratio compares figures taken
minutes apart on the same machine. The goals: (c) adds at most 1 ms p50 over (a) at
concurrency 1; (c) at 32 reaches (d)'s throughput with a p99 at most 1.5x (d)'s; in every run.

    .venv/bin/python bench/overhead.py [--duration 3] [--runs 3] [--out bench/results/overhead.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import (
    CLI,
    Proc,
    Send,
    base_env,
    closed_loop,
    grpc_request,
    grpc_sender,
    http_sender,
    machine,
)
from core.net import free_port
from core.settings import Settings
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.runtime.adapter import ModelAdapter
from workers.runtime.batcher import Batcher
from workers.runtime.oip import (
    HEADER_LENGTH,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from workers.runtime.registry import adapter_for, build_tiny
from workers.runtime.state import batch_config

TRITON_VENV = ROOT / ".venv-triton"


def load_echo(model_dir: Path) -> ModelAdapter:
    store = ModelStore(model_dir, load_manifests())
    adapter = adapter_for(store.manifest("echo"))
    adapter.load(build_tiny(store, "echo"), "cpu")
    return adapter


def in_process_sender(adapter: ModelAdapter, batcher: Batcher, body: bytes, length: int) -> Send:
    async def send() -> None:
        request = decode_request(body, length)
        pending = batcher.submit(adapter.preprocess(request))
        results = await pending.future
        encode_response(adapter.postprocess(request, results), request)

    return send


def direct_sender(adapter: ModelAdapter, body: bytes, length: int) -> Send:
    request = decode_request(body, length)

    async def send() -> None:
        adapter.postprocess(request, adapter.predict(adapter.preprocess(request)))
        await asyncio.sleep(0)  # let the load generator's clock run

    return send


def start_triton(log_dir: Path) -> tuple[Proc | None, dict[str, int] | str]:
    python = TRITON_VENV / "bin" / "python"
    if not python.exists():
        return None, f"{TRITON_VENV} is missing: run `make triton-env`"
    libdir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{libdir}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    ports = {"http": free_port(), "grpc": free_port()}
    argv = [
        str(python),
        str(ROOT / "bench" / "pytriton_echo.py"),
        "--http-port",
        str(ports["http"]),
        "--grpc-port",
        str(ports["grpc"]),
        "--metrics-port",
        str(free_port()),
    ]
    return Proc("pytriton", argv, env, log_dir), ports


async def measure_all(
    args: argparse.Namespace, targets: dict[str, dict[str, Any]], adapter: ModelAdapter
) -> dict[str, list[dict]]:
    """Every target at every concurrency, `args.runs` times, interleaved."""
    import aiohttp
    import grpc

    x = np.arange(args.rows * args.cols, dtype=np.float32).reshape(args.rows, args.cols)
    body, length = encode_request({"INPUT0": x})
    assert length is not None
    batcher = Batcher(adapter, batch_config(Settings.model_construct(), adapter))
    batcher.start()
    results: dict[str, list[dict]] = {}
    channels = {
        name: grpc.aio.insecure_channel(t["grpc"]) for name, t in targets.items() if "grpc" in t
    }
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        senders: dict[str, Send] = {
            "a_in_process": in_process_sender(adapter, batcher, body, length)
        }
        for name, target in targets.items():
            if "url" in target:  # the answer is right before anything is timed
                async with session.post(
                    target["url"], data=body, headers={HEADER_LENGTH: str(length)}
                ) as r:
                    out = decode_response(await r.read(), int(r.headers[HEADER_LENGTH]))
                    np.testing.assert_array_equal(out.outputs["OUTPUT0"], x)
                senders[name] = http_sender(session, target["url"], body, length)
            else:
                senders[name] = grpc_sender(channels[name], grpc_request("echo", x))
                await senders[name]()
        results["a_direct"] = [
            await closed_loop(direct_sender(adapter, body, length), 1, args.duration, args.warmup)
        ]
        only = {part.strip() for part in args.only.split(",") if part.strip()}
        for run in range(args.runs):
            for name, send in senders.items():
                if only and name.split("_")[0] not in only:
                    continue
                for concurrency in args.concurrency:
                    pids = targets.get(name, {}).get("pids")
                    row = await closed_loop(send, concurrency, args.duration, args.warmup, pids)
                    row["run"] = run
                    results.setdefault(name, []).append(row)
                    print(
                        f"run {run} {name:>16} c={concurrency:<3} p50 {row['p50_ms']:8.3f} ms"
                        f"  p99 {row['p99_ms']:8.3f} ms  {row['throughput_rps']:8.1f} req/s"
                        f"  cpu/req {row['server_cpu_ms_per_request']} ms  errors "
                        f"{row['errors']}",
                        flush=True,
                    )
    for channel in channels.values():
        await channel.close()
    await batcher.close()
    return results


def ratios(results: dict[str, list[dict]], runs: int) -> dict[str, Any]:
    """Each goal's ratio per run (both sides from that run), its median, and whether every run
    meets it."""

    def at(name: str, c: int, run: int) -> dict | None:
        rows = [r for r in results.get(name, []) if r["concurrency"] == c]
        return next((r for r in rows if r.get("run", 0) == run), None)

    pairs = (  # key, target, the PyTriton side it is compared with
        ("b", "b_worker", "d_pytriton"),
        ("c", "c_gateway_worker", "d_pytriton"),
        ("c_uds", "c_gateway_uds", "d_pytriton"),
        ("b_grpc", "b_worker_grpc", "d_pytriton_grpc"),
        ("c_grpc", "c_gateway_grpc", "d_pytriton_grpc"),
    )
    per_run: list[dict[str, float]] = []
    for run in range(runs):
        out: dict[str, float] = {}
        a1 = at("a_in_process", 1, run)
        for key, name in (("c", "c_gateway_worker"), ("c_uds", "c_gateway_uds")):
            c1 = at(name, 1, run)
            if a1 and c1:
                out[f"{key}_minus_a_p50_ms_at_1"] = round(c1["p50_ms"] - a1["p50_ms"], 3)
        for key, name, base in pairs:
            for c in (1, 8, 32):
                row, dd = at(name, c, run), at(base, c, run)
                if not (row and dd and dd["throughput_rps"]):
                    continue
                out[f"{key}_over_d_throughput_at_{c}"] = round(
                    row["throughput_rps"] / dd["throughput_rps"], 3
                )
                out[f"{key}_over_d_p99_at_{c}"] = round(row["p99_ms"] / dd["p99_ms"], 3)
                rc, dc = row["server_cpu_ms_per_request"], dd["server_cpu_ms_per_request"]
                if rc and dc:
                    out[f"{key}_over_d_server_cpu_per_request_at_{c}"] = round(rc / dc, 3)
        per_run.append(out)
    keys = sorted({k for run in per_run for k in run})
    median = {k: round(float(np.median([r[k] for r in per_run if k in r])), 3) for k in keys}
    goals = {
        "c_adds_at_most_1ms_p50_at_1": ("c_minus_a_p50_ms_at_1", lambda v: v <= 1.0),
        "c_reaches_d_throughput_at_32": ("c_over_d_throughput_at_32", lambda v: v >= 1.0),
        "c_p99_at_most_1_5x_d_at_32": ("c_over_d_p99_at_32", lambda v: v <= 1.5),
    }
    met = {
        goal: all(check(r[key]) for r in per_run if key in r) if key in median else None
        for goal, (key, check) in goals.items()
    }
    return {"per_run": per_run, "median": median, "goals_met_in_every_run": met}


def start_servers(
    args: argparse.Namespace, scratch: Path, env: dict[str, str]
) -> tuple[list[Proc], dict[str, dict[str, Any]], list[str]]:
    """Worker, gateway (HTTP and gRPC) and PyTriton; the targets to measure."""
    ports = {k: free_port() for k in ("worker", "worker_grpc", "gateway", "gateway_grpc")}
    procs: list[Proc] = []
    notes: list[str] = []
    uds = str(scratch / "worker.sock")
    worker = Proc(
        "worker",
        [
            *CLI,
            "worker",
            "--models",
            "echo",
            "--port",
            str(ports["worker"]),
            "--grpc-port",
            str(ports["worker_grpc"]),
            "--uds",
            uds,
        ],
        env,
        scratch,
    )
    procs.append(worker)
    gateway_env = {
        **env,
        "MEDSERVE_HOME": str(scratch),
        "MEDSERVE_ROUTES": json.dumps({"echo": f"http://127.0.0.1:{ports['worker']}"}),
        "MEDSERVE_GRPC_PORT": str(ports["gateway_grpc"]),
    }
    gateway = Proc(
        "gateway", [*CLI, "gateway", "--port", str(ports["gateway"])], gateway_env, scratch
    )
    procs.append(gateway)
    ports["gateway_uds"] = free_port()
    uds_env = {
        **env,
        "MEDSERVE_HOME": str(scratch / "uds"),
        "MEDSERVE_ROUTES": json.dumps({"echo": f"unix:{uds}"}),
    }
    gateway_uds = Proc(
        "gateway-uds", [*CLI, "gateway", "--port", str(ports["gateway_uds"])], uds_env, scratch
    )
    procs.append(gateway_uds)
    triton, triton_ports = (
        (None, "skipped (--skip-triton)") if args.skip_triton else start_triton(scratch)
    )
    worker.wait_http(f"http://127.0.0.1:{ports['worker']}/v2/health/ready", 60)
    gateway.wait_http(f"http://127.0.0.1:{ports['gateway']}/readyz", 60)
    gateway_uds.wait_http(f"http://127.0.0.1:{ports['gateway_uds']}/readyz", 60)
    infer = "/v2/models/echo/infer"
    both = [gateway.pid, worker.pid]
    targets: dict[str, dict[str, Any]] = {
        "b_worker": {"url": f"http://127.0.0.1:{ports['worker']}{infer}", "pids": [worker.pid]},
        "c_gateway_worker": {"url": f"http://127.0.0.1:{ports['gateway']}{infer}", "pids": both},
        "c_gateway_uds": {
            "url": f"http://127.0.0.1:{ports['gateway_uds']}{infer}",
            "pids": [gateway_uds.pid, worker.pid],
        },
        "b_worker_grpc": {"grpc": f"127.0.0.1:{ports['worker_grpc']}", "pids": [worker.pid]},
        "c_gateway_grpc": {"grpc": f"127.0.0.1:{ports['gateway_grpc']}", "pids": both},
    }
    if triton is not None and isinstance(triton_ports, dict):
        procs.append(triton)
        triton.wait_http(f"http://127.0.0.1:{triton_ports['http']}/v2/models/echo/ready", 120)
        targets["d_pytriton"] = {
            "url": f"http://127.0.0.1:{triton_ports['http']}{infer}",
            "pids": [triton.pid],
        }
        targets["d_pytriton_grpc"] = {
            "grpc": f"127.0.0.1:{triton_ports['grpc']}",
            "pids": [triton.pid],
        }
    else:
        notes.append(f"PyTriton not measured: {triton_ports}")
    return procs, targets, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "overhead.json")
    parser.add_argument("--duration", type=float, default=3.0, help="Measured seconds per point.")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=3, help="Interleaved repeats of every point.")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 32]
    )
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument("--only", default="", help="Comma-separated subset, e.g. a,b.")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # stop children

    start = machine()
    scratch = Path(tempfile.mkdtemp(prefix="medserve-bench-"))
    adapter = load_echo(scratch / "models")
    procs: list[Proc] = []
    try:
        procs, targets, notes = start_servers(args, scratch, base_env(scratch / "models"))
        import uvloop

        uvloop.install()
        results = asyncio.run(measure_all(args, targets, adapter))
    finally:
        for proc in procs:
            proc.stop()
    report = {
        "benchmark": "overhead",
        "model": "echo",
        "payload": {
            "input": "INPUT0",
            "datatype": "FP32",
            "shape": [args.rows, args.cols],
            "encoding": "binary tensors (HTTP) / raw contents (gRPC)",
        },
        "client": "one closed-loop client process (aiohttp, grpc.aio), the same for b, c and d",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "runs": args.runs,
        "machine": {**start, "loadavg_end": os.getloadavg()},
        "batching": batch_config(Settings.model_construct(), adapter).__dict__,
        "results": results,
        "ratios": ratios(results, args.runs),
        "notes": [
            *notes,
            "client, gateway, worker and Triton share this machine's CPUs; on few "
            "cores the load generator competes with the servers it measures",
        ],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["ratios"]["median"], indent=2))
    print(json.dumps(report["ratios"]["goals_met_in_every_run"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
