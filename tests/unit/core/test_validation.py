"""One message for every refusal: the field, the problem, the closest valid name, no values."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.validation import closest, describe


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sex: str
    steps: int = Field(75, ge=1)
    reference: str = ""
    n: int = 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gender", "sex"), ("num_inference_steps", "steps"), ("source", "reference"),
     ("num_images", "n"), ("stpes", "steps"), ("zzz", None)],
)  # fmt: skip
def test_closest_knows_synonyms_and_spelling(name: str, expected: str | None) -> None:
    assert closest(name, ["sex", "steps", "reference", "n"]) == expected


def test_describe_names_fields_and_suggestions_without_echoing_values() -> None:
    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"gender": "female-secret", "steps": 0})
    message = describe(caught.value, Body)
    assert "unknown field 'gender' (did you mean 'sex'?)" in message
    assert "field 'sex': is required" in message
    assert "field 'steps': Input should be greater than or equal to 1" in message
    assert "female-secret" not in message and "Value error" not in message


def test_an_unknown_field_without_a_near_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"sex": "f", "colour": "blue"})
    assert "valid: n, reference, sex, steps" in describe(caught.value, Body)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = 1
    batch_size: int = 8


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: Inner = Inner()
    runs: list[Inner] | None = None
    epochs_total: int = 0


def test_an_unknown_nested_field_is_compared_with_its_own_model() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"train": {"epoch": 3}, "runs": [{"batchsize": 4}], "epoch": 1})
    message = describe(caught.value, Outer, what="param")
    assert "unknown param 'train.epoch' (did you mean 'epochs'?)" in message
    assert "unknown param 'runs.0.batchsize' (did you mean 'batch_size'?)" in message
    assert "unknown param 'epoch' (did you mean 'epochs_total'?)" in message
