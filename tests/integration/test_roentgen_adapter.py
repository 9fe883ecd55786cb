"""RoentGen-v2 adapter on the tiny pipeline: released loading, determinism by seed, batched
equals single, parity with the plain diffusers pipeline, token limits."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.imaging.synthetic import read_png_label
from workers.roentgen.adapter import RoentgenAdapter
from workers.roentgen.contract import image_seed
from workers.runtime.oip import InferRequest

PROMPT = "50 year old female. Normal chest radiograph."
OTHER = "74 year old BLACK male. Small left pleural effusion."
SMALL = {"steps": 3, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def resolved(tiny_model: Callable[[str], ResolvedModel]) -> ResolvedModel:
    return tiny_model("roentgen-v2")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second intra-op thread only adds contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def adapter(resolved: ResolvedModel) -> RoentgenAdapter:
    model = RoentgenAdapter(resolved.manifest)
    model.load(resolved, "cpu")
    return model


def request(prompts: list[str], **parameters: Any) -> InferRequest:
    tensor = np.array([p.encode() for p in prompts], dtype=object)
    return InferRequest(inputs={"prompt": tensor}, parameters={**SMALL, **parameters})


def run(adapter: RoentgenAdapter, req: InferRequest) -> Any:
    return adapter.postprocess(req, adapter.predict(adapter.preprocess(req)))


def test_loads_the_released_way(adapter: RoentgenAdapter) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe = adapter.pipe
    assert pipe.safety_checker is None
    assert pipe.text_encoder.dtype == torch.float32  # fp32 on the CPU
    assert all(isinstance(p, AttnProcessor2_0) for p in pipe.unet.attn_processors.values())
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    assert adapter.max_tokens == 77


def test_text_encoder_comes_from_the_fine_tuned_subfolder(
    resolved: ResolvedModel, tmp_path: Path
) -> None:
    """When the top-level text_encoder differs, the subfolder's weights are the ones used."""
    from transformers import CLIPTextModel

    copy = tmp_path / "roentgen-v2"
    shutil.copytree(resolved.path, copy)
    stock = CLIPTextModel.from_pretrained(copy / "text_encoder")
    with torch.no_grad():
        for param in stock.parameters():
            param.add_(1.0)
    stock.save_pretrained(copy / "text_encoder")
    model = RoentgenAdapter(resolved.manifest)
    model.load(ResolvedModel(resolved.manifest, copy, "random-tiny", "x", {}), "cpu")
    tuned = CLIPTextModel.from_pretrained(copy / "text_encoder_and_tokenizer")
    loaded = model.pipe.text_encoder.state_dict()
    for name, value in tuned.state_dict().items():
        assert torch.equal(loaded[name], value), name


def test_same_request_gives_the_same_bytes_and_seeds_matter(adapter: RoentgenAdapter) -> None:
    first = run(adapter, request([PROMPT, PROMPT], seed=11))
    again = run(adapter, request([PROMPT, PROMPT], seed=11))
    assert first.outputs["image"].shape == (2, 64, 64)
    assert first.outputs["image"].dtype == np.uint8
    assert first.outputs["image"].tobytes() == again.outputs["image"].tobytes()
    second = image_seed(11, 1)
    assert list(first.outputs["seed"]) == [11, second] and second != 12
    # image i > 0 uses a seed derived from (seed, i): it equals a single image with that seed
    single = run(adapter, request([PROMPT], seed=second))
    assert np.array_equal(first.outputs["image"][1], single.outputs["image"][0])
    assert not np.array_equal(run(adapter, request([PROMPT], seed=12)).outputs["image"][0],
                              first.outputs["image"][1])  # fmt: skip
    # every image is a labelled PNG file too (the one labelling path)
    files = first.outputs["FILE"]
    assert len(files) == 2 and read_png_label(bytes(files[1]))["provenance"]["seed"] == second
    assert not np.array_equal(first.outputs["image"][0], first.outputs["image"][1])


def test_batched_images_equal_the_same_requests_run_alone(adapter: RoentgenAdapter) -> None:
    a = request([PROMPT, OTHER], seed=5)
    b = request([OTHER], seed=40, negative_prompt="lateral view")
    c = request([PROMPT], seed=3, steps=2)  # another key: never mixed into the same loop
    items_a, items_b, items_c = adapter.preprocess(a), adapter.preprocess(b), adapter.preprocess(c)
    assert {i.key for i in items_a} == {i.key for i in items_b}
    assert items_c[0].key != items_a[0].key
    mixed = adapter.predict([items_a[0], items_b[0], items_c[0], items_a[1]])
    alone_a = run(adapter, request([PROMPT, OTHER], seed=5)).outputs["image"]
    alone_b = run(adapter, request([OTHER], seed=40, negative_prompt="lateral view")).outputs[
        "image"
    ]
    alone_c = run(adapter, request([PROMPT], seed=3, steps=2)).outputs["image"]
    assert np.array_equal(mixed[0], alone_a[0])
    assert np.array_equal(mixed[3], alone_a[1])
    assert np.array_equal(mixed[1], alone_b[0])
    assert np.array_equal(mixed[2], alone_c[0])


@pytest.mark.parametrize("scheduler", ["pndm", "ddim", "dpmsolver++"])
def test_matches_the_plain_diffusers_pipeline(adapter: RoentgenAdapter, scheduler: str) -> None:
    from workers.roentgen.compute import make_scheduler

    ours = run(adapter, request([PROMPT, OTHER], seed=7, scheduler=scheduler, channels=3))
    pipe = adapter.pipe
    original = pipe.scheduler
    pipe.scheduler = make_scheduler(scheduler, adapter.sampler.scheduler_config)
    try:
        reference = pipe(
            [PROMPT, OTHER],
            height=64,
            width=64,
            num_inference_steps=3,
            guidance_scale=3.0,
            generator=[torch.Generator("cpu").manual_seed(s) for s in (7, image_seed(7, 1))],
            output_type="np",
        ).images
    finally:
        pipe.scheduler = original
    expected = (reference * 255).round().astype(np.uint8)
    got = ours.outputs["image"]
    assert got.shape == expected.shape == (2, 64, 64, 3)
    # float rounding of different batch shapes only: at most one grey level, rarely
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99


def test_provenance_names_model_weights_seeds_and_parameters(adapter: RoentgenAdapter) -> None:
    import json

    response = run(adapter, request([OTHER], seed=21, scheduler="ddim"))
    params = response.parameters
    assert params["synthetic"] is True
    assert params["weights"] == "random-tiny" and params["weights_digest"].startswith("sha256:")
    record = json.loads(params["provenance"])
    assert record["model"] == "roentgen-v2" and record["version"] == "2.0"
    assert record["seeds"] == [21] and record["prompts"] == [OTHER]
    assert (record["steps"], record["scheduler"], record["guidance_scale"]) == (3, "ddim", 3.0)
    assert (record["device"], record["dtype"]) == ("cpu", "float32")


def test_a_missing_seed_is_chosen_and_reported(adapter: RoentgenAdapter) -> None:
    req = request([PROMPT])
    response = run(adapter, req)
    seed = int(response.outputs["seed"][0])
    again = run(adapter, request([PROMPT], seed=seed))
    assert np.array_equal(response.outputs["image"], again.outputs["image"])


def test_prompt_over_the_token_limit_is_refused_or_truncated(adapter: RoentgenAdapter) -> None:
    long = PROMPT + " Stable bibasilar atelectasis and mild cardiomegaly" * 8
    with pytest.raises(InvalidInput) as caught:
        adapter.preprocess(request([long], seed=1))
    message = caught.value.message
    assert "tokens long" in message and "at most 77" in message and "truncate=true" in message
    items = adapter.preprocess(request([long], seed=1, truncate=True))
    assert len(items[0].data[0].ids) == 77 and items[0].meta["truncated"]
    with pytest.raises(InvalidInput, match="negative_prompt is"):
        adapter.preprocess(request([PROMPT], negative_prompt=long))


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ({"text": np.array([b"x"], dtype=object)}, "has no input 'text'"),
        ({"prompt": np.array([b"  "], dtype=object)}, "prompt is empty"),
        ({"prompt": np.array([b"\xff\xfe"], dtype=object)}, "UTF-8"),
        ({"prompt": np.array([b"x"] * 17, dtype=object)}, "takes at most 16"),
    ],
)
def test_bad_oip_inputs_are_refused(
    adapter: RoentgenAdapter, inputs: dict[str, np.ndarray], needle: str
) -> None:
    with pytest.raises(InvalidInput, match=needle):
        adapter.preprocess(InferRequest(inputs=inputs, parameters=dict(SMALL)))
