"""The demographic classifiers on tiny models: outputs, planted predictions, the release's
preprocessing (monai Resize + ScaleIntensity), batching invariance and refused inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from core.errors import InvalidInput
from tests.qc_support import ALWAYS_MALE, ALWAYS_WHITE
from tests.srrg_support import dicom, jpeg, png, xray
from tests.unit.workers.cxr_demographics.conftest import run
from workers.cxr_demographics.compute import resize, scale


def test_each_kind_answers_its_outputs(cxr_adapter: Callable[..., Any]) -> None:
    files = [png(xray(1)), jpeg(xray(2))]
    sex = run(cxr_adapter("cxr-sex"), files)
    assert sex.outputs["probabilities"].shape == (2, 2)
    assert np.allclose(sex.outputs["probabilities"].sum(axis=1), 1, atol=1e-5)
    assert {bytes(p).decode() for p in sex.outputs["prediction"]} <= {"male", "female"}
    race = run(cxr_adapter("cxr-race"), files)
    assert race.outputs["probabilities"].shape == (2, 3)
    assert json.loads(race.parameters["classes"]) == ["ASIAN", "BLACK", "WHITE"]
    age = run(cxr_adapter("cxr-age"), files)
    assert age.outputs["age"].tolist() == [55.0, 55.0]  # the manifest's tiny head_bias
    assert [bytes(p) for p in age.outputs["prediction"]] == [b"55", b"55"]
    assert age.parameters["weights"] == "random-tiny" and age.parameters["machine_generated"]


def test_planted_heads_predict_one_class(cxr_adapter: Callable[..., Any]) -> None:
    files = [png(xray(i)) for i in range(3)]
    sex = run(cxr_adapter("cxr-sex", ALWAYS_MALE), files)
    assert [bytes(p) for p in sex.outputs["prediction"]] == [b"male"] * 3
    race = run(cxr_adapter("cxr-race", ALWAYS_WHITE), files)
    assert [bytes(p) for p in race.outputs["prediction"]] == [b"WHITE"] * 3
    assert race.outputs["probabilities"][:, 2].min() > 0.99


def test_preprocessing_is_the_releases_monai_pipeline() -> None:
    from monai.transforms import Resize, ScaleIntensity

    image = np.random.default_rng(3).random((3, 97, 131)).astype(np.float32)
    ours = resize(image)
    theirs = torch.as_tensor(Resize((224, 224))(image))  # default mode: area
    assert torch.allclose(ours, theirs, atol=1e-6)
    for low, high in ((0.0, 255.0), (-1024.0, 1024.0)):
        want = torch.as_tensor(ScaleIntensity(minv=low, maxv=high)(theirs))
        assert torch.allclose(scale(ours[None], low, high)[0], want, atol=1e-3)
    flat = torch.full((3, 224, 224), 0.5)  # a constant image: monai returns image * minv
    assert torch.equal(scale(flat[None], -1024.0, 1024.0)[0], flat * -1024.0)


def test_grey_is_replicated_and_each_image_is_scaled_alone(
    cxr_adapter: Callable[..., Any],
) -> None:
    grey = xray(7)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    adapter = cxr_adapter("cxr-sex")
    both = run(adapter, [png(grey), png(rgb)]).outputs["probabilities"]
    assert np.allclose(both[0], both[1], atol=1e-6)
    dark = (xray(8) // 4).astype(np.uint8)
    alone = run(adapter, [png(dark)]).outputs["probabilities"]
    batched = run(adapter, [png(grey), png(dark)]).outputs["probabilities"]
    assert np.allclose(alone[0], batched[1], atol=1e-5)  # batch partners do not matter


def test_dicom_and_16_bit_inputs(cxr_adapter: Callable[..., Any]) -> None:
    pixels = (xray(9).astype(np.uint16) * 200).astype(np.uint16)
    answer = run(cxr_adapter("cxr-race"), [dicom(pixels), png(pixels)])
    assert np.allclose(*answer.outputs["probabilities"], atol=1e-5)  # same values, same answer


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"not an image" * 10, "PNG, JPEG or single-frame DICOM")],
)
def test_bad_files_are_refused(cxr_adapter: Callable[..., Any], data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        run(cxr_adapter("cxr-sex"), [data])


def test_a_too_small_image_is_refused(cxr_adapter: Callable[..., Any]) -> None:
    with pytest.raises(InvalidInput):
        run(cxr_adapter("cxr-sex"), [png(xray(1, 16, 16))])
