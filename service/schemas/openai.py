"""OpenAI-compatible request bodies, as the `openai` SDK, LiteLLM or LangChain send them.

The parameters a served LLM honours are typed; the other OpenAI parameters are accepted only at
their neutral values, so a client never believes an option was applied when it was not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CHAT_EXAMPLE: dict[str, Any] = {
    "model": "medval-4b",
    "messages": [{"role": "user", "content": "Summarize: small left pleural effusion."}],
    "max_tokens": 16,
}
COMPLETION_EXAMPLE: dict[str, Any] = {
    "model": "medval-4b",
    "prompt": "Impression:",
    "max_tokens": 16,
}
MAX_TOKENS = 8192


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients add name, tool ids...

    role: Literal["system", "user", "assistant"]
    content: str


class Common(BaseModel):
    """What chat and text completions share."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A served LLM: see GET /v1/models (the `data` list).")
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = Field(None, description="Up to 4 stop strings.")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1, le=1, description="One choice per request.")
    top_p: float = Field(1.0, ge=1.0, le=1.0, description="Only 1 (no nucleus sampling).")
    seed: int | None = None
    user: str | None = None
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0)
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0)
    chat_template_kwargs: dict[str, Any] | None = Field(
        None, description='vLLM-style template options, e.g. {"enable_thinking": false}.'
    )

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and len(stops) > 4:
            raise ValueError("send at most 4 stop strings")
        return stops

    @property
    def budget(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 256

    @property
    def thinking(self) -> bool:
        return bool((self.chat_template_kwargs or {}).get("enable_thinking", False))


class ChatRequest(Common):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [dict(CHAT_EXAMPLE)]})

    messages: list[Message] = Field(min_length=1)


class CompletionRequest(Common):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [dict(COMPLETION_EXAMPLE)]}
    )

    prompt: str | list[str]
    echo: bool = Field(False, description="Only false.")

    @model_validator(mode="after")
    def _one_prompt(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("send one prompt per request")
        if self.echo:
            raise ValueError("echo is not supported; send echo=false")
        return self

    @property
    def text(self) -> str:
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt
