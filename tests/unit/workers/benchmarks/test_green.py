"""GREEN: the prompt and chat text, answer cleaning, section parsing on well-formed and malformed
judge answers, and the score (hand-computed)."""

from __future__ import annotations

import pytest

from workers.benchmarks import green

SUBS = green.SUB_CATEGORIES

WELL_FORMED = (
    "[Explanation]:\nThe candidate adds an effusion and misplaces the nodule.\n\n"
    "[Clinically Significant Errors]:\n"
    f"{SUBS[0]}: 1. Effusion.\n{SUBS[1]}: 0.\n{SUBS[2]}: 1. Left nodule.\n"
    f"{SUBS[3]}: 0.\n{SUBS[4]}: 0.\n{SUBS[5]}: 0.\n\n"
    "[Clinically Insignificant Errors]:\n"
    f"{SUBS[0]}: 0.\n{SUBS[1]}: 2. Old fracture; granuloma.\n\n"
    "[Matched Findings]:\n3. Cardiomegaly; edema; line.\n"
)


def test_prompt_layout_and_truncation_to_300_words() -> None:
    long_report = " ".join(f"w{i}" for i in range(400))
    prompt = green.make_prompt(long_report, "Small {left} effusion.")
    lines = prompt.split("\n")
    assert lines[0].startswith("Objective: Evaluate the accuracy of a candidate radiology report")
    assert lines[1] == "" and lines[2] == "    Process Overview: You will be presented with:"
    assert "    a) False report of a finding in the candidate." in lines
    assert "    f) Omitting a comparison detailing a change from a prior study." in lines
    ref_line = lines[lines.index("    2. Reference Report:") + 1]
    assert ref_line == "    " + " ".join(f"w{i}" for i in range(300))
    assert lines[lines.index("    3. Candidate Report:") + 1] == "    Small {left} effusion."
    assert prompt.endswith("<Finding n>\n    ```\n")


def test_chat_text_matches_the_template_rendered_by_jinja() -> None:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    rendered = env.from_string(green.CHAT_TEMPLATE).render(
        messages=green.chat_messages("PROMPT"), eos_token="</s>", add_generation_prompt=True
    )
    assert green.render_chat("PROMPT") == rendered
    assert rendered == "<|user|>\nPROMPT</s>\n<|assistant|>\n</s>\n<|assistant|>\n"


def test_well_formed_answer() -> None:
    assert green.parse_counts(WELL_FORMED, green.SIGNIFICANT) == (2, [1, 0, 1, 0, 0, 0])
    assert green.parse_counts(WELL_FORMED, green.INSIGNIFICANT) == (2, [0, 2, 0, 0, 0, 0])
    assert green.parse_counts(WELL_FORMED, green.MATCHED)[0] == 3
    assert green.green_score(WELL_FORMED) == pytest.approx(3 / 5)
    counts = green.error_counts(WELL_FORMED)
    assert counts["matched_findings"] == 3 and counts["significant"][SUBS[2]] == 1


def test_cleaning_a_full_decoded_sequence() -> None:
    prompt = green.make_prompt("Heart normal.", "Effusion.")
    decoded = green.render_chat(prompt, eos_token="") + WELL_FORMED + "</s><unk>"
    cleaned = green.clean_response(decoded)
    assert cleaned == WELL_FORMED.split("[Explanation]:", 1)[1]
    assert green.green_score(cleaned) == pytest.approx(0.6)
    # the generated part alone cleans to the same text
    assert green.clean_response(WELL_FORMED) == cleaned


def test_cleaning_when_the_answer_echoes_the_placeholder() -> None:
    echo = "<|assistant|>\n[Explanation]:\n    <Explanation>\nreal text\n[Explanation]: second"
    assert green.clean_response(echo) == "\n    <Explanation>\nreal text\n"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("", 0.0),
        ("<unk><unk>", 0.0),
        ("[Matched Findings]:\n0. none", 0.0),
        ("[Matched Findings]:\nNo matched findings.", 0.0),
        ("[Clinically Significant Errors]:\n(a) x: 2. y\n\n", 0.0),  # no matched section
        # count needs "N." right after ": "
        ("[Clinically Significant Errors]:\n(a) x: 2 errors\n\n[Matched Findings]:\n2. a", 1.0),
        ("[Clinically Significant Errors]:\nNo errors.\n\n[Matched Findings]:\n4. a", 1.0),
        (
            "[Clinically Significant Errors]:\n(1) x: 2. a\n(4) y: 1. b\n\n"
            "[Matched Findings]:\n2. a",
            2 / 5,
        ),
        # repeated letter: lines are sorted and the last one wins
        (
            "[Clinically Significant Errors]:\n(a) x: 1. a\n(a) z: 3. b\n\n"
            "[Matched Findings]:\n1. a",
            1 / 4,
        ),
        # sections not separated by blank lines run on to the next blank line
        (
            "[Clinically Significant Errors]:\n(a) x: 1.\n[Clinically Insignificant Errors]:\n"
            "(a) y: 2.\n[Matched Findings]:\n4. z",
            4 / 6,
        ),
        ("[Matched Findings]:   \n\n5. a", 1.0),  # \s* eats the blank line after the header
        (
            "[Clinically Significant Errors]:\r\n(b) x: 1. y\r\n\r\n[Matched Findings]:\r\n3. a",
            3 / 4,
        ),
        ("[Matched Findings]:\n3 findings.", 0.0),  # no "N." at the line start
        ("[matched findings]:\n3. a", 0.0),  # headers are case-sensitive
        ("[Clinically Significant Errors]:\n(b) x: 12. y\n\n[Matched Findings]:\n12. a", 0.5),
    ],
)
def test_malformed_answers(answer: str, expected: float) -> None:
    assert green.green_score(answer) == pytest.approx(expected)


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="category"):
        green.parse_counts(WELL_FORMED, "Matched")


def test_corpus_summary() -> None:
    answers = [WELL_FORMED, "[Matched Findings]:\n2. a", "garbage"]
    summary = green.summarize(answers)
    assert summary["per_sample"] == pytest.approx([0.6, 1.0, 0.0])
    assert summary["green"] == pytest.approx(1.6 / 3)
    mean = 1.6 / 3
    std = ((0.6 - mean) ** 2 + (1 - mean) ** 2 + mean**2) / 3
    assert summary["green_std"] == pytest.approx(std**0.5)
    assert summary["no_significant_error_rate"][SUBS[0]] == pytest.approx(2 / 3)
    raw = green.summarize(["<|assistant|>\n" + WELL_FORMED], cleaned=False)
    assert raw["per_sample"] == pytest.approx([0.6])
