"""The demographic classifiers' contract: manifests, options, tiny options, classes."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from model_store.manifest import Manifest
from workers.cxr_demographics.contract import CLASSES, DEFAULT_MODELS, Options, Tiny
from workers.runtime.families import load_manifests, validate


def test_the_three_manifests_load_with_their_released_file_names() -> None:
    manifests = load_manifests()
    files = {name: manifests[name].adapter["weights_file"] for name in DEFAULT_MODELS.values()}
    assert files == {
        "cxr-sex": "sex_model_chexpert_resnet_all.ckpt",
        "cxr-race": "resnet_race_detection_val-loss_0.157_mimic_public.pt",
        "cxr-age": "baseline_models_riken_xray_age_every_model_age_senet154_v2_tl_26_ft_7_fp32.pt",
    }
    assert {manifests[n].adapter["kind"] for n in files} == {"sex", "race", "age"}
    assert all(manifests[n].source is None for n in files)  # not on the Hub: imported


def test_classes_follow_the_released_output_order() -> None:
    assert CLASSES["sex"] == ("male", "female")  # the release maps argmax 1 to "F"
    assert CLASSES["race"] == ("ASIAN", "BLACK", "WHITE")  # torchxrayvision's targets


def test_unknown_manifest_keys_are_refused_with_the_closest_name() -> None:
    manifest = Manifest(
        name="x", family="cxr_demographics", version="1",
        adapter={"kind": "sex", "weights_fle": "a.ckpt"},
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="weights_file"):
        validate(manifest)
    with pytest.raises(ValueError):
        Options.model_validate({"kind": "height", "weights_file": "a"})
    with pytest.raises(ValueError):
        Tiny.model_validate({"head_bias": [1, 2, 3, 4]})
