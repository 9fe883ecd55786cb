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
