"""Platform overhead on the echo model, four ways in one run, written to JSON.

(a) in-process: OIP decode, preprocess, the dynamic batcher, predict, postprocess, encode,
    in this process (no HTTP); `a_direct` is the adapter alone (no codec, no batcher);
(b) through a `medserve worker` process (OIP v2 over HTTP);
(c) through `medserve gateway` and that worker;
(d) the same echo model served by PyTriton (a real Triton server; needs `make triton-env`).

One closed-loop load generator (aiohttp, binary OIP tensors) drives (b), (c) and (d) at each
concurrency; latency p50/p99 and throughput per target, plus the ratios the goal is stated in:
(c) adds at most 1 ms p50 over (a) at concurrency 1; (c) at 32 reaches (d)'s throughput.

    .venv/bin/python bench/overhead.py [--duration 3] [--out bench/results/overhead.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
from workers.runtime.registry import (
    adapter_for,
    build_tiny,
)
from workers.runtime.state import batch_config

TRITON_VENV = ROOT / ".venv-triton"
Send = Callable[[], Awaitable[None]]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def tree_cpu_s(pids: list[int]) -> float:
    """User+system CPU seconds of these processes and all their descendants (Linux /proc)."""
    total, stack, seen = 0, list(pids), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    send: Send, concurrency: int, duration: float, warmup: float, pids: list[int] | None = None
) -> dict:
    """`concurrency` users each sending back to back; measured after `warmup` seconds.

    With `pids`, also the servers' CPU time per request: unlike latency on a shared machine,
    it does not depend on what else runs there."""
    latencies: list[float] = []
    errors = 0
    state = {"measure": False, "stop": False}

    async def user() -> None:
        nonlocal errors
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                await send()
            except Exception:
                errors += 1
                continue
            if state["measure"]:
                latencies.append(time.perf_counter() - t0)

    users = [asyncio.ensure_future(user()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    state["measure"] = True
    cpu0 = tree_cpu_s(pids) if pids else 0.0
    started = time.perf_counter()
    await asyncio.sleep(duration)
    state["measure"] = False
    elapsed = time.perf_counter() - started
    cpu = tree_cpu_s(pids) - cpu0 if pids else None
    state["stop"] = True
    await asyncio.gather(*users)
    ms = [x * 1000 for x in latencies]
    return {
        "concurrency": concurrency,
        "requests": len(ms),
        "errors": errors,
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(float(np.mean(ms)), 3) if ms else None,
        "throughput_rps": round(len(ms) / elapsed, 1),
        "server_cpu_ms_per_request": round(1000 * cpu / len(ms), 3) if cpu and ms else None,
    }


# --- targets ---------------------------------------------------------------------------------


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
    from workers.runtime.oip import InferRequest

    request: InferRequest = decode_request(body, length)

    async def send() -> None:
        adapter.postprocess(request, adapter.predict(adapter.preprocess(request)))
        await asyncio.sleep(0)  # let the load generator's clock run

    return send


def http_sender(session: Any, url: str, body: bytes, length: int) -> Send:
    headers = {HEADER_LENGTH: str(length)}

    async def send() -> None:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")

    return send


def httpx_sender(client: Any, url: str, body: bytes, length: int) -> Send:
    headers = {HEADER_LENGTH: str(length)}

    async def send() -> None:
        resp = await client.post(url, content=body, headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}")

    return send


async def compare_clients(args: argparse.Namespace, url: str, body: bytes, length: int) -> dict:
    """aiohttp (what OIPClient uses) against httpx.AsyncClient, same worker, same requests."""
    import aiohttp
    import httpx

    out: dict[str, list[dict]] = {"aiohttp": [], "httpx": []}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session,
        httpx.AsyncClient(limits=limits) as client,
    ):
        for concurrency in (1, 32):
            for name, send in (
                ("aiohttp", http_sender(session, url, body, length)),
                ("httpx", httpx_sender(client, url, body, length)),
            ):
                row = await closed_loop(send, concurrency, args.duration / 2, args.warmup)
                out[name].append(row)
                print(f"{'client ' + name:>16} c={concurrency:<3} p50 {row['p50_ms']:8.3f} ms  "
                      f"{row['throughput_rps']:8.1f} req/s", flush=True)  # fmt: skip
    return out


# --- processes -------------------------------------------------------------------------------


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = (log_dir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_http(self, url: str, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url} after {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def base_env(model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(MEDSERVE_MODEL_DIR=str(model_dir), MEDSERVE_LOG_LEVEL="WARNING")
    return env


def start_triton(log_dir: Path) -> tuple[Proc, int] | tuple[None, str]:
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
    port = free_port()
    argv = [str(python), str(ROOT / "bench" / "pytriton_echo.py"), "--http-port", str(port)]
    argv += ["--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    return Proc("pytriton", argv, env, log_dir), port


# --- the run ---------------------------------------------------------------------------------


async def measure_all(
    args: argparse.Namespace, urls: dict[str, str], pids: dict[str, list[int]], adapter: Any
) -> dict:
    import aiohttp

    x = np.arange(args.rows * args.cols, dtype=np.float32).reshape(args.rows, args.cols)
    body, length = encode_request({"INPUT0": x})
    assert length is not None
    settings = Settings.model_construct()  # defaults, as the worker (env stripped) has
    batcher = Batcher(adapter, batch_config(settings, adapter))
    batcher.start()
    results: dict[str, list[dict]] = {}
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        for name, url in urls.items():  # answers are right before anything is timed
            async with session.post(url, data=body, headers={HEADER_LENGTH: str(length)}) as r:
                data = await r.read()
                out = decode_response(data, int(r.headers[HEADER_LENGTH]))
                np.testing.assert_array_equal(out.outputs["OUTPUT0"], x)
                print(f"{name}: answers correctly", flush=True)
        senders: dict[str, Send] = {
            "a_in_process": in_process_sender(adapter, batcher, body, length)
        }
        senders.update(
            {name: http_sender(session, url, body, length) for name, url in urls.items()}
        )
        results["a_direct"] = [
            await closed_loop(direct_sender(adapter, body, length), 1, args.duration, args.warmup)
        ]
        only = {part.strip() for part in args.only.split(",") if part.strip()}
        for name, send in senders.items():
            if only and name.split("_")[0] not in only:
                continue
            results[name] = []
            for concurrency in args.concurrency:
                row = await closed_loop(
                    send, concurrency, args.duration, args.warmup, pids.get(name)
                )
                results[name].append(row)
                print(f"{name:>16} c={concurrency:<3} p50 {row['p50_ms']:8.3f} ms  "
                      f"p99 {row['p99_ms']:8.3f} ms  {row['throughput_rps']:8.1f} req/s  "
                      f"cpu/req {row['server_cpu_ms_per_request']} ms  "
                      f"errors {row['errors']}", flush=True)  # fmt: skip
        if not only or "clients" in only:
            results["clients_to_worker"] = await compare_clients(  # type: ignore[assignment]
                args, urls["b_worker"], body, length
            )
    await batcher.close()
    return results


def ratios(results: dict[str, list[dict]]) -> dict[str, Any]:
    def at(name: str, c: int) -> dict | None:
        return next((r for r in results.get(name, []) if r["concurrency"] == c), None)

    out: dict[str, Any] = {}
    a1, b1, c1 = at("a_in_process", 1), at("b_worker", 1), at("c_gateway_worker", 1)
    if a1 and c1:
        out["c_minus_a_p50_ms_at_1"] = round(c1["p50_ms"] - a1["p50_ms"], 3)
        out["goal_c_adds_at_most_1ms_p50_at_1"] = out["c_minus_a_p50_ms_at_1"] <= 1.0
    if a1 and b1:
        out["b_minus_a_p50_ms_at_1"] = round(b1["p50_ms"] - a1["p50_ms"], 3)
    if b1 and c1:
        out["gateway_hop_p50_ms_at_1"] = round(c1["p50_ms"] - b1["p50_ms"], 3)
    for c in (1, 8, 32):
        cc, dd, bb = at("c_gateway_worker", c), at("d_pytriton", c), at("b_worker", c)
        if cc and dd:
            out[f"c_over_d_throughput_at_{c}"] = round(
                cc["throughput_rps"] / dd["throughput_rps"], 3
            )
        if bb and dd:
            out[f"b_over_d_throughput_at_{c}"] = round(
                bb["throughput_rps"] / dd["throughput_rps"], 3
            )
        for name, key in ((bb, "b"), (cc, "c")):
            if (
                name
                and dd
                and name["server_cpu_ms_per_request"]
                and dd["server_cpu_ms_per_request"]
            ):
                out[f"{key}_over_d_server_cpu_per_request_at_{c}"] = round(
                    name["server_cpu_ms_per_request"] / dd["server_cpu_ms_per_request"], 3
                )
    if "c_over_d_throughput_at_32" in out:
        out["goal_c_reaches_d_throughput_at_32"] = out["c_over_d_throughput_at_32"] >= 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "overhead.json")
    parser.add_argument("--duration", type=float, default=3.0, help="Measured seconds per point.")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")],
                        default=[1, 8, 32])  # fmt: skip
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument("--only", default="", help="Comma-separated subset, e.g. a,b (debugging).")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # stop children

    load_start = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="medserve-bench-"))
    model_dir = scratch / "models"
    adapter = load_echo(model_dir)
    env = base_env(model_dir)
    bin_dir = Path(sys.executable).parent
    worker_port, gateway_port = free_port(), free_port()
    procs: list[Proc] = []
    notes: list[str] = []
    try:
        worker = Proc("worker", [str(bin_dir / "medserve"), "worker", "--models", "echo",
                                 "--port", str(worker_port)], env, scratch)  # fmt: skip
        procs.append(worker)
        gateway_env = {**env, "MEDSERVE_ROUTES": json.dumps({"echo": f"http://127.0.0.1:{worker_port}"}),
                       "MEDSERVE_HOME": str(scratch)}  # fmt: skip
        gateway = Proc("gateway", [str(bin_dir / "medserve"), "gateway", "--port",
                                   str(gateway_port)], gateway_env, scratch)  # fmt: skip
        procs.append(gateway)
        triton, triton_port = (
            (None, "skipped (--skip-triton)") if args.skip_triton else start_triton(scratch)
        )
        if triton is not None:
            procs.append(triton)
        worker.wait_http(f"http://127.0.0.1:{worker_port}/v2/health/ready", 60)
        gateway.wait_http(f"http://127.0.0.1:{gateway_port}/readyz", 60)
        urls = {
            "b_worker": f"http://127.0.0.1:{worker_port}/v2/models/echo/infer",
            "c_gateway_worker": f"http://127.0.0.1:{gateway_port}/v2/models/echo/infer",
        }
        if triton is not None:
            triton.wait_http(f"http://127.0.0.1:{triton_port}/v2/models/echo/ready", 120)
            urls["d_pytriton"] = f"http://127.0.0.1:{triton_port}/v2/models/echo/infer"
        else:
            notes.append(f"PyTriton not measured: {triton_port}")
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        pids = {
            "b_worker": [worker.proc.pid],
            "c_gateway_worker": [gateway.proc.pid, worker.proc.pid],
        }
        if triton is not None:
            pids["d_pytriton"] = [triton.proc.pid]
        results = asyncio.run(measure_all(args, urls, pids, adapter))
    finally:
        for proc in procs:
            proc.stop()
    load_end = os.getloadavg()
    report = {
        "benchmark": "overhead",
        "model": "echo",
        "payload": {
            "input": "INPUT0",
            "datatype": "FP32",
            "shape": [args.rows, args.cols],
            "encoding": "binary tensors",
        },
        "client": "aiohttp closed loop, one process, same for b, c and d",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
        },
        "batching": batch_config(Settings.model_construct(), adapter).__dict__,
        "results": results,
        "ratios": ratios(results),
        "notes": [
            *notes,
            "client, gateway, worker and Triton share this machine's CPUs; on few cores the "
            "load generator competes with the servers it measures",
        ],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
