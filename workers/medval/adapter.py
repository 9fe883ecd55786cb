"""MedVAL-4B in process (transformers): the embedded engine behind `/v1/medval/evaluate`.

Contract in `workers.medval.contract`: one JSON chat per row of `messages`, parameters
`max_tokens`, `temperature`, `enable_thinking`, `constrained`; raw answers out (parsing is
shared with the vLLM engine, in `workers.medval.answer`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.medval.contract import INPUTS, OUTPUTS, Params
from workers.medval.grammar import GrammarTooLarge
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import Sample
from workers.runtime.oip import InferRequest, InferResponse

ROLES = {"system", "user", "assistant"}


def _messages(raw: Any, row: int) -> list[dict[str, str]]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        messages = json.loads(text)
    except ValueError:
        raise InvalidInput(
            f"messages[{row}] is not JSON; send a JSON list of chat messages"
        ) from None
    if not isinstance(messages, list) or not messages:
        raise InvalidInput(f"messages[{row}] must be a non-empty list of {{role, content}}")
    for message in messages:
        if (
            not isinstance(message, dict)
            or set(message) != {"role", "content"}
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidInput(
                f"messages[{row}]: each message is {{role, content}} with a role of "
                "system, user or assistant and a string content"
            )
    return messages


class MedVALAdapter(ModelAdapter):
    inputs = INPUTS
    outputs = OUTPUTS
    Params = Params

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.medval.compute import Generator
        from workers.medval.model import load_lm

        self.tokenizer, self.model, self.device = load_lm(resolved.path, device)
        self.context = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.generator = Generator(self.tokenizer, self.model, self.device)
        self.resolved = resolved

    def decode(self, request: InferRequest, params: Params) -> list[Sample]:
        if ("messages" in request.inputs) == ("prompt" in request.inputs):
            raise InvalidInput("send one BYTES input: 'messages' (JSON chats) or 'prompt' (text)")
        if "prompt" in request.inputs:
            rows = np.asarray(request.inputs["prompt"], dtype=object).reshape(-1)
            texts = [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r) for r in rows]
            return [Sample("text", text, modality="text", info={"raw": True}) for text in texts]
        rows = np.asarray(request.inputs["messages"], dtype=object).reshape(-1)
        samples = []
        for row, raw in enumerate(rows):
            messages = _messages(raw, row)
            text = "\n".join(m["content"] for m in messages)
            samples.append(Sample("text", text, modality="text", info={"messages": messages}))
        return samples

    def prepare(self, samples: list[Sample], params: Params, request: InferRequest) -> list[Item]:
        if params.constrained:
            try:
                self.generator.automaton(params.max_tokens)
            except GrammarTooLarge as error:
                raise InvalidInput(error.args[0]) from None
        key = (params.max_tokens, params.temperature, params.enable_thinking, params.constrained)
        items = []
        for row, sample in enumerate(samples):
            prompt = sample.data if sample.info.get("raw") else self.tokenizer.apply_chat_template(
                sample.info["messages"], tokenize=False, add_generation_prompt=True,
                enable_thinking=params.enable_thinking,
            )  # fmt: skip
            length = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
            if length + params.max_tokens > self.context:
                raise InvalidInput(
                    f"messages[{row}] is {length} tokens; with max_tokens={params.max_tokens} "
                    f"that exceeds the model's context of {self.context}: shorten the texts"
                )
            items.append(Item(prompt, key=key, meta={"prompt_tokens": length}))
        return items

    def predict(self, batch: list[Item]) -> list[Any]:
        max_tokens, temperature, _thinking, constrained = batch[0].key
        out = self.generator.generate(
            [item.data for item in batch], max_tokens, temperature, constrained
        )
        return [
            (*result, item.meta["prompt_tokens"]) for result, item in zip(out, batch, strict=True)
        ]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        stops = self.params(request).stop or []
        cut = [_cut(text, reason, stops) for text, reason, _, _ in results]
        return self.response(
            {
                "text": np.array([text.encode() for text, _ in cut], dtype=object),
                "finish_reason": np.array([reason.encode() for _, reason in cut], dtype=object),
                "completion_tokens": np.array([r[2] for r in results], dtype=np.int32),
                "prompt_tokens": np.array([r[3] for r in results], dtype=np.int32),
            },
            machine_generated=True,
        )


def _cut(text: str, reason: str, stops: list[str]) -> tuple[str, str]:
    """The answer up to the first stop string (finish_reason "stop" then), as OpenAI does."""
    found = [text.index(s) for s in stops if s and s in text]
    return (text[: min(found)], "stop") if found else (text, reason)
