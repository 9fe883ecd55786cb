"""SMMILE chat messages for an OpenAI-compatible endpoint, zero-shot or in-context, open or
multiple-choice, plus the paper's two ablations.

Reproduces upstream `inference_and_evaluation/inference_openai.py` (eth-medical-ai-lab/smmile
@ab004d2): the system prompt; per in-context example a user turn (text, then the image as a PNG
base64 data URL with detail "high") followed by the example's answer, sent upstream with the role
"system" (the Qwen, Llama, MedGemma and Claude scripts use "assistant": `answer_role`); then the
query turn. MCQA (`prepare_mcqa_options`, `format_mcqa_question`): the unique answers of the
problem (examples and query, first-seen order) lettered A, B, ... then the letters shuffled by one
`random.Random(42)` shared across problems in dataset order, as the seeded scripts do; the
question asks for `<think>...</think>` then `<answer>letter</answer>`. Request settings:
temperature 0, max_tokens 512.
"""

from __future__ import annotations

import base64
import io
import random
import string
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import InvalidInput
from workers.benchmarks.smmile_data import Example, Problem

SYSTEM_PROMPT = "You are a highly skilled physician and an excellent writer."
REQUEST = {"temperature": 0.0, "max_tokens": 512}
MCQA_SEED = 42
MODES = ("0-shot", "ICL")
FORMATS = ("open", "mcqa")


def image_data_url(image: bytes) -> str:
    """The image re-encoded as upstream `get_data_url` does: RGB unless RGB/RGBA, PNG, base64."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
        picture = opened if opened.mode in ("RGB", "RGBA") else opened.convert("RGB")
        out = io.BytesIO()
        picture.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("utf-8")


def user_turn(text: str, image: bytes | None) -> dict[str, Any]:
    if image is None:
        raise InvalidInput("an SMMILE example has no image; load problems with every image")
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": image_data_url(image), "detail": "high"}},
        ],
    }


def mcqa_options(problem: Problem, rng: random.Random) -> tuple[dict[str, str], str]:
    """(letter -> answer in shuffled letter order, the query's letter)."""
    unique = list(dict.fromkeys(e.answer for e in problem.examples))
    letters = list(string.ascii_uppercase[: len(unique)])
    options = dict(zip(letters, unique, strict=True))
    rng.shuffle(letters)
    permuted = {letter: options[letter] for letter in letters}
    correct = next(k for k, v in permuted.items() if v == problem.query.answer)
    return permuted, correct


def mcqa_question(question: str, options: dict[str, str]) -> str:
    """The multiple-choice query text (leading and trailing newline included, as upstream)."""
    listed = "\n".join(f"{letter}. {answer}" for letter, answer in options.items())
    return (
        f"\n{question}\n\nPlease select the best answer from the following options:\n{listed}\n\n"
        "Your task:\n"
        "1. Think through the question, enclose your reasoning process in "
        "<think>...</think> tags.\n"
        "2. Then provide the correct single-letter choice (A, B, C, D, E, F, ...) inside "
        "<answer>...</answer> tags.\n"
        "Example of the expected format:\n<think>This is my thought.</think>\n"
        "<answer>Correct letter.</answer>\n"
    )


def build_messages(
    problem: Problem,
    mode: str = "ICL",
    options: dict[str, str] | None = None,
    answer_role: str = "system",
) -> list[dict[str, Any]]:
    """Messages for one problem. `options` (from `mcqa_options`) makes it multiple-choice."""
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
    if answer_role not in ("system", "assistant"):
        raise InvalidInput("answer_role must be 'system' (upstream OpenAI script) or 'assistant'")
    query = problem.query
    text = mcqa_question(query.question, options) if options is not None else query.question
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    if mode == "ICL":
        for example in problem.icl:
            messages.append(user_turn(example.question, example.image))
            messages.append(
                {"role": answer_role, "content": [{"type": "text", "text": example.answer}]}
            )
    messages.append(user_turn(text, query.image))
    return messages


def requests(
    problems: Sequence[Problem],
    mode: str = "ICL",
    task_format: str = "open",
    answer_role: str = "system",
    seed: int = MCQA_SEED,
) -> list[dict[str, Any]]:
    """One request per problem, in order: messages, settings and (MCQA) options and the correct
    letter. One seeded RNG draws every problem's option order, as upstream."""
    if task_format not in FORMATS:
        raise InvalidInput(f"task_format must be one of {', '.join(FORMATS)}")
    rng = random.Random(seed)
    out = []
    for problem in problems:
        options, correct = mcqa_options(problem, rng) if task_format == "mcqa" else (None, None)
        out.append(
            {
                "problem_id": problem.problem_id,
                "messages": build_messages(problem, mode, options, answer_role),
                **REQUEST,
                "options": options,
                "correct_option": correct,
            }
        )
    return out


def answer_matches(example: Example, query: Example) -> float:
    """Relevance used by default: 1 when the example's answer is the query's answer (the test
    upstream `stratify.py` applies to the first and last in-context example), else 0."""
    return 1.0 if example.answer == query.answer else 0.0


def place_most_relevant(
    problem: Problem,
    where: str = "last",
    relevance: Callable[[Example, Example], float] = answer_matches,
) -> tuple[Problem, bool]:
    """Move the most relevant in-context example (highest `relevance`, first on ties) to the
    first or last slot. (problem, moved); unchanged when no example scores above 0."""
    if where not in ("first", "last"):
        raise InvalidInput("where must be 'first' or 'last'")
    icl = list(problem.icl)
    scores = [relevance(e, problem.query) for e in icl]
    if not icl or max(scores) <= 0:
        return problem, False
    best = icl.pop(scores.index(max(scores)))
    icl = [best, *icl] if where == "first" else [*icl, best]
    return problem.with_icl(icl), True


def inject_irrelevant(
    problem: Problem,
    pool: Sequence[Problem],
    rng: random.Random,
    where: str = "random",
    other_speciality: bool = True,
) -> tuple[Problem, Example]:
    """Add one in-context example taken from another problem (of another speciality when there
    is one, with `other_speciality`), at a random, first or last position. (problem, example)."""
    if where not in ("random", "first", "last"):
        raise InvalidInput("where must be 'random', 'first' or 'last'")
    others = [p for p in pool if p.problem_id != problem.problem_id]
    if other_speciality:
        others = [p for p in others if p.query.speciality != problem.query.speciality] or others
    if not others:
        raise InvalidInput("an irrelevant example needs at least one other problem in the pool")
    donor = rng.choice(others)
    extra = rng.choice(list(donor.icl) or [donor.query])
    icl = list(problem.icl)
    slot = {"first": 0, "last": len(icl)}.get(where)
    icl.insert(rng.randint(0, len(icl)) if slot is None else slot, extra)
    return problem.with_icl(icl), extra
