"""The SRRG structure parser against the released format rules (StructEval utils.py)."""

from __future__ import annotations

import pytest

from workers.srrg.structure import ORGANS, parse, parse_findings, parse_impression

GOOD_FINDINGS = """Lungs and Airways:
- No focal consolidation.
- Mild bibasilar atelectasis.

Pleura:
- No pleural effusion or pneumothorax.

Cardiovascular:
- Normal cardiac silhouette."""


def test_valid_findings_sections_and_bullets() -> None:
    parsed = parse_findings(GOOD_FINDINGS)
    assert parsed.valid, parsed.problems
    assert list(parsed.sections) == ["Lungs and Airways", "Pleura", "Cardiovascular"]
    assert parsed.sections["Lungs and Airways"] == [
        "No focal consolidation.",
        "Mild bibasilar atelectasis.",
    ]
    assert parsed.text() == GOOD_FINDINGS
    assert parsed.to_dict()["structure_valid"] is True


def test_all_released_headers_are_known() -> None:
    text = "\n\n".join(f"{organ}:\n- Finding {i}." for i, organ in enumerate(ORGANS))
    parsed = parse_findings(text)
    assert parsed.valid and list(parsed.sections) == list(ORGANS)


def test_headers_match_case_insensitively_like_structeval() -> None:
    parsed = parse_findings("lungs and airways:\n- clear.\n\nHILA AND MEDIASTINUM:\n- normal.")
    assert parsed.valid
    assert list(parsed.sections) == ["Lungs and Airways", "Hila and Mediastinum"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Lungs:\n- Clear.", "unknown header"),
        ("- No effusion.\n\nPleura:\n- Normal.", "bullet outside a section"),
        ("Pleura:\n\nCardiovascular:\n- Normal.", "section 'Pleura' has no bullets"),
        ("Pleura:\n- Normal.\n\nPleura:\n- Again.", "appears twice"),
        ("Pleura\n- Normal.", "must end with ':'"),
        ("Pleura:\n-Normal.", "starts with '- '"),
        ("Pleura:\n- ", "empty bullet"),
        ("Findings:\nPleura:\n- Normal.", "starts with 'findings:'"),
        ("", "no organ-system section"),
        ("Pleura:\nNo effusion.", "stray text"),
    ],
)
def test_findings_problems(text: str, fragment: str) -> None:
    parsed = parse_findings(text)
    assert not parsed.valid
    assert any(fragment in problem for problem in parsed.problems), parsed.problems


def test_unknown_header_discards_its_bullets_as_structeval_does() -> None:
    parsed = parse_findings("Heart:\n- Enlarged.\n\nPleura:\n- Normal.")
    assert list(parsed.sections) == ["Pleura"]
    assert any("bullet outside a section" in p for p in parsed.problems)


def test_findings_without_line_breaks_are_resplit() -> None:
    flat = (
        "Lungs and Airways: - No focal consolidation. - Mild atelectasis. Pleura: - No "
        "effusion. Tubes, Catheters, and Support Devices: - ET tube 4 cm above the carina."
    )
    parsed = parse_findings(flat)
    assert parsed.valid, parsed.problems
    assert parsed.inline
    assert parsed.sections["Lungs and Airways"] == ["No focal consolidation.", "Mild atelectasis."]
    assert parsed.sections["Tubes, Catheters, and Support Devices"] == [
        "ET tube 4 cm above the carina."
    ]


def test_valid_impression() -> None:
    parsed = parse_impression("1. No acute process.\n2. Stable cardiomegaly.")
    assert parsed.valid and parsed.items == ["No acute process.", "Stable cardiomegaly."]
    assert parsed.text() == "1. No acute process.\n2. Stable cardiomegaly."


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1. One.\n3. Three.", "numbered 3; expected 2"),
        ("1. One.\nTwo.", "does not start with its number"),
        ("2. One.", "numbered 2; expected 1"),
        ("1. One.\n2.", "item 2 is empty"),
        ("Impression: 1. One.", "starts with 'impression:'"),
        ("  \n ", "the impression is empty"),
    ],
)
def test_impression_problems(text: str, fragment: str) -> None:
    parsed = parse_impression(text)
    assert not parsed.valid
    assert any(fragment in problem for problem in parsed.problems), parsed.problems


def test_impression_without_line_breaks_keeps_decimals() -> None:
    parsed = parse_impression("1. Nodule of 3.5 cm, unchanged. 2. No effusion. 3. Line in place.")
    assert parsed.valid and parsed.inline
    assert parsed.items == ["Nodule of 3.5 cm, unchanged.", "No effusion.", "Line in place."]


def test_parse_dispatch() -> None:
    assert parse("1. Clear.", "impression").items == ["Clear."]
    with pytest.raises(ValueError):
        parse("x", "history")
