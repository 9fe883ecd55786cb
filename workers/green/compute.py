"""Batched GREEN judging: RadEval's tokenization and greedy decoding, then its answer cleaning.

The rendered chats are tokenized together (BOS first and, from `add_eos_token`, one more EOS
last; left padding with EOS; truncation at 2048) and decoded greedily with
`generate(max_length=2048)`, the prompt included in the 2048, as RadEval does. The new tokens
are decoded without special tokens and cleaned (`clean_response`), which gives the text RadEval
gets from decoding the whole sequence.
"""

from __future__ import annotations

from typing import Any

from workers.benchmarks.green import GENERATION, MAX_LENGTH, clean_response


class Judge:
    """Generates GREEN answers for rendered chat texts."""

    def __init__(self, tokenizer: Any, model: Any, device: str) -> None:
        self.tokenizer, self.model, self.device = tokenizer, model, device
        self.eos_id = int(tokenizer.eos_token_id)

    def prompt_tokens(self, text: str) -> int:
        """Tokens of one rendered chat as the model receives it (BOS and EOS included)."""
        return len(self.tokenizer(text)["input_ids"])

    def generate(self, texts: list[str]) -> list[tuple[str, str, int]]:
        """(cleaned answer, finish_reason, generated tokens) per text."""
        import torch

        encoded = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=MAX_LENGTH
        ).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **encoded, eos_token_id=self.eos_id, pad_token_id=self.eos_id, **GENERATION
            )
        results = []
        for row in out[:, encoded["input_ids"].shape[1] :].tolist():
            stop = row.index(self.eos_id) if self.eos_id in row else None
            answer = self.tokenizer.decode(row, skip_special_tokens=True)
            used = stop + 1 if stop is not None else len(row)
            results.append((clean_response(answer), "stop" if stop is not None else "length", used))
        return results
