"""OpenAI chat and text completions answered by an LLM hosted on a model worker.

The request becomes one OIP inference (`messages` as a JSON chat, or a raw `prompt`) with
`max_tokens`, `temperature` and `stop`; the answer is shaped as OpenAI's objects, whole or as
server-sent events (the worker generates the whole answer, then it is sent as one content
chunk, a finish chunk and `[DONE]`, which is what streaming clients expect).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel

from core.errors import UpstreamError
from service.forms import inline_schema
from service.model_router import ModelRouter
from service.schemas.openai import ChatRequest, CompletionRequest


def openai_body(schema: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra`: these routes read the raw body, so the schema is documented here."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(schema),
                                             "example": example}},
        }
    }  # fmt: skip


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass
class Answer:
    """One completion, ready to be written as an OpenAI object or stream."""

    chat: bool
    model: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    request_id: str
    usage_in_stream: bool = False

    def __post_init__(self) -> None:
        self.created = int(time.time())
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + (self.request_id or "0")[:32]

    @property
    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": total}  # fmt: skip

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def document(self) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": self.text},
                "finish_reason": self.finish_reason,
            }
            return {**self._head("chat.completion"), "choices": [choice], "usage": self.usage}
        choice = {"index": 0, "text": self.text, "finish_reason": self.finish_reason,
                  "logprobs": None}  # fmt: skip
        return {**self._head("text_completion"), "choices": [choice], "usage": self.usage}

    async def events(self) -> AsyncIterator[bytes]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        chunks: list[dict[str, Any]] = []
        if self.chat:
            delta = {"role": "assistant", "content": self.text}
            chunks.append({"index": 0, "delta": delta, "finish_reason": None})
            chunks.append({"index": 0, "delta": {}, "finish_reason": self.finish_reason})
        else:
            chunks.append({"index": 0, "text": self.text, "finish_reason": self.finish_reason,
                           "logprobs": None})  # fmt: skip
        for choice in chunks:
            yield b"data: " + orjson.dumps({**self._head(kind), "choices": [choice]}) + b"\n\n"
        if self.usage_in_stream:
            usage = {**self._head(kind), "choices": [], "usage": self.usage}
            yield b"data: " + orjson.dumps(usage) + b"\n\n"
        yield b"data: [DONE]\n\n"


async def in_process(
    models: ModelRouter, body: ChatRequest | CompletionRequest, request_id: str
) -> Answer:
    """Run the completion on the worker hosting `body.model`."""
    chat = isinstance(body, ChatRequest)
    if isinstance(body, ChatRequest):
        messages = [m.model_dump() for m in body.messages]
        inputs = {"messages": np.array([json.dumps(messages).encode()], dtype=object)}
    else:
        inputs = {"prompt": np.array([body.text.encode()], dtype=object)}
    parameters: dict[str, Any] = {
        "max_tokens": body.budget,
        "temperature": body.temperature,
        "enable_thinking": body.thinking,
    }
    if body.stop:
        parameters["stop"] = json.dumps(body.stop)
    result = await models.infer(body.model, inputs, parameters, request_id=request_id or None)
    try:
        outputs = {k: np.asarray(v).reshape(-1) for k, v in result.outputs.items()}
        return Answer(
            chat=chat,
            model=body.model,
            text=_text(outputs["text"][0]),
            finish_reason=_text(outputs["finish_reason"][0]),
            prompt_tokens=int(outputs["prompt_tokens"][0]),
            completion_tokens=int(outputs["completion_tokens"][0]),
            request_id=request_id,
            usage_in_stream=bool((body.stream_options or {}).get("include_usage")),
        )
    except (KeyError, IndexError, ValueError):
        raise UpstreamError("the LLM worker's answer lacks text or token counts") from None
