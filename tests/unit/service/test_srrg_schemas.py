"""The SRRG request and response bodies document every field, and each request example is valid
(so Swagger's "Try it out" works as shown)."""

from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel

from service.schemas import srrg
from workers.imaging.readers import sniff

REQUESTS = [srrg.GenerateRequest, srrg.LabelsRequest, srrg.ScoreRequest]
RESPONSES = [
    srrg.GenerateResponse, srrg.StructuredSection, srrg.LabelsResponse, srrg.ReportLabels,
    srrg.SentenceLabels, srrg.ScoreResponse, srrg.SampleScore, srrg.LabelScore,
]  # fmt: skip


def _undocumented(schema: type[BaseModel]) -> list[str]:
    return [name for name, info in schema.model_fields.items() if not info.description]


@pytest.mark.parametrize("schema", REQUESTS + RESPONSES, ids=lambda s: s.__name__)
def test_every_field_has_a_description(schema: type[BaseModel]) -> None:
    assert _undocumented(schema) == []


@pytest.mark.parametrize("schema", REQUESTS, ids=lambda s: s.__name__)
def test_the_example_is_a_valid_request(schema: type[BaseModel]) -> None:
    examples = schema.model_config["json_schema_extra"]["examples"]  # type: ignore[index]
    assert examples
    for example in examples:
        schema.model_validate(example)


def test_the_generate_example_carries_a_real_image() -> None:
    assert sniff(base64.b64decode(srrg.EXAMPLE_IMAGE)) == "png"
