"""Echo through the adapter base: the metadata's datatypes are enforced, parameters typed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.builtin.adapter import EchoAdapter
from workers.runtime.oip import InferRequest
from workers.runtime.registry import build_tiny


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> EchoAdapter:
    store = ModelStore(Path(tmp_path_factory.mktemp("store")), load_manifests())
    adapter = EchoAdapter(store.manifest("echo"))
    adapter.load(build_tiny(store, "echo"), "cpu")
    return adapter


def run(adapter: EchoAdapter, array: np.ndarray, **params: object) -> np.ndarray:
    request = InferRequest(inputs={"INPUT0": array}, parameters=dict(params))
    items = adapter.preprocess(request)
    response = adapter.postprocess(request, adapter.predict(items))
    assert response.parameters["weights"] == "random-tiny"
    return response.outputs["OUTPUT0"]


def test_rows_come_back_scaled_one_item_per_row(echo: EchoAdapter) -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(run(echo, x, delay_ms="0"), x)


@pytest.mark.parametrize(
    ("array", "params", "needle"),
    [
        (np.ones((1, 2), np.int32), {}, "input 'INPUT0' must be FP32, not INT32"),
        (np.array([[1.0, np.nan]], np.float32), {}, "NaN or infinite"),
        (np.ones((1, 2), np.float32), {"delay": 5}, "unknown parameter 'delay'"),
        (np.ones((1, 2), np.float32), {"delay_ms": -1}, "parameter 'delay_ms'"),
    ],
)
def test_refusals_say_what_to_send(echo: EchoAdapter, array: np.ndarray, params: dict,
                                   needle: str) -> None:  # fmt: skip
    with pytest.raises(InvalidInput) as caught:
        run(echo, array, **params)
    assert needle in caught.value.message


def test_unknown_inputs_are_named_with_the_ones_that_exist(echo: EchoAdapter) -> None:
    request = InferRequest(inputs={"INPUT1": np.ones((1, 1), np.float32)})
    with pytest.raises(InvalidInput, match="has no input 'INPUT1'; its inputs are INPUT0"):
        echo.preprocess(request)
