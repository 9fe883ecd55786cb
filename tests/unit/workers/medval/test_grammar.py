"""The constrained-retry grammar: its regex accepts exactly parseable answers that fit the budget,
and the token automaton (in-process engine) only lets such answers through."""

import re

import numpy as np
import pytest

from workers.medval.answer import parse_answer
from workers.medval.automaton import TokenAutomaton
from workers.medval.grammar import GrammarTooLarge, answer_grammar


def test_regex_accepts_answers_the_parser_reads() -> None:
    grammar = answer_grammar(512)
    pattern = re.compile(grammar.to_regex())
    good = (
        "[[ ## reasoning ## ]]\nshort\n\n[[ ## errors ## ]]\nError 1: Missing claim: no effusion"
        "\nError 2: Other: typo\n\n[[ ## risk_level ## ]]\n4\n\n[[ ## completed ## ]]"
    )
    assert pattern.fullmatch(good)
    assert parse_answer(good).risk_level == 4
    none = good.split("[[ ## errors ## ]]\n")[0] + "[[ ## errors ## ]]\nNone\n\n"
    none += "[[ ## risk_level ## ]]\n1\n\n[[ ## completed ## ]]"
    assert pattern.fullmatch(none)
    bad = [
        good.replace("\n4\n", "\n5\n"),
        good.replace("Missing claim", "Typo"),
        good.replace("short", "x" * 5000),
        good.replace("short", "a [bracket]"),
    ]
    assert not any(pattern.fullmatch(text) for text in bad)
    assert grammar.max_chars <= 511


def test_too_small_a_budget_is_refused() -> None:
    with pytest.raises(GrammarTooLarge, match="max_tokens=64"):
        answer_grammar(64)


def test_automaton_walk_with_a_character_tokenizer_yields_a_parseable_answer() -> None:
    """Greedy walk through the automaton picking the *last* allowed token every step (the
    adversarial choice: longest free text, last category) must end in a parseable answer."""
    vocab = [chr(c) for c in range(32, 127)] + ["\n", "<eos>", "\n\n", "[[", "Error"]
    index = {t: i for i, t in enumerate(vocab)}
    eos = index["<eos>"]

    def encode(text: str) -> list[int]:
        return [index[ch] for ch in text]

    grammar = answer_grammar(400)
    automaton = TokenAutomaton(grammar, vocab, eos, encode, len(vocab))
    state, out = automaton.start(), []
    for _ in range(400):
        allowed = np.flatnonzero(automaton.allowed(state))
        assert len(allowed) > 0
        token = int(allowed[-1]) if len(out) % 7 else int(allowed[0])
        if token == eos:
            break
        out.append(vocab[token])
        state = automaton.advance(state, token)
    else:
        pytest.fail("the automaton did not reach the end of the answer within max_tokens")
    text = "".join(out)
    assert re.fullmatch(grammar.to_regex(), text)
    assert 1 <= parse_answer(text).risk_level <= 4
