"""The answer format as a small grammar, for the constrained retry.

One definition, two renderings: `to_regex()` for vLLM structured outputs and the node graph
itself for the in-process engine's token automaton. Free text is bounded in characters so that
any answer the grammar allows fits in `max_tokens` (a token is at least one character): even a
model with random weights completes a parseable answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from workers.medval.prompt import CATEGORY_NAMES

FREE_EXCLUDED = "\n[]"  # free text never contains these: they delimit sections


@dataclass(frozen=True)
class Lit:
    text: str
    next: str


@dataclass(frozen=True)
class Free:
    max_chars: int
    next: str


@dataclass(frozen=True)
class Choice:
    options: tuple[tuple[str, str], ...]  # (text, next node)


END = "$end"
Node = Lit | Free | Choice


def _escape(text: str) -> str:
    """Escape for the regex dialects engines accept (no `\\ ` or `\\#`; newline as `\\n`)."""
    out = []
    for char in text:
        if char == "\n":
            out.append("\\n")
        elif char in ".^$*+?{}[]|()\\/":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


class GrammarTooLarge(ValueError):
    """`max_tokens` is too small for any complete answer."""


@dataclass(frozen=True)
class AnswerGrammar:
    nodes: dict[str, Node]
    start: str
    max_chars: int

    def to_regex(self) -> str:
        """A regular expression matching exactly the answers this grammar allows."""
        return self._regex(self.start)

    def _regex(self, name: str) -> str:
        if name == END:
            return ""
        node = self.nodes[name]
        if isinstance(node, Lit):
            return _escape(node.text) + self._regex(node.next)
        if isinstance(node, Free):
            return rf"[^\n\[\]]{{1,{node.max_chars}}}" + self._regex(node.next)
        targets = {nxt for _, nxt in node.options}
        if len(targets) == 1:  # factor the shared continuation out (keeps the regex linear)
            texts = "|".join(_escape(text) for text, _ in node.options)
            return f"(?:{texts})" + self._regex(targets.pop())
        alternatives = [_escape(text) + self._regex(nxt) for text, nxt in node.options]
        return "(?:" + "|".join(alternatives) + ")"


def answer_grammar(max_tokens: int, max_errors: int = 5) -> AnswerGrammar:
    """The released answer format with free text sized so every answer fits in `max_tokens`."""
    budget = max_tokens - 1  # the end-of-sequence token
    longest_category = max(len(name) for name in CATEGORY_NAMES) + 2
    fixed = len("[[ ## reasoning ## ]]\n") + len("\n\n[[ ## errors ## ]]\n")
    fixed += len("\n\n[[ ## risk_level ## ]]\n") + 1 + len("\n\n[[ ## completed ## ]]")
    fixed += len("None")
    per_error = len("\nError 10: ") + longest_category
    for errors in range(max_errors, 0, -1):
        free = budget - fixed - errors * per_error
        reasoning = min(600, free * 2 // 5)
        error_chars = min(200, (free - reasoning) // errors) if errors else 0
        if reasoning >= 16 and error_chars >= 16:
            break
    else:
        raise GrammarTooLarge(
            f"max_tokens={max_tokens} is too small for a complete constrained answer; send at "
            f"least {fixed + per_error + 40}"
        )
    nodes: dict[str, Node] = {
        "start": Lit("[[ ## reasoning ## ]]\n", "reasoning"),
        "reasoning": Free(reasoning, "errors_header"),
        "errors_header": Lit("\n\n[[ ## errors ## ]]\n", "errors"),
        "errors": Choice((("None\n\n[[ ## risk_level ## ]]\n", "risk"), ("Error 1: ", "cat1"))),
        "risk": Choice(tuple((str(level), "completed") for level in (1, 2, 3, 4))),
        "completed": Lit("\n\n[[ ## completed ## ]]", END),
    }
    for k in range(1, errors + 1):
        nodes[f"cat{k}"] = Choice(tuple((f"{name}: ", f"text{k}") for name in CATEGORY_NAMES))
        nodes[f"text{k}"] = Free(error_chars, f"after{k}")
        options = [("\n\n[[ ## risk_level ## ]]\n", "risk")]
        if k < errors:
            options.append((f"\nError {k + 1}: ", f"cat{k + 1}"))
        nodes[f"after{k}"] = Choice(tuple(options))
    used = fixed + reasoning + errors * (per_error + error_chars)
    return AnswerGrammar(nodes=nodes, start="start", max_chars=used)


@lru_cache(maxsize=64)
def answer_regex(max_tokens: int) -> str:
    """`answer_grammar(max_tokens).to_regex()`, cached (it is the same for every request)."""
    return answer_grammar(max_tokens).to_regex()
