"""Parse SRRG output into its released structure and say where it breaks the format. Torch-free.

Findings: organ-system headers (`Lungs and Airways:` ...) each followed by `- ` bullets, a blank
line between sections. Impression: a numbered list `1. ...`, one item a line. The rules follow
jbdel/StructEval `structeval/utils.py` (`VALID_ORGANS`, `parse_findings`, `parse_impression`):
headers match case-insensitively, a `findings:` / `impression:` prefix is removed with a
warning, and sections with no bullets are dropped. Model output decoded without its line breaks
("Pleura: - No effusion. Cardiovascular: - ...") is re-split at known headers and bullets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ORGANS: tuple[str, ...] = (
    "Lungs and Airways",
    "Pleura",
    "Cardiovascular",
    "Hila and Mediastinum",
    "Tubes, Catheters, and Support Devices",
    "Musculoskeletal and Chest Wall",
    "Abdominal",
    "Other",
)
_CANONICAL = {organ.lower(): organ for organ in ORGANS}
_PREFIX = {
    "findings": re.compile(r"^\s*findings\s*:\s*", re.I),
    "impression": re.compile(r"^\s*impression\s*:\s*", re.I),
}
_HEADER_INLINE = re.compile(
    "(" + "|".join(re.escape(organ) for organ in sorted(ORGANS, key=len, reverse=True)) + r")\s*:",
    re.I,
)
_BULLET_INLINE = re.compile(r"(?:(?<=\s)|^)-\s+")
_NUMBER = re.compile(r"^(\d+)\.(?!\d)\s*")


@dataclass
class Structured:
    """A parsed report: sections (findings) or items (impression), and what breaks the format."""

    kind: str
    sections: dict[str, list[str]] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    inline: bool = False

    @property
    def valid(self) -> bool:
        return not self.problems

    def text(self) -> str:
        """The report in its canonical released layout."""
        if self.kind == "impression":
            return "\n".join(f"{i}. {item}" for i, item in enumerate(self.items, 1))
        blocks = [
            f"{h}:\n" + "\n".join(f"- {b}" for b in bullets) for h, bullets in self.sections.items()
        ]
        return "\n\n".join(blocks)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "structure_valid": self.valid}
        if self.kind == "findings":
            body["sections"] = {h: list(b) for h, b in self.sections.items()}
        else:
            body["items"] = list(self.items)
        body["problems"] = list(self.problems)
        body["line_breaks_restored"] = self.inline
        return body


def _strip_prefix(text: str, kind: str, problems: list[str]) -> str:
    if _PREFIX[kind].match(text):
        problems.append(f"the text starts with '{kind}:'; the section name is not part of it")
        return _PREFIX[kind].sub("", text, count=1)
    return text


def _findings_lines(text: str) -> tuple[list[str], bool]:
    """Lines of a findings text; a one-line text is re-split at headers and bullets."""
    lines = [line.strip() for line in text.splitlines()]
    if len([line for line in lines if line]) > 1 or not _HEADER_INLINE.search(text):
        return lines, False
    marked = _HEADER_INLINE.sub(lambda m: "\n" + m.group(0) + "\n", text)
    marked = _BULLET_INLINE.sub("\n- ", marked)
    return [line.strip() for line in marked.splitlines()], True


def _header(line: str) -> tuple[str | None, bool]:
    """(canonical organ, had a colon) when `line` is a header, as StructEval recognises one."""
    body = re.sub(r"^[^\w]*", "", line)
    colon = body.endswith(":")
    name = body[:-1].strip() if colon else body.strip()
    return _CANONICAL.get(name.lower()), colon


def _bullet(line: str, number: int, problems: list[str]) -> str | None:
    """The text of bullet line `line` (line `number`), or None when it is empty."""
    if not line.startswith("- "):
        problems.append(f"line {number}: a bullet starts with '- ' (dash, space): '{line[:40]}'")
    content = line[1:].strip()
    if not content:
        problems.append(f"line {number}: empty bullet")
        return None
    return content


def parse_findings(text: str) -> Structured:
    """Findings text -> sections of bullets, with every deviation from the format listed."""
    result = Structured("findings")
    problems = result.problems
    lines, result.inline = _findings_lines(_strip_prefix(text, "findings", problems))
    current: str | None = None
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        organ, colon = _header(line)
        if organ is not None and not line.startswith("-"):
            if organ in result.sections:
                problems.append(f"line {number}: '{organ}' appears twice; merge the sections")
            if not colon:
                problems.append(f"line {number}: header '{organ}' must end with ':'")
            current = organ
            result.sections.setdefault(organ, [])
        elif line.startswith("-"):
            content = _bullet(line, number, problems)
            if current is None:
                problems.append(f"line {number}: bullet outside a section: '{line[:40]}'")
            elif content is not None:
                result.sections[current].append(content)
        else:
            problems.append(
                f"line {number}: unknown header or stray text '{line[:40]}'; headers are: "
                + ", ".join(ORGANS)
            )
            current = None
    for organ in [h for h, bullets in result.sections.items() if not bullets]:
        problems.append(f"section '{organ}' has no bullets")
        del result.sections[organ]
    if not result.sections:
        problems.append("no organ-system section with bullets was found")
    return result


def _impression_lines(text: str) -> tuple[list[str], bool]:
    """Items of an impression text; a one-line list is re-split at 2., 3., ... in order."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or not _NUMBER.match(lines[0]):
        return lines, False
    line, parts, expected = lines[0], [], 2
    while match := re.search(rf"(?<=\s){expected}\.(?!\d)\s", line):
        parts.append(line[: match.start()].strip())
        line, expected = line[match.start() :], expected + 1
    parts.append(line.strip())
    return parts, len(parts) > 1


def parse_impression(text: str) -> Structured:
    """Impression text -> numbered items, with numbering errors and empty items listed."""
    result = Structured("impression")
    problems = result.problems
    lines, result.inline = _impression_lines(_strip_prefix(text, "impression", problems))
    for index, line in enumerate(lines, 1):
        match = _NUMBER.match(line)
        if match is None:
            problems.append(
                f"item {index} does not start with its number '{index}.': '{line[:40]}'"
            )
            content = line
        else:
            if int(match.group(1)) != index:
                problems.append(f"item {index} is numbered {match.group(1)}; expected {index}")
            content = line[match.end() :].strip()
        if not content:
            problems.append(f"item {index} is empty")
            continue
        result.items.append(content)
    if not lines:
        problems.append("the impression is empty")
    return result


def parse(text: str, kind: str) -> Structured:
    """Parse a findings or impression text (`kind` is 'findings' or 'impression')."""
    if kind == "findings":
        return parse_findings(text)
    if kind == "impression":
        return parse_impression(text)
    raise ValueError(f"kind must be 'findings' or 'impression', not {kind!r}")
