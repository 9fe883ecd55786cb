"""A manifest's `resources` against the worker's device: who is refused, and what they are told."""

from __future__ import annotations

import pytest

from core.errors import Unavailable
from workers.runtime.families import load_manifests
from workers.runtime.resources import check_resources


def test_a_cpu_only_worker_refuses_a_gpu_model_and_says_how_to_host_it() -> None:
    report = load_manifests()["merlin-report"]
    for weights in ("pulled", "random-full"):
        with pytest.raises(Unavailable) as caught:
            check_resources(report, "cpu", weights)
        message = caught.value.message
        assert "cpu_ok: false" in message and "MEDSERVE_DEVICE=cuda" in message
        assert "merlin-report" in message and "40 GB" in message


def test_tiny_builds_and_cpu_ok_models_run_anywhere() -> None:
    manifests = load_manifests()
    check_resources(manifests["merlin-report"], "cpu", "random-tiny")
    check_resources(manifests["merlin"], "cpu", "pulled")


def test_a_gpu_smaller_than_the_manifest_asks_is_refused() -> None:
    report = load_manifests()["merlin-report"]
    with pytest.raises(Unavailable, match="has 24 GB"):
        check_resources(report, "cuda:0", "pulled", gpu_gb=24)
    check_resources(report, "cuda:0", "pulled", gpu_gb=80)
