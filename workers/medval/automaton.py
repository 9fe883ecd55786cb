"""Constrained decoding for the in-process engine: the answer grammar as a token automaton.

Literal text is forced as its own tokenization, choices (categories, risk levels) follow a trie
of their tokenizations, and free text may use any token free of section delimiters, within its
character budget. `GrammarLogitsProcessor` masks every other token at each step, so greedy or
sampled decoding of any model (random weights included) yields an answer the grammar allows.
Used only by the model worker (it takes torch tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from workers.medval.grammar import END, FREE_EXCLUDED, AnswerGrammar, Choice, Free, Lit

State = tuple[Hashable, ...]


class _Trie:
    __slots__ = ("children", "next")

    def __init__(self) -> None:
        self.children: dict[int, _Trie] = {}
        self.next: str | None = None


class TokenAutomaton:
    """Deterministic token-level automaton of an `AnswerGrammar` for one tokenizer."""

    def __init__(
        self,
        grammar: AnswerGrammar,
        token_strings: list[str],
        eos_id: int,
        encode: Callable[[str], list[int]],
        vocab_size: int,
    ) -> None:
        self.grammar = grammar
        self.eos_id = eos_id
        self.vocab_size = vocab_size
        self.lengths = np.zeros(vocab_size, dtype=np.int64)
        self.clean = np.zeros(vocab_size, dtype=bool)
        for token_id, text in enumerate(token_strings[:vocab_size]):
            self.lengths[token_id] = len(text)
            self.clean[token_id] = bool(text) and not any(c in FREE_EXCLUDED for c in text)
        self.clean[eos_id] = False
        self.tries: dict[str, _Trie] = {}
        for name, node in grammar.nodes.items():
            if isinstance(node, Lit | Choice):
                options = [(node.text, node.next)] if isinstance(node, Lit) else node.options
                self.tries[name] = self._trie(options, encode)
        self._masks: dict[State, np.ndarray] = {}

    @staticmethod
    def _trie(options: Any, encode: Callable[[str], list[int]]) -> _Trie:
        root = _Trie()
        for text, nxt in options:
            node = root
            for token_id in encode(text):
                node = node.children.setdefault(token_id, _Trie())
            if node.children or node.next is not None:
                raise ValueError("grammar options must not be prefixes of one another")
            node.next = nxt
        return root

    def start(self) -> State:
        return self._enter(self.grammar.start)

    def _enter(self, name: str) -> State:
        if name == END:
            return ("end",)
        node = self.grammar.nodes[name]
        if isinstance(node, Free):
            return ("free", name, 0)
        return ("trie", name, id(self.tries[name]), self.tries[name])

    def _after_trie(self, child: _Trie, name: str) -> State:
        if child.next is not None:
            return self._enter(child.next)
        return ("trie", name, id(child), child)

    def advance(self, state: State, token_id: int) -> State:
        kind = state[0]
        if kind == "end":
            return state
        if kind == "trie":
            child = state[3].children.get(token_id)  # type: ignore[attr-defined]
            if child is None:
                raise ValueError("token outside the grammar")
            return self._after_trie(child, state[1])  # type: ignore[arg-type]
        name, used = state[1], int(state[2])  # type: ignore[call-overload]
        node = self.grammar.nodes[name]  # type: ignore[index]
        assert isinstance(node, Free)
        exits = self.tries[node.next].children
        if token_id in exits:
            return self._after_trie(exits[token_id], node.next)
        return ("free", name, used + int(self.lengths[token_id]))

    def allowed(self, state: State) -> np.ndarray:
        key = state[:3] if state[0] == "trie" else state
        mask = self._masks.get(key)
        if mask is not None:
            return mask
        mask = np.zeros(self.vocab_size, dtype=bool)
        if state[0] == "end":
            mask[self.eos_id] = True
        elif state[0] == "trie":
            mask[list(state[3].children)] = True  # type: ignore[attr-defined]
        else:
            node = self.grammar.nodes[state[1]]  # type: ignore[index]
            assert isinstance(node, Free)
            used = int(state[2])  # type: ignore[call-overload]
            room = node.max_chars - used
            mask |= self.clean & (self.lengths <= room)
            if used > 0:
                mask[list(self.tries[node.next].children)] = True
        self._masks[key] = mask
        return mask


class GrammarLogitsProcessor:
    """A transformers logits processor that keeps each row of a batch inside the grammar."""

    def __init__(self, automaton: TokenAutomaton, prompt_length: int, batch_size: int) -> None:
        self.automaton = automaton
        self.prompt_length = prompt_length
        self.states = [automaton.start() for _ in range(batch_size)]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if input_ids.shape[1] > self.prompt_length:
            last = input_ids[:, -1].tolist()
            self.states = [
                self.automaton.advance(state, token) if state[0] != "end" else state
                for state, token in zip(self.states, last, strict=True)
            ]
        width = scores.shape[-1]
        masks = np.zeros((len(self.states), width), dtype=bool)
        for row, state in enumerate(self.states):
            allowed = self.automaton.allowed(state)
            masks[row, : min(width, allowed.shape[0])] = allowed[:width]
        blocked = ~torch.from_numpy(masks).to(scores.device)
        return scores.masked_fill(blocked, float("-inf"))
