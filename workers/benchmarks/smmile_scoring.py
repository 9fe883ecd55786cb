"""SMMILE scoring as released (eth-medical-ai-lab/smmile @ab004d2, inference_and_evaluation/):

- MCQA: `extract_mcqa_answer` of `inference_openai.py` reads the letter (the `<answer>` tag,
  then phrase patterns, emphasis, any lone capital, then the option text); correct when it is
  the query's letter. Accuracy is the share correct (`variance_analysis.py`).
- Open questions, exact match (`evaluate_EM.py`): lower-case, drop ASCII punctuation
  (`string.punctuation`), collapse whitespace, compare (flexible, the default); `strict` compares
  the raw strings.
- Open questions, LLM judge (`evaluate_LLMJudge.py`): one user message to Llama 3.3 (ollama,
  default options); the reply counts only when it is exactly "1" or "0", else wrong and counted
  as a formatting error.
- Stratification (`stratify.py`): per-problem accuracy averaged per value of each flag of the
  query row, `speciality`, the number of in-context examples (0 for zero-shot) and whether the
  first / last in-context example has the query's answer.
"""

from __future__ import annotations

import json
import re
import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

from workers.benchmarks.smmile_data import FLAGS, Problem

FAILED = "EXTRACTION_FAILED"
JUDGE_MODEL = "llama3.3"
JUDGE_PROMPT = (
    'A medical AI model is provided with an image and asked the question "{question}". '
    'The correct answer to this question is: "{answer}". The AI model outputs "{response}" as its '
    "response. Is the AI model correct? Please output your answer as a single digit, where 1 "
    "indicates that the AI model is correct and 0 indicates that the AI model is incorrect with "
    "respect to the correct answer. Do not provide anything other than the digit in your response."
)

_TAG = re.compile(r"<answer>(.*?)</answer>|<answer>(.*?)($|\n\n)", re.DOTALL)
_EVERY_OPTION = r"(?:\.\s*\w+|\.|\s+|$)"
# Tried in order, case-insensitive, on the stripped reply.
_PATTERNS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"answer is:?\s*([A-Z])[.\s]",
        r"\banswer:?\s*([A-Z])[.\s]",
        r"\*\*Answer:\*\*\s*([A-Za-z])" + _EVERY_OPTION,
        r"\*\*Answer\*\*:\s*([A-Za-z])" + _EVERY_OPTION,
        r"\*Answer\*:\s*([A-Za-z])" + _EVERY_OPTION,
        r"Answer:\s*([A-Za-z])" + _EVERY_OPTION,
        r"The correct answer is\s*([A-Za-z])" + _EVERY_OPTION,
        r"The answer(?:\s+is)?:?\s*([A-Za-z])" + _EVERY_OPTION,
        r"The correct answer(?:\s+is)?:?\s*([A-Za-z])" + _EVERY_OPTION,
        r"answer\s*is\s*([A-Za-z])" + _EVERY_OPTION,
        r"([A-Za-z])\s*is the (?:correct )?answer",
        r"option\s*([A-Za-z])\b",
        r"choice\s*([A-Za-z])\b",
        r"select\s*([A-Za-z])\b",
        r"best answer is:?\s*([A-Z])[.\s]",
        r"choice\s*([A-Z])[.\s]",
        r"option\s*([A-Z])[.\s]",
        r"select\s*([A-Z])[.\s]",
        r"chose\s*([A-Z])[.\s]",
        r"choose\s*([A-Z])[.\s]",
        r"final answer:?\s*([A-Z])",
    )
)
_EMPHASIS = re.compile(r"[*_](([A-Z])[*_])", re.IGNORECASE)
_LONE_CAPITAL = re.compile(r"\b([A-Z])\b")


def extract_option(response: Any, options: Mapping[str, str] | None = None) -> str:
    """The option letter a reply chose, or "EXTRACTION_FAILED"."""
    if not isinstance(response, str):
        return FAILED
    tagged = _TAG.search(response)
    if tagged:
        inner = tagged.group(1) if tagged.group(1) is not None else tagged.group(2)
        answer = inner.strip()
        if answer:
            letter = re.search(r"([A-Z])", answer.upper())
            return letter.group(1) if letter else answer[0].upper()
    text = response.strip()
    for pattern in _PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1).upper()
    for pattern, group in ((_EMPHASIS, 2), (_LONE_CAPITAL, 1)):
        found = pattern.search(text)
        if found:
            return found.group(group).upper()
    for letter, answer_text in (options or {}).items():
        if answer_text.strip().lower() == text.lower():
            return letter
        if answer_text.strip() and text and answer_text.strip().lower() in text.lower():
            return letter
    return FAILED


def score_mcqa(response: Any, options: Mapping[str, str], correct: str) -> dict[str, Any]:
    """The chosen letter, correctness and the chosen answer text (as the result CSVs hold)."""
    letter = extract_option(response, options)
    if letter == FAILED:
        return {"selected_option": FAILED, "is_correct": False, "generated_answer": FAILED}
    answer = options.get(letter, f"INVALID_OPTION:{letter}")
    return {"selected_option": letter, "is_correct": letter == correct, "generated_answer": answer}


def normalize_answer(text: Any) -> str:
    """Lower-case, no ASCII punctuation, single spaces (upstream `normalize_answer`)."""
    text = str(text).lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def exact_match(true_answer: Any, generated: Any, strict: bool = False) -> bool:
    if strict:
        return true_answer == generated
    return normalize_answer(true_answer) == normalize_answer(generated)


def judge_prompt(question: str, answer: str, response: str) -> str:
    """The single user message sent to the judge."""
    return JUDGE_PROMPT.format(question=question, answer=answer, response=response)


def judge_messages(question: str, answer: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": judge_prompt(question, answer, response)}]


def parse_judgment(reply: Any) -> tuple[bool, bool]:
    """(correct, well_formed): only the exact replies "1" and "0" are read, nothing stripped."""
    if reply in ("1", "0"):
        return reply == "1", True
    return False, False


def summarize(
    problem_ids: Sequence[str],
    correct: Sequence[bool],
    generated: Sequence[Any] | None = None,
    judge_errors: int | None = None,
) -> dict[str, Any]:
    """Accuracy (%) and the per-problem accuracies, as the upstream evaluation JSONs hold."""
    n = len(correct)
    per_problem: dict[str, list[bool]] = defaultdict(list)
    for pid, ok in zip(problem_ids, correct, strict=True):
        per_problem[str(pid)].append(bool(ok))
    stats: dict[str, Any] = {
        "total_examples": n,
        "correct_examples": int(sum(map(bool, correct))),
        "accuracy": 100 * sum(map(bool, correct)) / n if n else 0,
        "problem_accuracies": {p: 100 * fmean(v) for p, v in sorted(per_problem.items())},
        "incorrect_examples": [
            str(p) for p, ok in zip(problem_ids, correct, strict=True) if not ok
        ],
    }
    if generated is not None:
        stats["err_count"] = sum(1 for g in generated if "ERROR" in str(g))
        stats["word_count"] = fmean(len(str(g).split()) for g in generated) if n else 0.0
    if judge_errors is not None:
        stats["llm_err_count"] = judge_errors
    return stats


def _flag_labels(problem: Problem, mode: str) -> dict[str, Any]:
    query, icl = problem.query, problem.icl
    labels: dict[str, Any] = {f: query.flags.get(f) for f in FLAGS}
    labels["speciality"] = query.speciality
    zero = mode == "0-shot"
    labels["flag_num_ICL"] = 0 if zero else len(icl)
    labels["flag_first_ICL_match_problem"] = False if zero else icl[0].answer == query.answer
    labels["flag_last_ICL_match_problem"] = False if zero else icl[-1].answer == query.answer
    return labels


def stratify(
    problems: Sequence[Problem], problem_accuracies: Mapping[str, float], mode: str = "ICL"
) -> dict[str, dict[str, Any]]:
    """Per flag: {value: mean accuracy}, {value: problems}, {value: problems at 100%} -- keys
    `<flag>_accuracy`, `<flag>_total`, `<flag>_correct` and values spelt as upstream's
    model_stratification_*.json has them (true/false, 3, null)."""
    by_id = {p.problem_id: p for p in problems}
    groups: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for pid, accuracy in problem_accuracies.items():
        for flag, label in _flag_labels(by_id[pid], mode).items():
            groups[flag][label].append(accuracy)
    out: dict[str, dict[str, Any]] = {}
    for flag, values in groups.items():
        keys = {k: json.dumps(k) if not isinstance(k, str) else k for k in values}
        out[f"{flag}_accuracy"] = {keys[k]: fmean(v) for k, v in values.items()}
        out[f"{flag}_total"] = {keys[k]: len(v) for k, v in values.items()}
        out[f"{flag}_correct"] = {keys[k]: sum(1 for a in v if a == 100) for k, v in values.items()}
    return out
