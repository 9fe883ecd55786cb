"""Two MedVAL engines behind one interface: a vLLM OpenAI-compatible server (production) and
the in-process transformers model hosted by a model worker (the embedded default).

Both receive the same chat messages and return raw answer text; prompt building and parsing
stay outside (pure Python). `regex` asks the engine to decode under the answer grammar.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp
import numpy as np
import orjson

from core.errors import (
    BadRequest,
    DeadlineExceeded,
    InvalidInput,
    MedserveError,
    Unavailable,
    UpstreamError,
)


@dataclass
class Completion:
    text: str
    finish_reason: str


@dataclass
class GenerationOptions:
    max_tokens: int = 1024
    temperature: float = 0.0
    enable_thinking: bool = False


class ConstraintUnsupported(MedserveError):
    """The engine cannot decode under the answer grammar."""

    code = "upstream_error"


class MedVALEngine(Protocol):
    name: str

    async def complete(
        self,
        conversations: list[list[dict[str, str]]],
        options: GenerationOptions,
        regex: str | None = None,
    ) -> list[Completion]: ...

    async def provenance(self) -> dict[str, Any]: ...


class VLLMEngine:
    """vLLM's `/v1/chat/completions`, one request per conversation (vLLM batches them)."""

    name = "vllm"
    PROVENANCE_TTL_S = 60.0
    # (base URL, served model) -> (time, provenance): engines are built per request, the server's
    # model list is read at most once a minute.
    _provenance_cache: ClassVar[dict[tuple[str, str], tuple[float, dict[str, Any]]]] = {}

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        served_model: str,
        api_key: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.served_model = served_model
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        try:
            async with self.session.post(
                url, data=orjson.dumps(body), headers=self.headers, timeout=self.timeout
            ) as response:
                payload = await response.read()
                status = response.status
        except TimeoutError:
            raise DeadlineExceeded("the vLLM engine did not answer in time") from None
        except aiohttp.ClientError:
            raise Unavailable("the vLLM engine cannot be reached; check vllm_base_url") from None
        if status == 200:
            try:
                data: dict[str, Any] = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamError("the vLLM engine's answer is not JSON") from None
            return data
        if status == 400 and "structured_outputs" in body:
            raise ConstraintUnsupported(
                "the vLLM engine refused the constrained retry (structured outputs with a regex)"
            )
        if status == 400:
            raise InvalidInput(
                "the vLLM engine refused the request (prompt too long for its context?)"
            )
        raise UpstreamError(f"the vLLM engine answered HTTP {status}")

    async def _one(
        self, messages: list[dict[str, str]], options: GenerationOptions, regex: str | None
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.served_model,
            "messages": messages,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "chat_template_kwargs": {"enable_thinking": options.enable_thinking},
        }
        if regex is not None:
            body["structured_outputs"] = {"regex": regex}
        data = await self._post(body)
        try:
            choice = data["choices"][0]
            return Completion(choice["message"].get("content") or "", choice["finish_reason"])
        except (KeyError, IndexError, TypeError):
            raise UpstreamError("the vLLM engine's answer has no choices") from None

    async def complete(
        self,
        conversations: list[list[dict[str, str]]],
        options: GenerationOptions,
        regex: str | None = None,
    ) -> list[Completion]:
        return list(await asyncio.gather(*(self._one(c, options, regex) for c in conversations)))

    async def provenance(self) -> dict[str, Any]:
        """What the server serves; weights provenance when its folder is a store entry."""
        key = (self.base_url, self.served_model)
        cached = self._provenance_cache.get(key)
        if cached is None or time.monotonic() - cached[0] > self.PROVENANCE_TTL_S:
            info: dict[str, Any] = {"weights": "external", "weights_digest": None}
            try:
                async with self.session.get(
                    f"{self.base_url}/models", headers=self.headers, timeout=self.timeout
                ) as response:
                    models = (await response.json()).get("data", [])
                root = next(
                    (m.get("root") for m in models if m.get("id") == self.served_model), None
                )
                marker = Path(root) / "medserve.json" if root else None
                if marker is not None and marker.is_file():
                    stored = json.loads(marker.read_text())
                    info = {"weights": stored["weights"], "weights_digest": stored["digest"]}
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, OSError):
                return {"engine": self.name, "served_model": self.served_model, **info}
            provenance = {"engine": self.name, "served_model": self.served_model, **info}
            cached = (time.monotonic(), provenance)
            self._provenance_cache[key] = cached
        return cached[1]


class WorkerEngine:
    """The in-process transformers model, reached through the gateway's model router."""

    name = "transformers"

    def __init__(self, models: Any, model: str = "medval-4b", request_id: str | None = None):
        self.models = models
        self.model = model
        self.request_id = request_id
        self._provenance: dict[str, Any] = {"weights": "unknown", "weights_digest": None}

    async def complete(
        self,
        conversations: list[list[dict[str, str]]],
        options: GenerationOptions,
        regex: str | None = None,
    ) -> list[Completion]:
        rows = np.array([json.dumps(c).encode() for c in conversations], dtype=object)
        parameters = {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "enable_thinking": options.enable_thinking,
            "constrained": regex is not None,
        }
        try:
            response = await self.models.infer(
                self.model, {"messages": rows}, parameters, request_id=self.request_id
            )
        except BadRequest:
            raise UpstreamError("the MedVAL worker refused the platform's own request") from None
        self._provenance = {
            "weights": response.parameters.get("weights", "unknown"),
            "weights_digest": response.parameters.get("weights_digest"),
        }
        texts = response.outputs["text"].reshape(-1)
        reasons = response.outputs["finish_reason"].reshape(-1)
        return [
            Completion(_text(text), _text(reason))
            for text, reason in zip(texts, reasons, strict=True)
        ]

    async def provenance(self) -> dict[str, Any]:
        return {"engine": self.name, "served_model": self.model, **self._provenance}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
