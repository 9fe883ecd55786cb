"""The answer parser reads what models write and refuses what it would have to guess."""

import pytest

from workers.medval.answer import AnswerUnparseable, parse_answer, parse_errors, parse_risk

WELL_FORMED = (
    "[[ ## reasoning ## ]]\nThe candidate omits the effusion.\n\n"
    "[[ ## errors ## ]]\nError 1: Missing claim: the left pleural effusion is omitted\n"
    "Error 2: Fabricated claim: 'pneumonia' is not in the reference\n\n"
    "[[ ## risk_level ## ]]\n3\n\n[[ ## completed ## ]]"
)


def answer(risk: str, errors: str = "None", reasoning: str = "ok") -> str:
    return (
        f"[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## errors ## ]]\n{errors}\n\n"
        f"[[ ## risk_level ## ]]\n{risk}\n\n[[ ## completed ## ]]"
    )


def test_well_formed_answer() -> None:
    graded = parse_answer(WELL_FORMED)
    assert graded.risk_level == 3 and graded.risk_label == "Moderate Risk"
    assert graded.reasoning == "The candidate omits the effusion."
    assert [(e.category, e.text) for e in graded.errors] == [
        ("Missing claim", "the left pleural effusion is omitted"),
        ("Fabricated claim", "'pneumonia' is not in the reference"),
    ]


@pytest.mark.parametrize(
    ("risk", "level"),
    [
        ("3", 3), ("Literal[3]", 3), ("3 (Moderate)", 3), ("3 (Moderate Risk)", 3),
        ("Level 4 (High Risk)", 4), ("**2**", 2), ("`1`", 1), ("'2'", 2), ("4.", 4),
        ("2\n\nThe errors are minor.", 2), ("risk_level: 1", 1), ("Moderate Risk", 3),
        ("  4  ", 4), ("3.0", 3), ('"3"', 3),
    ],
)  # fmt: skip
def test_risk_level_variants(risk: str, level: int) -> None:
    assert parse_answer(answer(risk)).risk_level == level


@pytest.mark.parametrize(
    "risk",
    ["5", "0", "Literal[1, 2, 3, 4]", "3 or 4", "2 (High Risk)", "", "unclear", "3/4", "12"],
)
def test_unreadable_risk_is_refused_never_guessed(risk: str) -> None:
    with pytest.raises(AnswerUnparseable):
        parse_answer(answer(risk))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I think the candidate is fine.",
        "[[ ## reasoning ## ]]\nfine\n\n[[ ## errors ## ]]\nNone",  # cut off before the grade
        "[[ ## reasoning ## ]]\nx\n\n[[ ## risk_level ## ]]\n2",  # no errors section
        answer("2") + "\n[[ ## risk_level ## ]]\n4",  # two different grades
        "<think>The candidate drops the effusion so the risk_level is",  # unfinished thinking
        "\n" * 200,  # what a random model emits
    ],
)
def test_malformed_answers_are_unparseable(text: str) -> None:
    with pytest.raises(AnswerUnparseable):
        parse_answer(text)


def test_marker_spacing_case_and_thinking_blocks() -> None:
    text = (
        "<think>\nLet me compare... risk_level 4?\n</think>\n\n"
        "[[## Reasoning ##]] fine [[ ## ERRORS ## ]] None [[ ##  risk level  ## ]] **2 (Low Risk)**"
    )
    graded = parse_answer(text)
    assert (graded.risk_level, graded.errors, graded.reasoning) == (2, [], "fine")


def test_json_answer() -> None:
    graded = parse_answer(
        '```json\n{"reasoning": "r", "errors": "Error 1: Other: x", '
        '"risk_level": "Literal[2]"}\n```'
    )
    assert graded.risk_level == 2 and graded.errors[0].category == "Other"
    with pytest.raises(AnswerUnparseable):
        parse_answer('{"reasoning": "r", "risk_level": 2}')


@pytest.mark.parametrize("none", ["None", "none.", "No errors found.", "N/A", "[]", "-"])
def test_no_errors(none: str) -> None:
    assert parse_errors(none) == []


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ("Error 1: Missing claim: no effusion", [("Missing claim", "no effusion")]),
        ("Error 1 - missing claim - no effusion", [("Missing claim", "no effusion")]),
        ("Error 1: [Missing Claim] no effusion", [("Missing claim", "no effusion")]),
        ("Error 1: no effusion (Missing claim)", [("Missing claim", "no effusion")]),
        ("Error 1: no effusion. Category: missing_claim", [("Missing claim", "no effusion.")]),
        ("**Error 1:** Overstating intensity: 'severe'", [("Overstating intensity", "'severe'")]),
        ("Error 1: Missing comparison: prior not cited\\nError 2: Other: typo",
         [("Missing comparison", "prior not cited"), ("Other", "typo")]),
        ("Error 1: the dose is wrong\nError 2: the side is wrong",
         [(None, "the dose is wrong"), (None, "the side is wrong")]),
        ("- Fabricated claim: pneumonia\n- Missing context: no size",
         [("Fabricated claim", "pneumonia"), ("Missing context", "no size")]),
        ("1. Detail misidentification: left vs right",
         [("Detail misidentification", "left vs right")]),
        ("error 1) Incorrect recommendation: CT advised",
         [("Incorrect recommendation", "CT advised")]),
    ],
)  # fmt: skip
def test_error_list_variants(errors: str, expected: list[tuple[str | None, str]]) -> None:
    assert [(e.category, e.text) for e in parse_errors(errors)] == expected


def test_parse_risk_accepts_integers_and_refuses_booleans() -> None:
    assert parse_risk(4) == 4
    with pytest.raises(AnswerUnparseable):
        parse_risk(True)
