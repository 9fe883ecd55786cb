"""`POST /v1/roentgen/generate` through a real gateway and a real worker process (tiny
weights), and dynamic batching of compatible requests in the worker."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.harness import WorkerProcess
from workers.roentgen.contract import image_seed
from workers.runtime.client import OIPClient

PROMPT = "50 year old female. Normal chest radiograph."
SMALL = {"steps": 2, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def stack(embedded_stack: Callable[..., Any]) -> Any:
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # tiny tensors; a shared CPU
    try:
        return embedded_stack(["roentgen-v2"])
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


def generate(stack: Any, **body: Any) -> httpx.Response:
    return stack.client.post("/v1/roentgen/generate", json={**SMALL, **body})


def test_structured_request_returns_labelled_png(stack: Any) -> None:
    response = generate(
        stack, age=74, sex="Male", race="black", impression="No acute process.", n=2, seed=3
    )
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["synthetic"] is True and doc["weights"] == "random-tiny"
    assert doc["prompt"] == "74 year old BLACK male. No acute process."
    seeds = [3, image_seed(3, 1)]
    assert [image["seed"] for image in doc["images"]] == seeds
    assert doc["provenance"]["seeds"] == seeds
    assert "SeedSequence" in doc["provenance"]["seed_derivation"]
    assert doc["provenance"]["weights_digest"] == doc["weights_digest"]
    for image in doc["images"]:
        assert image["media_type"] == "image/png"
        with Image.open(io.BytesIO(base64.b64decode(image["data_base64"]))) as png:
            assert png.mode == "L" and png.size == (64, 64)
            assert png.text["synthetic"] == "true"
            record = json.loads(png.text["provenance"])
        assert record["seed"] == image["seed"] and record["prompt"] == doc["prompt"]
        assert record["model"] == "roentgen-v2" and record["scheduler"] == "pndm"
        assert record["weights_digest"] == doc["weights_digest"]


def test_same_request_same_bytes_through_the_gateway(stack: Any) -> None:
    body = {"prompt": PROMPT, "seed": 17, "output": "npy", "scheduler": "dpmsolver++"}
    first, second = generate(stack, **body).json(), generate(stack, **body).json()
    assert first["images"][0]["data_base64"] == second["images"][0]["data_base64"]
    array = np.load(io.BytesIO(base64.b64decode(first["images"][0]["data_base64"])))
    assert array.shape == (64, 64) and array.dtype == np.uint8


def test_dicom_output_is_a_synthetic_secondary_capture(stack: Any) -> None:
    response = generate(stack, prompt=PROMPT, seed=1, output="dicom", channels=3)
    assert response.status_code == 200, response.text
    image = response.json()["images"][0]
    assert image["media_type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(base64.b64decode(image["data_base64"])))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "NO"
    assert "SYNTHETIC IMAGE" in ds.ImageComments and str(ds.PatientName) == "SYNTHETIC"
    assert ds.pixel_array.shape == (64, 64, 3)
    assert json.loads(ds[0x0011, 0x1001].value)["seed"] == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"age": 40, "sex": "x", "impression": "Clear."}, "sex must be one of female, male"),
        (
            {"age": 40, "sex": "male", "race": "other", "impression": "Clear."},
            "race must be one of",
        ),
        ({"age": 130, "sex": "male", "impression": "Clear."}, "between 0 and 120"),
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": PROMPT, "n": 20}, "n must be between 1 and 16"),
        ({"prompt": PROMPT, "steps": 500}, "steps must be between 1 and 200"),
        ({"prompt": PROMPT, "width": 70}, "multiple of 8"),
        ({"prompt": PROMPT * 10}, "tokens long but the text encoder reads at most 77"),
    ],
)
def test_invalid_requests_get_422_with_what_to_send(
    stack: Any, body: dict[str, Any], needle: str
) -> None:
    response = generate(stack, **body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and needle in error["message"]


def test_truncate_true_accepts_a_long_prompt(stack: Any) -> None:
    response = generate(stack, prompt=PROMPT * 10, truncate=True, seed=2)
    assert response.status_code == 200, response.text
    assert response.json()["provenance"]["truncate"] is True


@pytest.fixture(scope="module")
def batching_worker(model_dir: Any, tiny_model: Callable[[str], Any]) -> Iterator[WorkerProcess]:
    """A long queue delay so that concurrent requests always meet in one batch."""
    tiny_model("roentgen-v2")
    env = {"MEDSERVE_MAX_QUEUE_DELAY_MS": "1500", "OMP_NUM_THREADS": "1"}
    with WorkerProcess(["roentgen-v2"], model_dir, env) as proc:
        yield proc


def test_compatible_requests_share_a_loop_and_equal_their_solo_runs(
    batching_worker: WorkerProcess,
) -> None:
    url = batching_worker.url
    requests = [
        ("a", {**SMALL, "seed": 10}),
        ("b", {**SMALL, "seed": 20, "negative_prompt": "lateral view"}),
        ("c", {**SMALL, "seed": 30}),
        ("d", {**SMALL, "seed": 40, "steps": 3}),  # incompatible: its own loop
    ]
    prompts = {
        "a": PROMPT,
        "b": "74 year old BLACK male. No acute process.",
        "c": PROMPT,
        "d": PROMPT,
    }

    def stats() -> dict[str, Any]:
        return httpx.get(url + "/v2/models/roentgen-v2/stats").json()["model_stats"][0]

    async def infer(client: OIPClient, name: str, params: dict[str, Any]) -> np.ndarray:
        tensor = np.array([prompts[name].encode()], dtype=object)
        response = await client.infer("roentgen-v2", {"prompt": tensor}, params)
        return np.asarray(response.outputs["image"])

    async def together() -> list[np.ndarray]:
        client = OIPClient(url)
        try:
            return await asyncio.gather(*(infer(client, n, p) for n, p in requests))
        finally:
            await client.close()

    async def one_by_one() -> list[np.ndarray]:
        client = OIPClient(url)
        try:
            return [await infer(client, n, p) for n, p in requests]
        finally:
            await client.close()

    before = stats()
    batched = asyncio.run(together())
    during = stats()
    solo = asyncio.run(one_by_one())
    assert during["inference_count"] - before["inference_count"] == 4
    assert during["execution_count"] - before["execution_count"] == 2  # {a, b, c} and {d}
    sizes = {entry["batch_size"] for entry in during["batch_stats"]}
    assert 3 in sizes
    for got, alone in zip(batched, solo, strict=True):
        assert np.array_equal(got, alone)


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "roentgen").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_run_as_documented(stack: Any, path: Path) -> None:
    example = json.loads(path.read_text())
    assert example["models"] == ["roentgen-v2"]
    response = stack.client.request(example["method"], example["path"], json=example["body"])
    assert response.status_code == example["expect_status"], response.text
