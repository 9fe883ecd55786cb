"""GREEN family on its tiny judge: the served answer is parsed into the RadEval score and counts,
the token window and unknown parameters are refused, and provenance says it is machine output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from core.errors import InvalidInput
from workers.benchmarks import green
from workers.green.contract import Params
from workers.runtime.oip import InferRequest
from workers.runtime.registry import adapter_for

MODEL = "green-radllama2-7b"


@pytest.fixture(scope="module")
def adapter(tiny_model: Callable[[str], Any]) -> Any:
    resolved = tiny_model(MODEL)
    loaded = adapter_for(resolved.manifest)
    loaded.load(resolved, "cpu")
    return loaded


def request(refs: list[str], cands: list[str], **parameters: Any) -> InferRequest:
    return InferRequest(
        inputs={
            "reference": np.array([r.encode() for r in refs], dtype=object),
            "candidate": np.array([c.encode() for c in cands], dtype=object),
        },
        parameters=parameters,
    )


def infer(adapter: Any, req: InferRequest) -> Any:
    return adapter.postprocess(req, adapter.predict(adapter.preprocess(req)))


def test_scores_and_counts_come_from_the_released_parser(adapter: Any) -> None:
    reply = adapter.manifest.tiny["reply"]
    answer = infer(adapter, request(["Heart size normal.", "No effusion."], ["Effusion.", "x"]))
    out = answer.outputs
    assert out["green"].tolist() == [pytest.approx(0.6)] * 2 == [green.green_score(reply)] * 2
    assert out["matched_findings"].tolist() == [3, 3]
    assert out["significant_errors"].tolist() == [[1, 0, 1, 0, 0, 0]] * 2
    assert out["insignificant_errors"].tolist() == [[0, 2, 0, 0, 0, 0]] * 2
    assert [t.decode() for t in out["text"]] == [green.clean_response(reply)] * 2
    assert [r.decode() for r in out["finish_reason"]] == ["stop", "stop"]
    params = answer.parameters
    assert params["machine_generated"] is True and params["weights"] == "random-tiny"
    assert params["weights_digest"].startswith("sha256:") and params["max_words"] == 300


def test_the_prompt_is_the_released_one(adapter: Any) -> None:
    items = adapter.preprocess(request(["a b c"], ["d e"], max_words=2))
    assert items[0].data == green.render_chat(green.make_prompt("a b", "d e"), "</s>")


def test_refusals(adapter: Any) -> None:
    with pytest.raises(InvalidInput, match="2 references but 1 candidates"):
        adapter.preprocess(request(["a", "b"], ["c"]))
    long = " ".join(f"w{i}" for i in range(2000))
    with pytest.raises(InvalidInput, match="window is 2048"):
        adapter.preprocess(request([long], [long], max_words=2000))
    with pytest.raises(InvalidInput, match="max_words"):
        Params.from_oip({"max_word": 3})
    with pytest.raises(InvalidInput, match="max_words"):
        Params.from_oip({"max_words": 0})
