"""MedVAL through the real embedded stack (gateway + worker process, in-process transformers
engine, tiny random Qwen3). A random model never writes the answer format, so every grade here
comes from the constrained retry, and the route must say so; when no retry can fit, a 502."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from workers.medval.prompt import build_messages
from workers.runtime.oip import InferRequest

REFERENCE = "Mild cardiomegaly. Small left pleural effusion. No pneumothorax."
CANDIDATE = "Normal chest radiograph."


@pytest.fixture(scope="module")
def stack(embedded_stack: Callable[..., Any]) -> Any:
    return embedded_stack(["medval-4b"])


def test_unparseable_answer_gets_one_constrained_retry_and_a_real_grade(stack: Any) -> None:
    body = {"task": "report2impression", "reference": REFERENCE, "candidate": CANDIDATE,
            "max_tokens": 200}  # fmt: skip
    response = stack.client.post("/v1/medval/evaluate", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["constrained"] is True  # the first (random) answer was not parseable
    assert data["risk_level"] in (1, 2, 3, 4)
    assert data["risk_label"] == {1: "No Risk", 2: "Low Risk", 3: "Moderate Risk",
                                  4: "High Risk"}[data["risk_level"]]  # fmt: skip
    for error in data["errors"]:
        assert error["category"] in {
            "Fabricated claim", "Misleading justification", "Detail misidentification",
            "False comparison", "Incorrect recommendation", "Missing claim", "Missing comparison",
            "Missing context", "Overstating intensity", "Understating intensity", "Other",
        }  # fmt: skip
    assert data["task"] == "report2impression"
    assert (data["model"], data["engine"], data["weights"]) == (
        "medval-4b",
        "transformers",
        "random-tiny",
    )
    assert data["weights_digest"].startswith("sha256:")


def test_batch_form_and_free_instruction(stack: Any) -> None:
    items = [
        {"task": "report2impression", "reference": REFERENCE, "candidate": CANDIDATE},
        {
            "instruction": "Translate into French.",
            "reference": "No fever.",
            "candidate": "Pas de fièvre.",
        },
    ]
    response = stack.client.post(
        "/v1/medval/evaluate", json={"items": items, "max_tokens": 200, "constrained": True}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["task"] for r in results] == ["report2impression", None]
    assert all(r["constrained"] and r["risk_level"] in (1, 2, 3, 4) for r in results)


def test_no_room_for_a_constrained_retry_is_a_502_that_says_so(stack: Any) -> None:
    body = {"task": "query2question", "reference": "q", "candidate": "c", "max_tokens": 24}
    response = stack.client.post("/v1/medval/evaluate", json=body)
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    assert "could not be parsed" in message and "max_tokens" in message
    assert "risk_level" not in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "report2impression", "reference": "r"}, "candidate"),
        ({"items": []}, "items"),
        ({"items": [{"task": "query2question", "reference": "r", "candidate": "c"}] * 65}, "items"),
        ({"task": "query2question", "reference": "r", "candidate": "c", "items": [
            {"task": "query2question", "reference": "r", "candidate": "c"}]}, "either"),
        ({"task": "query2question", "reference": "r", "candidate": "c", "max_tokens": 99999},
         "max_tokens"),
        ({"task": "report2summary", "reference": "r", "candidate": "c"},
         "did you mean 'report2simplified'?"),
        ({"task": "query2question", "source": "r", "candidate": "c"},
         "unknown field 'source' (did you mean 'reference'?)"),
    ],
)  # fmt: skip
def test_bad_requests_are_422_and_say_how_to_fix(stack: Any, body: dict, field: str) -> None:
    response = stack.client.post("/v1/medval/evaluate", json=body)
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


def test_constrained_request_with_too_small_a_budget_is_422(stack: Any) -> None:
    body = {"task": "query2question", "reference": "r", "candidate": "c", "max_tokens": 24,
            "constrained": True}  # fmt: skip
    response = stack.client.post("/v1/medval/evaluate", json=body)
    assert response.status_code == 422 and "max_tokens" in response.json()["error"]["message"]


def test_the_openai_sdk_lists_and_completes_on_the_in_process_model(stack: Any) -> None:
    """No vLLM configured: the official `openai` package talks to the worker-hosted model."""
    import openai

    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["medval-4b"]
    assert client.models.retrieve("medval-4b").id == "medval-4b"
    chat = client.chat.completions.create(
        model="medval-4b", messages=[{"role": "user", "content": "hi"}], max_tokens=6,
        temperature=0, stop=["never-generated"],
    )  # fmt: skip
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert chat.usage is not None and chat.usage.completion_tokens <= 6
    assert chat.choices[0].finish_reason in ("stop", "length")
    stream = client.chat.completions.create(
        model="medval-4b", messages=[{"role": "user", "content": "hi"}], max_tokens=6,
        temperature=0, stream=True,
    )  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == chat.choices[0].message.content  # greedy: the same answer
    completion = client.completions.create(model="medval-4b", prompt="Impression:", max_tokens=4)
    assert completion.object == "text_completion" and completion.usage.completion_tokens <= 4
    with pytest.raises(openai.NotFoundError) as caught:  # not retried: says how to enable one
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    assert "MEDSERVE_VLLM_BASE_URL" in str(caught.value)
    with pytest.raises(openai.BadRequestError):  # n > 1 is refused, not silently ignored
        client.chat.completions.create(
            model="medval-4b", messages=[{"role": "user", "content": "x"}], n=2
        )


def test_thinking_mode_is_off_unless_asked(tiny_model: Callable[[str], Any]) -> None:
    """The adapter renders Qwen3's empty think block when thinking is off, none when on."""
    from workers.runtime.registry import adapter_for

    resolved = tiny_model("medval-4b")
    adapter = adapter_for(resolved.manifest)
    adapter.load(resolved, "cpu")
    row = json.dumps(build_messages("i", "r", "c")).encode()
    prompts = {}
    for thinking in (None, True):
        params = {} if thinking is None else {"enable_thinking": thinking}
        request = InferRequest(
            inputs={"messages": np.array([row], dtype=object)}, parameters=params
        )
        prompts[thinking] = adapter.preprocess(request)[0].data
    assert prompts[None].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompts[True].endswith("<|im_start|>assistant\n")
