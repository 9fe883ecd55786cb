"""RoentGen-v2 prompt template, request schema and OIP parameter checks (no torch)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import InvalidInput
from service.schemas.roentgen import GenerateRequest
from workers.roentgen.contract import Params, build_prompt, image_seed

DEFAULTS = {"steps": 75, "guidance_scale": 3.0, "scheduler": "pndm", "height": 512, "width": 512}


def test_template_matches_the_released_prompts() -> None:
    # demo_data/demo_inference_prompts.csv and the README example
    assert (
        build_prompt(age=74, sex="male", race="black", impression="No acute process.")
        == "74 year old BLACK male. No acute process."
    )
    assert (
        build_prompt(age=50, sex="Female", impression="Normal chest radiograph.")
        == "50 year old female. Normal chest radiograph."
    )
    assert (
        build_prompt(
            age=3, sex="MALE", race="Hispanic", findings="Clear lungs.", impression="Normal."
        )
        == "3 year old HISPANIC male. Clear lungs. Normal."
    )


def test_structured_request_renders_the_template() -> None:
    body = GenerateRequest(age=61, sex="FEMALE", race="asian", impression=" Small left effusion. ")
    assert body.text() == "61 year old ASIAN female. Small left effusion."
    params = body.worker_parameters()
    assert params == {"truncate": False, "channels": 1, "format": "png"}  # rest: manifest


def test_free_prompt_and_parameters_pass_through() -> None:
    body = GenerateRequest(
        prompt="50 year old female. Normal chest radiograph.",
        n=3,
        seed=9,
        steps=20,
        scheduler="DDIM",
        height=256,
        width=320,
        truncate=True,
    )
    assert body.text() == "50 year old female. Normal chest radiograph."
    assert body.worker_parameters() == {
        "seed": 9,
        "steps": 20,
        "scheduler": "ddim",
        "height": 256,
        "width": 320,
        "truncate": True,
        "channels": 1,
        "format": "png",
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"age": 40, "sex": "other", "impression": "x"}, "sex must be one of female, male"),
        (
            {"age": 40, "sex": "male", "race": "martian", "impression": "x"},
            "race must be one of WHITE, BLACK, ASIAN, HISPANIC",
        ),
        ({"age": 121, "sex": "male", "impression": "x"}, "between 0 and 120"),
        ({"age": -1, "sex": "male", "impression": "x"}, "between 0 and 120"),
        ({"prompt": "   "}, "prompt is empty"),
        ({}, "send a `prompt`, or `age`, `sex` and `impression`"),
        ({"prompt": "x", "age": 3}, "not both"),
        ({"age": 40, "impression": "x"}, "needs sex"),
        ({"age": 40, "sex": "male"}, "send `impression` or `findings`"),
        ({"prompt": "x", "n": 17}, "n must be between 1 and 16"),
        ({"prompt": "x", "n": 0}, "n must be between 1 and 16"),
        ({"prompt": "x", "steps": 201}, "steps must be between 1 and 200"),
        ({"prompt": "x", "height": 100}, "height must be a multiple of 8"),
        ({"prompt": "x", "width": 2048}, "width must be a multiple of 8"),
        ({"prompt": "x", "scheduler": "euler"}, "scheduler must be one of pndm, ddim, dpmsolver++"),
        ({"prompt": "x", "guidance_scale": 99}, "guidance_scale must be between 0 and 30"),
        ({"prompt": "x", "seed": -5}, "seed must be between 0 and"),
        ({"prompt": "x", "output": "jpeg"}, "png"),
        ({"prompt": "x", "sexx": "male"}, "Extra inputs"),
    ],
)
def test_schema_refuses_with_a_message_that_says_what_to_send(body: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GenerateRequest.model_validate(body)
    assert needle in str(caught.value)


def parse(params: dict) -> Params:
    return Params.from_oip(params, DEFAULTS)


def test_worker_parameters_apply_defaults_and_limits() -> None:
    params = parse({"seed": 4})
    assert (params.steps, params.guidance_scale, params.scheduler) == (75, 3.0, "pndm")
    assert (params.height, params.width, params.seed, params.channels) == (512, 512, 4, 1)
    assert params.batch_key == ("roentgen", 75, 512, 512, 3.0, "pndm")
    # Only steps, size, guidance and scheduler decide whether images can share a loop.
    other = parse({"seed": 99, "negative_prompt": "lateral view", "channels": 3})
    assert other.batch_key == params.batch_key
    assert parse({"steps": 20}).batch_key != params.batch_key
    assert parse({"scheduler": "DDIM"}).batch_key != params.batch_key
    # OIP parameters may arrive as strings; the one coercion rule applies.
    assert parse({"steps": "20", "truncate": "true"}).steps == 20
    # A missing seed is chosen once and kept with the parsed parameters.
    chosen = parse({}).with_seed()
    assert chosen.seed is not None and 0 <= chosen.seed < 2**32
    assert chosen.with_seed().seed == chosen.seed


def test_image_seeds_do_not_collide_across_nearby_requests() -> None:
    assert image_seed(42, 0) == 42  # one image equals plain diffusers with that seed
    seeds = {(s, i): image_seed(s, i) for s in range(40, 60) for i in range(8)}
    assert len(set(seeds.values())) == len(seeds)
    assert image_seed(42, 1) != image_seed(43, 0)  # (seed 42, n 2) vs (seed 43, n 1)
    assert image_seed(42, 1) == image_seed(42, 1)  # reproducible


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"steps": 0}, "parameter 'steps': Input should be greater than or equal to 1"),
        ({"steps": "many"}, "parameter 'steps': Input should be a valid integer"),
        ({"guidance_scale": "high"}, "parameter 'guidance_scale'"),
        ({"scheduler": "lms"}, "'pndm', 'ddim' or 'dpmsolver++'"),
        ({"height": 65}, "multiple of 8"),
        ({"seed": 2**40}, "parameter 'seed'"),
        ({"channels": 2}, "parameter 'channels'"),
        ({"truncate": "maybe"}, "parameter 'truncate': Input should be a valid boolean"),
        ({"num_inference_steps": 20}, "'num_inference_steps' (did you mean 'steps'?)"),
    ],
)
def test_worker_refuses_bad_parameters(params: dict, needle: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(params)
    assert needle in caught.value.message
