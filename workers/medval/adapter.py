"""MedVAL-4B in process (transformers): the embedded engine behind `/v1/medval/evaluate`.

Input `messages` (BYTES, one JSON chat per row: the released MedVAL prompt, built by the
gateway). Parameters: `max_tokens`, `temperature`, `enable_thinking` (Qwen3 thinking mode, off
unless asked) and `constrained` (decode under the answer grammar, for the retry). Outputs the
raw answer `text`, `finish_reason` and `completion_tokens`; parsing stays with the gateway so
both engines share it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.runtime.adapter import Item, ModelAdapter, TensorSpec
from workers.runtime.oip import InferRequest, InferResponse

MAX_TOKENS_LIMIT = 8192
ROLES = {"system", "user", "assistant"}


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidInput(f"parameter '{name}' must be true or false")


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
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidInput(
                f"messages[{row}]: each message needs a role (system, user, assistant) "
                "and a string content"
            )
    return messages


class MedVALAdapter(ModelAdapter):
    inputs = [TensorSpec("messages", "BYTES", [-1])]
    outputs = [
        TensorSpec("text", "BYTES", [-1]),
        TensorSpec("finish_reason", "BYTES", [-1]),
        TensorSpec("completion_tokens", "INT32", [-1]),
    ]

    def load(self, resolved: ResolvedModel, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = "cpu" if device in ("auto", "") else device
        if device == "auto" and torch.cuda.is_available():
            self.device = "cuda"
        dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(
            resolved.path, local_files_only=True, dtype=dtype
        ).to(self.device)
        self.model.eval()
        self.context = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.eos_id = int(self.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.pad_id = int(self.tokenizer.pad_token_id or self.eos_id)
        self._token_strings: list[str] | None = None
        self._automata: dict[int, Any] = {}
        self.resolved = resolved

    def preprocess(self, request: InferRequest) -> list[Item]:
        if "messages" not in request.inputs:
            raise InvalidInput("send one BYTES input named 'messages': a JSON chat per row")
        rows = np.asarray(request.inputs["messages"], dtype=object).reshape(-1)
        params = {**self.manifest.defaults, **request.parameters}
        try:
            max_tokens = int(params.get("max_tokens", 1024))
            temperature = float(params.get("temperature", 0.0))
        except (TypeError, ValueError):
            raise InvalidInput("max_tokens must be an integer and temperature a number") from None
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidInput(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
        if not 0.0 <= temperature <= 2.0:
            raise InvalidInput("temperature must be between 0 and 2")
        thinking = _flag(params.get("enable_thinking", False), "enable_thinking")
        constrained = _flag(params.get("constrained", False), "constrained")
        key = (max_tokens, temperature, thinking, constrained)
        items = []
        for row, raw in enumerate(rows):
            prompt = self.tokenizer.apply_chat_template(
                _messages(raw, row), tokenize=False, add_generation_prompt=True,
                enable_thinking=thinking,
            )  # fmt: skip
            length = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
            if length + max_tokens > self.context:
                raise InvalidInput(
                    f"messages[{row}] is {length} tokens; with max_tokens={max_tokens} that "
                    f"exceeds the model's context of {self.context}: shorten the texts"
                )
            items.append(Item(prompt, key=key))
        return items

    def _automaton(self, max_tokens: int) -> Any:
        from workers.medval.automaton import TokenAutomaton
        from workers.medval.grammar import GrammarTooLarge, answer_grammar

        if max_tokens not in self._automata:
            try:
                grammar = answer_grammar(max_tokens)
            except GrammarTooLarge as error:
                raise InvalidInput(error.args[0]) from None
            if self._token_strings is None:
                vocab = len(self.tokenizer)
                self._token_strings = [self.tokenizer.decode([i]) for i in range(vocab)]
            self._automata[max_tokens] = TokenAutomaton(
                grammar,
                self._token_strings,
                self.eos_id,
                lambda text: self.tokenizer.encode(text, add_special_tokens=False),
                int(self.model.config.vocab_size),
            )
        return self._automata[max_tokens]

    def predict(self, batch: list[Item]) -> list[Any]:
        import torch
        from transformers import LogitsProcessorList

        max_tokens, temperature, _thinking, constrained = batch[0].key
        encoded = self.tokenizer(
            [item.data for item in batch], return_tensors="pt", padding=True,
            add_special_tokens=False,
        ).to(self.device)  # fmt: skip
        prompt_length = encoded["input_ids"].shape[1]
        processors = LogitsProcessorList()
        if constrained:
            from workers.medval.automaton import GrammarLogitsProcessor

            automaton = self._automaton(max_tokens)
            processors.append(GrammarLogitsProcessor(automaton, prompt_length, len(batch)))
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        with torch.inference_mode():
            out = self.model.generate(
                **encoded,
                max_new_tokens=max_tokens,
                eos_token_id=self.eos_id,
                pad_token_id=self.pad_id,
                logits_processor=processors,
                **sampling,
            )
        results = []
        for row in out[:, prompt_length:].tolist():
            stop = row.index(self.eos_id) if self.eos_id in row else None
            tokens = row[:stop] if stop is not None else row
            tokens = [t for t in tokens if t != self.pad_id]
            text = self.tokenizer.decode(tokens, skip_special_tokens=False)
            results.append((text, "stop" if stop is not None else "length", len(tokens)))
        return results

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        return InferResponse(
            model_name=self.name,
            model_version=self.manifest.version,
            outputs={
                "text": np.array([r[0].encode() for r in results], dtype=object),
                "finish_reason": np.array([r[1].encode() for r in results], dtype=object),
                "completion_tokens": np.array([r[2] for r in results], dtype=np.int32),
            },
            parameters=self.provenance(),
        )
