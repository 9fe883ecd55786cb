"""The OpenAI pass-through's model mapping and the vLLM error relay (no engine needed)."""

import json

from core.settings import Settings
from service.routes.openai import _upstream_message, vllm_name


def test_model_names_map_to_the_served_name_only_when_vllm_serves_them() -> None:
    settings = Settings(vllm_base_url="http://127.0.0.1:9", vllm_model="org/MedVAL-4B")
    assert vllm_name(settings, "medval-4b") == "org/MedVAL-4B"
    assert vllm_name(settings, "org/MedVAL-4B") == "org/MedVAL-4B"
    assert vllm_name(settings, "gpt-4") is None
    assert vllm_name(Settings(), "medval-4b") is None  # no vLLM: served on a worker, if at all


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
