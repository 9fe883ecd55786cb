"""Batched MedVAL generation: greedy (or sampled) decoding, optionally under the answer grammar."""

from __future__ import annotations

from typing import Any

MIN_TEMPERATURE = 1e-3


class Generator:
    """Generates answers for prompts that share (max_tokens, temperature, constrained)."""

    def __init__(self, tokenizer: Any, model: Any, device: str) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.eos_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.pad_id = int(tokenizer.pad_token_id or self.eos_id)
        self._token_strings: list[str] | None = None
        self._automata: dict[int, Any] = {}

    def automaton(self, max_tokens: int) -> Any:
        """The token automaton of the answer grammar for `max_tokens` (built once)."""
        from workers.medval.automaton import TokenAutomaton
        from workers.medval.grammar import answer_grammar

        if max_tokens not in self._automata:
            grammar = answer_grammar(max_tokens)
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

    def generate(
        self, prompts: list[str], max_tokens: int, temperature: float, constrained: bool
    ) -> list[tuple[str, str, int]]:
        """(text, finish_reason, completion_tokens) per prompt."""
        import torch
        from transformers import LogitsProcessorList

        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        prompt_length = encoded["input_ids"].shape[1]
        processors = LogitsProcessorList()
        if constrained:
            from workers.medval.automaton import GrammarLogitsProcessor

            processors.append(
                GrammarLogitsProcessor(self.automaton(max_tokens), prompt_length, len(prompts))
            )
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature >= MIN_TEMPERATURE:  # below it, sampling is greedy (and stays finite)
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
            tokens = [t for t in (row[:stop] if stop is not None else row) if t != self.pad_id]
            text = self.tokenizer.decode(tokens, skip_special_tokens=False)
            results.append((text, "stop" if stop is not None else "length", len(tokens)))
        return results
