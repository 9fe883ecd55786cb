"""GREEN through a real gateway and worker process (tiny judge): `/v1/green/score` single and
batch forms, OIP, and the refusals (a too-long pair, a wrong model family, a bad body)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workers.benchmarks import green

MODEL = "green-radllama2-7b"


@pytest.fixture(scope="module")
def stack(embedded_stack: Callable[..., Any]) -> Any:
    return embedded_stack([MODEL, "echo"])


def test_single_pair(stack: Any) -> None:
    body = {"reference": "Heart size is normal.", "candidate": "Small left pleural effusion."}
    answer = stack.client.post("/v1/green/score", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    (result,) = data["results"]
    assert result["green"] == pytest.approx(0.6) == data["green"]
    assert list(result["significant_errors"]) == list(green.SUB_CATEGORIES)
    assert sum(result["significant_errors"].values()) == 2 and result["matched_findings"] == 3
    assert result["answer"].startswith("\nThe candidate adds an effusion")
    assert data["machine_generated"] is True and data["weights"] == "random-tiny"
    assert (data["max_words"], data["max_length"]) == (300, 2048)


def test_refusals_say_what_to_fix(stack: Any) -> None:
    long = " ".join(f"w{i}" for i in range(1500))
    too_long = stack.client.post(
        "/v1/green/score", json={"reference": long, "candidate": long, "max_words": 1500}
    )
    assert too_long.status_code == 422 and "window is 2048" in too_long.text
    wrong = stack.client.post(
        "/v1/green/score", json={"model": "echo", "reference": "a", "candidate": "b"}
    )
    assert wrong.status_code in (404, 422) and "green" in wrong.text
    both = stack.client.post(
        "/v1/green/score",
        json={"reference": "a", "candidate": "b", "pairs": [{"reference": "a", "candidate": "b"}]},
    )
    assert both.status_code == 422 and "not both" in both.text
    typo = stack.client.post("/v1/green/score", json={"referense": "a", "candidate": "b"})
    assert typo.status_code == 422 and "reference" in typo.text
