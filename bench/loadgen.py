"""The closed-loop load generator and process helpers the serving benchmarks share.

`closed_loop` drives one `send` coroutine from `concurrency` users back to back and reports
p50/p99 latency, throughput and (given the server pids) the servers' CPU time per request,
which unlike latency does not depend on what else runs on the machine. Senders for OIP over
HTTP (aiohttp) and over gRPC (grpc.aio, raw tensor contents) send prebuilt bytes, so
the client's own cost is the same for every target.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from workers.runtime.oip import HEADER_LENGTH

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cli"]  # this checkout's code, whatever `medserve` is installed
Send = Callable[[], Awaitable[None]]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _tree(pids: list[int]) -> list[int]:
    """These processes and all their descendants (Linux /proc)."""
    out, stack, seen = [], list(pids), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                stack.extend(int(c) for c in children)
        except OSError:
            continue
    return out


def tree_cpu_s(pids: list[int]) -> float:
    """User+system CPU seconds of these processes and their descendants."""
    total = 0
    for pid in _tree(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory of one process in MiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def closed_loop(
    send: Send, concurrency: int, duration: float, warmup: float, pids: list[int] | None = None
) -> dict[str, Any]:
    """`concurrency` users each sending back to back; measured after `warmup` seconds."""
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
                await asyncio.sleep(0.001)
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


# --- senders ---------------------------------------------------------------------------------


def http_sender(session: Any, url: str, body: bytes, length: int) -> Send:
    """OIP binary tensors over HTTP with aiohttp (what the gateway and OIPClient use)."""
    headers = {HEADER_LENGTH: str(length)}

    async def send() -> None:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")

    return send


def grpc_request(model: str, x: np.ndarray) -> Any:
    """A `ModelInferRequest` with the tensor as raw contents (as tritonclient.grpc sends it)."""
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "INPUT0", "FP32"
    tensor.shape.extend(x.shape)
    request.raw_input_contents.append(np.ascontiguousarray(x).tobytes())
    return request


def grpc_sender(channel: Any, request: Any) -> Send:
    """OIP over gRPC (grpc.aio), one prebuilt request on one shared channel."""
    from tritonclient.grpc import service_pb2_grpc as rpc

    stub = rpc.GRPCInferenceServiceStub(channel)

    async def send() -> None:
        await stub.ModelInfer(request)

    return send


# --- processes -------------------------------------------------------------------------------


class Proc:
    """A server process of the benchmark, its output in `log_dir/<name>.log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = (log_dir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

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
    """This environment without MEDSERVE_ settings, plus the model folder, logging at WARNING."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(MEDSERVE_MODEL_DIR=str(model_dir), MEDSERVE_LOG_LEVEL="WARNING")
    return env


def machine() -> dict[str, Any]:
    import platform

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }
