"""GREEN (StanfordAIMI/GREEN-radllama2-7b, an LLM judge of radiology reports): the released
prompt, chat template, answer cleaning, parsing and score, torch-free.

Reproduces RadEval 2.2.1 `radeval/metrics/green_score/utils.py` (`make_prompt`,
`clean_responses`) and `green.py` (`GREEN.parse_error_counts`, `compute_green`,
`compute_error_count`, the chat template and decoding settings). GREEN of one sample =
matched / (matched + sum of the six clinically significant error counts), 0 when nothing is
matched; the corpus value is the mean (and population std) over samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from statistics import fmean, pstdev
from typing import Any

MODEL_ID = "StanfordAIMI/GREEN-radllama2-7b"
MAX_WORDS = 300  # each report is cut to its first 300 whitespace-separated words
MAX_LENGTH = 2048  # tokenizer truncation and generate(max_length=...), prompt included
BATCH_SIZE = 8
GENERATION = {"do_sample": False, "max_length": MAX_LENGTH}
TOKENIZER = {"add_eos_token": True, "padding_side": "left", "pad_token": "eos_token"}

SIGNIFICANT = "Clinically Significant Errors"
INSIGNIFICANT = "Clinically Insignificant Errors"
MATCHED = "Matched Findings"
CATEGORIES = (SIGNIFICANT, INSIGNIFICANT, MATCHED)
SUB_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)

# The template RadEval sets on the tokenizer; rendered by `render_chat` below.
CHAT_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['from'] == 'human' %}\n"
    "{{ '<|user|>\\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'system' %}\n"
    "{{ '<|system|>\\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'gpt' %}\n"
    "{{ '<|assistant|>\\n'  + message['value'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)

_FORMAT_LINE = "<Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>"
_BODY = [
    "Process Overview: You will be presented with:",
    "",
    "1. The criteria for making a judgment.",
    "2. The reference radiology report.",
    "3. The candidate radiology report.",
    "4. The desired format for your assessment.",
    "",
    "1. Criteria for Judgment:",
    "",
    "For each candidate report, determine:",
    "",
    "The count of clinically significant errors.",
    "The count of clinically insignificant errors.",
    "",
    "Errors can fall into one of these categories:",
    "",
    *(f"{s[1]}) {s[4:]}." for s in SUB_CATEGORIES),
    "Note: Concentrate on the clinical findings rather than the report's writing style. "
    "Evaluate only the findings that appear in both reports.",
    "",
    "2. Reference Report:",
    "{reference}",
    "",
    "3. Candidate Report:",
    "{candidate}",
    "",
    "4. Reporting Your Assessment:",
    "",
    "Follow this specific format for your output, even if no errors are found:",
    "```",
    "[Explanation]:",
    "<Explanation>",
    "",
    f"[{SIGNIFICANT}]:",
    f"(a) {_FORMAT_LINE}",
    "....",
    f"(f) {_FORMAT_LINE}",
    "",
    f"[{INSIGNIFICANT}]:",
    f"(a) {_FORMAT_LINE}",
    "....",
    f"(f) {_FORMAT_LINE}",
    "",
    f"[{MATCHED}]:",
    "<The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>",
    "```",
    "",
]
_HEAD = (
    "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a "
    "reference radiology report composed by expert radiologists."
)


def make_prompt(reference: str, candidate: str, max_words: int = MAX_WORDS) -> str:
    """The judge prompt for one (reference, candidate) pair, each cut to `max_words` words."""
    ref = " ".join(reference.split()[:max_words])
    cand = " ".join(candidate.split()[:max_words])
    body = [("    " + line) if line else "" for line in _BODY]
    text = "\n".join([_HEAD, "", *body])
    # str.replace, not str.format: reports may hold braces
    return text.replace("{reference}", ref, 1).replace("{candidate}", cand, 1)


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The conversation RadEval renders: the prompt from `human`, then an empty `gpt` turn."""
    return [{"from": "human", "value": prompt}, {"from": "gpt", "value": ""}]


def render_chat(prompt: str, eos_token: str = "</s>") -> str:
    """`CHAT_TEMPLATE` applied to `chat_messages(prompt)` with add_generation_prompt=True, as
    transformers renders it (trim_blocks, lstrip_blocks). RadEval tokenizes this text with
    `add_eos_token=True`, so the model also sees BOS first and one more EOS last."""
    return f"<|user|>\n{prompt}{eos_token}\n<|assistant|>\n{eos_token}\n<|assistant|>\n"


def clean_response(response: str) -> str:
    """RadEval's `clean_responses`: keep what follows the last `<|assistant|>` and the
    `[Explanation]:` marker, drop `</s>` and `<unk>`. Works on the full decoded sequence (prompt
    included, as RadEval decodes it) and on the generated part alone."""
    if "[Explanation]:" in response:
        if "<|assistant|>" in response:
            response = response.split("<|assistant|>")[-1]
        # Upstream tests `("A" or "B") in response`, i.e. only the first placeholder form.
        if "[Explanation]:\n    <Explanation>\n" in response:
            response = response.split("[Explanation]:")[1]
        else:
            response = response.split("[Explanation]:")[-1]
    if "<|assistant|>" in response:
        response = response.split("<|assistant|>")[-1]
    return response.replace("</s>", "").replace("<unk>", "")


_MATCHED_COUNT = re.compile(r"^\b\d+\b(?=\.)", re.MULTILINE)
_LETTER_LINE = re.compile(r"\([a-f]\) .*")
_DIGIT_LINE = re.compile(r"\([1-6]\) .*")
_COUNT = re.compile(r"(?<=: )\b\d+\b(?=\.)")


def parse_counts(response: str, category: str) -> tuple[int, list[int]]:
    """(total, six sub-counts) of one section. The section runs from `[category]:` to the first
    blank line; a body starting with "No" is zero; Matched Findings is the leading number of a
    line; error lines are `(a) ...: N.` (or `(1) ...: N.`), the last line per letter winning."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
    zero = [0] * len(SUB_CATEGORIES)
    found = re.search(rf"\[{category}\]:\s*(.*?)(?:\n\s*\n|\Z)", response, re.DOTALL)
    if not found:
        return 0, zero
    body = found.group(1)
    if body.startswith("No"):
        return 0, zero
    if category == MATCHED:
        leading = _MATCHED_COUNT.findall(body)
        return (int(leading[0]) if leading else 0), zero
    lines = sorted(_LETTER_LINE.findall(body))
    prefixes = [f"{s[:3]} " for s in SUB_CATEGORIES]
    if not lines:
        lines = sorted(_DIGIT_LINE.findall(body))
        prefixes = [f"({i}) " for i in range(1, len(SUB_CATEGORIES) + 1)]
    counts = list(zero)
    for idx, prefix in enumerate(prefixes):
        for line in lines:
            if line.startswith(prefix):
                number = _COUNT.search(line)
                if number:
                    counts[idx] = int(number.group(0))
    return sum(counts), counts


def green_score(response: str) -> float:
    """GREEN of one cleaned judge answer."""
    matched, _ = parse_counts(response, MATCHED)
    if matched == 0:
        return 0.0
    significant, _ = parse_counts(response, SIGNIFICANT)
    return matched / (matched + significant)


def error_counts(response: str) -> dict[str, Any]:
    """Per-sample breakdown: significant and insignificant errors per sub-category, matched."""
    _, significant = parse_counts(response, SIGNIFICANT)
    _, insignificant = parse_counts(response, INSIGNIFICANT)
    matched, _ = parse_counts(response, MATCHED)
    return {
        "significant": dict(zip(SUB_CATEGORIES, significant, strict=True)),
        "insignificant": dict(zip(SUB_CATEGORIES, insignificant, strict=True)),
        "matched_findings": matched,
    }


def summarize(responses: Sequence[str], cleaned: bool = True) -> dict[str, Any]:
    """GREEN over a corpus: mean, population std, per-sample scores and counts, and per
    sub-category the share of samples without a significant error (RadEval
    `compute_accuracy`). Pass raw decoded texts with `cleaned=False`."""
    texts = [r if cleaned else clean_response(r) for r in responses]
    scores = [green_score(t) for t in texts]
    counts = [error_counts(t) for t in texts]
    n = len(texts)
    no_error = {
        sub: (sum(1 for c in counts if c["significant"][sub] == 0) / n if n else 0.0)
        for sub in SUB_CATEGORIES
    }
    return {
        "green": fmean(scores) if n else 0.0,
        "green_std": pstdev(scores) if n else 0.0,
        "n": n,
        "per_sample": scores,
        "counts": counts,
        "no_significant_error_rate": no_error,
    }
