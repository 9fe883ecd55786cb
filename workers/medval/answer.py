"""Parse a MedVAL answer (`[[ ## field ## ]]` sections) into a grade, errors and reasoning.

Tolerant of what language models do to the format (marker spacing and case, Markdown, a JSON
answer, `Literal[3]`, `3 (Moderate)`, numbered or bulleted errors, Qwen3 `<think>` blocks), but
strict where it matters: an answer without exactly one risk level from 1 to 4 raises
`AnswerUnparseable`; the parser never guesses a grade.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from workers.medval.prompt import CATEGORY_NAMES, RISK_LABELS


class AnswerUnparseable(ValueError):
    """The answer does not state its fields in a form that can be read without guessing."""


@dataclass
class ErrorItem:
    category: str | None
    text: str


@dataclass
class Evaluation:
    risk_level: int
    errors: list[ErrorItem] = field(default_factory=list)
    reasoning: str = ""

    @property
    def risk_label(self) -> str:
        return RISK_LABELS[self.risk_level]


_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_MARKER = re.compile(r"\[\[\s*#+\s*([A-Za-z][A-Za-z _-]*?)\s*#+\s*\]\]")
_NONE = re.compile(r"^(none|no errors?( found| identified)?|n/?a|\[\]|-+|nil|null)\.?$", re.I)
_ERROR_SPLIT = re.compile(r"(?:^|\n)\s*[-*]?\s*\**error\s*#?\s*(\d+)\s*\**\s*[:.)\-]\s*", re.I)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.0+)?(?!\.?\d)")
_LABEL = re.compile(r"\b(no risk|low|moderate|high)\b", re.I)
_LABEL_LEVEL = {"no risk": 1, "low": 2, "moderate": 3, "high": 4}


def _category_pattern(name: str) -> str:
    return r"[\s_-]+".join(re.escape(word) for word in name.split())


# Longest names first so "Missing comparison" wins over a shorter overlapping name.
_CATEGORIES = sorted(CATEGORY_NAMES, key=len, reverse=True)
_CAT_ALT = "|".join(_category_pattern(name) for name in _CATEGORIES)
_CAT_LEADING = re.compile(
    rf"^\s*(?:category\s*:\s*)?[\[(*]*\s*({_CAT_ALT})\s*[\])*]*\s*(?:[:\-\u2013\u2014]\s*|$)", re.I
)
_CAT_ANYWHERE = re.compile(rf"[\[(]\s*(?:category\s*:\s*)?({_CAT_ALT})\s*[\])]", re.I)
_CAT_LABELLED = re.compile(rf"\bcategory\s*[:=]\s*({_CAT_ALT})\b", re.I)


def _canonical_category(found: str) -> str:
    words = re.split(r"[\s_-]+", found.strip().lower())
    for name in CATEGORY_NAMES:
        if name.lower().split() == words:
            return name
    raise AssertionError(found)  # unreachable: `found` matched one of the names


def strip_thinking(text: str) -> str:
    """Drop Qwen3 `<think>...</think>` blocks; an unclosed block (cut off) is unparseable."""
    text = _THINK.sub("", text)
    if re.search(r"<think>", text, re.I):
        raise AnswerUnparseable("the answer is an unfinished <think> block (raise max_tokens)")
    return re.sub(r"</think>", "", text, flags=re.I)


def _field_name(raw: str) -> str:
    return re.sub(r"[\s-]+", "_", raw.strip().lower())


def _sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    marks = list(_MARKER.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        found.setdefault(_field_name(mark.group(1)), []).append(text[mark.end() : end])
    return found


def parse_risk(value: object) -> int:
    """`3`, `"3"`, `Literal[3]`, `3 (Moderate)`, `Level 3`, `**3**`, `Moderate Risk` -> 3."""
    if isinstance(value, bool):
        raise AnswerUnparseable("the risk level is a boolean, not 1-4")
    if isinstance(value, int):
        if value in RISK_LABELS:
            return value
        raise AnswerUnparseable(f"the risk level {value} is not one of 1, 2, 3, 4")
    text = str(value).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise AnswerUnparseable("the risk level is empty")
    line = lines[0]
    numbers = {int(n) for n in _NUMBER.findall(line)}
    labels = {_LABEL_LEVEL[m.lower()] for m in _LABEL.findall(line)}
    if len(numbers) > 1:
        raise AnswerUnparseable("the risk level names more than one number")
    if numbers:
        (level,) = numbers
        if level not in RISK_LABELS:
            raise AnswerUnparseable(f"the risk level {level} is not one of 1, 2, 3, 4")
        if labels and labels != {level}:
            raise AnswerUnparseable("the risk level's number and label disagree")
        return level
    if len(labels) == 1:
        return labels.pop()
    raise AnswerUnparseable("the risk level is not a number from 1 to 4")


def _one_error(text: str) -> ErrorItem:
    text = text.strip().strip("*").strip()
    leading = _CAT_LEADING.match(text)
    if leading:
        rest = text[leading.end() :].strip()
        return ErrorItem(_canonical_category(leading.group(1)), rest)
    for pattern in (_CAT_ANYWHERE, _CAT_LABELLED):
        found = pattern.search(text)
        if found:
            rest = (text[: found.start()] + text[found.end() :]).strip(" :;-,")
            return ErrorItem(_canonical_category(found.group(1)), rest)
    return ErrorItem(None, text)


def parse_errors(value: object) -> list[ErrorItem]:
    """`None` -> []; `Error 1: ...\\nError 2: ...` (any numbering, bullets, literal `\\n`)."""
    if value is None:
        return []
    if isinstance(value, list):
        items = []
        for entry in value:
            if isinstance(entry, dict):
                category = entry.get("category")
                text = str(entry.get("text") or entry.get("error") or "").strip()
                item = _one_error(f"{category}: {text}" if category else text)
                items.append(item)
            elif str(entry).strip():
                items.append(_one_error(str(entry)))
        return items
    text = str(value).replace("\\n", "\n").strip().strip("`").strip()
    if not text or _NONE.match(text):
        return []
    parts = _ERROR_SPLIT.split("\n" + text)
    if len(parts) > 1:
        # [preamble, number, text, number, text, ...]
        return [_one_error(body) for body in parts[2::2] if body.strip()]
    lines = [_BULLET.sub("", line) for line in text.splitlines()]
    return [_one_error(line) for line in lines if line.strip() and not _NONE.match(line.strip())]


def _parse_json(text: str) -> Evaluation | None:
    fenced = re.search(r"\{.*\}", text, re.DOTALL)
    if not fenced:
        return None
    try:
        data = json.loads(fenced.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict) or "risk_level" not in data:
        return None
    if "errors" not in data:
        raise AnswerUnparseable("the JSON answer has no 'errors' field")
    return Evaluation(
        risk_level=parse_risk(data["risk_level"]),
        errors=parse_errors(data["errors"]),
        reasoning=str(data.get("reasoning") or "").strip(),
    )


def parse_answer(text: str) -> Evaluation:
    """Read one answer; raise `AnswerUnparseable` (with the reason) when it cannot be read."""
    text = strip_thinking(text or "")
    sections = _sections(text)
    if "risk_level" not in sections:
        as_json = _parse_json(text)
        if as_json is not None:
            return as_json
        raise AnswerUnparseable("the answer has no [[ ## risk_level ## ]] section")
    levels = {parse_risk(body) for body in sections["risk_level"]}
    if len(levels) != 1:
        raise AnswerUnparseable("the answer states more than one risk level")
    if "errors" not in sections:
        raise AnswerUnparseable("the answer has no [[ ## errors ## ]] section")
    reasoning = sections.get("reasoning", [""])[0].strip()
    return Evaluation(
        risk_level=levels.pop(), errors=parse_errors(sections["errors"][0]), reasoning=reasoning
    )
