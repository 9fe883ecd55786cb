"""The OpenAI pass-through's model mapping and the vLLM error relay (no engine needed)."""

import json

import pytest

from core.errors import InvalidInput, ModelNotFound, Unavailable
from core.settings import Settings
from service.routes.openai import _upstream_message, served_name


def test_model_names_map_to_the_served_name() -> None:
    settings = Settings(vllm_base_url="http://127.0.0.1:9", vllm_model="org/MedVAL-4B")
    assert served_name(settings, "medval-4b") == "org/MedVAL-4B"
    assert served_name(settings, "org/MedVAL-4B") == "org/MedVAL-4B"
    with pytest.raises(ModelNotFound, match="does not run on vLLM"):
        served_name(settings, "gpt-4")
    with pytest.raises(InvalidInput, match="model"):
        served_name(settings, None)


def test_no_vllm_engine_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="MEDSERVE_VLLM_BASE_URL"):
        served_name(Settings(), "medval-4b")


def test_engine_messages_are_cut_before_request_values() -> None:
    payload = {
        "error": {
            "message": "1 validation error: max_tokens too large [type=less_than, "
            "input_value='patient John Doe'",
            "type": "BadRequestError",
        }
    }
    message = _upstream_message(json.dumps(payload).encode())
    assert message == "1 validation error: max_tokens too large"
    assert _upstream_message(b"not json") == ""
