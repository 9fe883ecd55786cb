"""Evaluate (instruction, reference, candidate) items with any MedVAL engine.

Each answer is parsed; answers that cannot be read get exactly one retry decoded under the
answer grammar (vLLM structured outputs / the in-process token automaton). An item still
unreadable fails the request with a 502 that says so: the platform never guesses a grade.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidInput, UpstreamError
from workers.medval.answer import AnswerUnparseable, Evaluation, parse_answer
from workers.medval.engines_tmp import GenerationOptions, MedVALEngine
from workers.medval.grammar import GrammarTooLarge, answer_regex
from workers.medval.prompt import build_messages


@dataclass
class EvalItem:
    instruction: str
    reference: str
    candidate: str


@dataclass
class Outcome:
    evaluation: Evaluation
    constrained: bool  # True when the grade came from the constrained retry


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
    outcomes: list[Outcome | None] = []
    reasons: dict[int, str] = {}
    for index, completion in enumerate(first):
        try:
            outcomes.append(Outcome(parse_answer(completion.text), constrained))
        except AnswerUnparseable as error:
            outcomes.append(None)
            reasons[index] = str(error)
    failed = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if failed and not constrained:
        if regex is None:
            raise UpstreamError(
                f"the model's answer to item(s) {failed} could not be parsed "
                f"({reasons[failed[0]]}), and max_tokens={options.max_tokens} is too small for "
                "a constrained retry; raise max_tokens"
            )
        retry = await engine.complete([conversations[i] for i in failed], options, regex)
        for index, completion in zip(failed, retry, strict=True):
            try:
                outcomes[index] = Outcome(parse_answer(completion.text), True)
            except AnswerUnparseable as error:
                reasons[index] = f"{error}; finish_reason={completion.finish_reason}"
    still = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if still:
        attempt = "its constrained retry" if not constrained else "constrained decoding"
        raise UpstreamError(
            f"the model's answer to item(s) {still} could not be parsed, even with {attempt} "
            f"({reasons[still[0]]}); no grade is given"
        )
    return [outcome for outcome in outcomes if outcome is not None]
