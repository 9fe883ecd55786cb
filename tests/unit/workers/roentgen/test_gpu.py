"""RoentGen-v2's GPU batch bound: images of a size that fit in a fraction of free memory, and
the manifest options that turn on channels-last and torch.compile (validated on any machine)."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from workers.roentgen.gpu import images_that_fit
from workers.runtime.main import build_adapters

GB = 1 << 30


def test_images_that_fit_scale_with_free_memory_and_pixels() -> None:
    assert images_that_fit(80 * GB, 2 * GB, 512 * 512, 0.8) == 32
    assert images_that_fit(80 * GB, 2 * GB, 1024 * 1024, 0.8) == 8  # 4x the pixels
    assert images_that_fit(40 * GB, 2 * GB, 512 * 512, 0.8) == 16
    assert images_that_fit(1 * GB, 2 * GB, 512 * 512, 0.8) == 1  # never below one image
    assert images_that_fit(80 * GB, 0, 512 * 512, 0.8) == 1  # nothing measured: one at a time


def test_adapter_options_override_the_manifest_and_are_validated() -> None:
    options = {"roentgen-v2": {"compile_gpu": "reduce-overhead", "memory_fraction": 0.5}}
    adapter = build_adapters(["roentgen-v2"], options)["roentgen-v2"]
    assert adapter.options.compile_gpu == "reduce-overhead"
    assert adapter.options.memory_fraction == 0.5
    assert adapter.options.micro_batch_cpu == 1  # the manifest's other keys are kept
    assert adapter.batch_limit(("roentgen", 2, 512, 512, 4.0, "pndm")) is None  # not loaded
    with pytest.raises(InvalidInput, match="compile_gpu"):
        build_adapters(["roentgen-v2"], {"roentgen-v2": {"compile_gpu": "fast"}})
    with pytest.raises(InvalidInput, match="channels_last"):
        build_adapters(["roentgen-v2"], {"roentgen-v2": {"channels_lst": True}})
