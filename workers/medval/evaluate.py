"""Grade (instruction, reference, candidate) items with either MedVAL engine (torch-free).

Engines: a vLLM OpenAI-compatible server (production) or the in-process model on a worker
(the embedded default), behind one interface; both receive the same released messages and
return raw answer text. Each answer is parsed; an unreadable answer gets exactly one retry
decoded under the answer grammar. An item still unreadable gets an error of its own, never a
guessed grade, and the other items of the batch keep theirs.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from core.constants import STORE_MARKER
from core.errors import (
    BadRequest,
    ConstraintUnsupported,
    InvalidInput,
    MedserveError,
    UpstreamError,
)
from workers.medval.answer import AnswerUnparseable, Evaluation, parse_answer
from workers.medval.grammar import GrammarTooLarge, answer_regex
from workers.medval.prompt import build_messages
from workers.runtime.llm_client import LLMClient


@dataclass
class Completion:
    text: str
    finish_reason: str


@dataclass
class GenerationOptions:
    max_tokens: int = 1024
    temperature: float = 0.0
    enable_thinking: bool = False


@dataclass
class EvalItem:
    instruction: str
    reference: str
    candidate: str


@dataclass
class Outcome:
    """One item's grade, or why it has none."""

    evaluation: Evaluation | None
    constrained: bool  # True when the grade came from the constrained decoding
    error: str | None = None


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
    # (base URL, served model) -> (time, provenance): the model list is read once a minute.
    _provenance_cache: ClassVar[dict[tuple[str, str], tuple[float, dict[str, Any]]]] = {}

    def __init__(
        self, client: LLMClient, served_model: str, extra: dict[str, Any] | None = None
    ) -> None:
        self.client = client
        self.served_model = served_model
        self.extra = dict(extra or {})  # sent with every request (a job's vLLM `priority`)

    async def _one(
        self, messages: list[dict[str, str]], options: GenerationOptions, regex: str | None
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.served_model,
            "messages": messages,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "chat_template_kwargs": {"enable_thinking": options.enable_thinking},
            **self.extra,
        }
        if regex is not None:
            body["structured_outputs"] = {"regex": regex}
        status, data = await self.client.post_json("/chat/completions", body)
        if status == 400 and regex is not None:
            raise ConstraintUnsupported(
                "the vLLM engine refused the constrained retry (structured outputs with a regex)"
            )
        if status == 400:
            raise InvalidInput(
                "the vLLM engine refused the request (prompt too long for its context?)"
            )
        if status != 200:
            raise UpstreamError(f"the vLLM engine answered HTTP {status}")
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
        key = (self.client.base_url, self.served_model)
        cached = self._provenance_cache.get(key)
        if cached is None or time.monotonic() - cached[0] > self.PROVENANCE_TTL_S:
            info: dict[str, Any] = {"weights": "external", "weights_digest": None}
            try:
                models = await self.client.models()
                served = [m for m in models if m.get("id") == self.served_model]
                root = served[0].get("root") if served else None
                marker = Path(root) / STORE_MARKER if root else None
                if marker is not None and marker.is_file():
                    stored = json.loads(marker.read_text())
                    info = {"weights": stored["weights"], "weights_digest": stored["digest"]}
            except (MedserveError, ValueError, KeyError, OSError):
                return {"engine": self.name, "served_model": self.served_model, **info}
            entry = {"engine": self.name, "served_model": self.served_model, **info}
            cached = (time.monotonic(), entry)
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


def _parse(completion: Completion, constrained: bool) -> Outcome:
    try:
        return Outcome(parse_answer(completion.text), constrained)
    except AnswerUnparseable as error:
        return Outcome(None, constrained, f"{error}; finish_reason={completion.finish_reason}")


async def evaluate(
    engine: MedVALEngine,
    items: list[EvalItem],
    options: GenerationOptions,
    *,
    constrained: bool = False,
) -> list[Outcome]:
    """Grade every item; `constrained=True` decodes under the grammar from the first try."""
    try:
        regex = answer_regex(options.max_tokens)
    except GrammarTooLarge as error:
        if constrained:
            raise InvalidInput(error.args[0]) from None
        regex = None
    conversations = [build_messages(i.instruction, i.reference, i.candidate) for i in items]
    first = await engine.complete(conversations, options, regex if constrained else None)
    outcomes = [_parse(completion, constrained) for completion in first]
    failed = [i for i, outcome in enumerate(outcomes) if outcome.evaluation is None]
    if failed and not constrained and regex is not None:
        retry = await engine.complete([conversations[i] for i in failed], options, regex)
        for index, completion in zip(failed, retry, strict=True):
            outcomes[index] = _parse(completion, True)
    for outcome in outcomes:
        if outcome.evaluation is None:
            tried = "constrained decoding" if outcome.constrained else "no constrained retry"
            hint = "" if outcome.constrained else " (raise max_tokens to allow one)"
            outcome.error = (
                f"the model's answer could not be parsed ({outcome.error}), after {tried}"
                f"{hint}; no grade is given"
            )
    return outcomes
