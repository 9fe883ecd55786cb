"""The MedVAL prompt is byte for byte what the released DSPy pipeline sends."""

import pytest

from tests.harness import ROOT
from workers.medval.prompt import CATEGORY_NAMES, build_messages, resolve_instruction
from workers.medval.tasks import TASK_PROMPTS

# Rendered with dspy 2.6.14's ChatAdapter from StanfordMIMI/MedVAL's MedVAL_Validator signature
# (task report2impression, reference REF_TEXT, candidate CAND_TEXT). The last line of the file
# ("OUTPUT FIELDS: ...") is the renderer's own trailer, not part of the user message.
RENDERED = ROOT / "tests" / "data" / "medval" / "prompt_rendered_report2impression.txt"


def _released() -> tuple[str, str]:
    text = RENDERED.read_text(encoding="utf-8")
    system, _, user = text.partition("\n===== user\n")
    return system.removeprefix("===== system\n"), user.rsplit("\nOUTPUT FIELDS:", 1)[0]


def test_messages_match_the_released_rendering_byte_for_byte() -> None:
    system, user = _released()
    instruction, key = resolve_instruction("report2impression")
    assert key == "report2impression"
    messages = build_messages(instruction, "REF_TEXT", "CAND_TEXT")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"].encode() == system.encode()
    assert messages[1]["content"].encode() == user.encode()


def test_the_seven_released_tasks_and_eleven_categories() -> None:
    assert set(TASK_PROMPTS) == {
        "report2simplified", "impression2simplified", "report2impression", "bhc2spanish",
        "query2question", "dialogue2note", "medication2answer",
    }  # fmt: skip
    assert len(CATEGORY_NAMES) == 11
    assert CATEGORY_NAMES[0] == "Fabricated claim" and CATEGORY_NAMES[-1] == "Other"


@pytest.mark.parametrize("task", sorted(TASK_PROMPTS))
def test_task_instruction_lands_in_the_instruction_section(task: str) -> None:
    instruction, key = resolve_instruction(task)
    user = build_messages(instruction, "r", "c")[1]["content"]
    assert key == task
    assert user.startswith(
        f"[[ ## instruction ## ]]\n{TASK_PROMPTS[task]}\n\n[[ ## reference ## ]]\nr"
    )


def test_free_instruction_is_sent_verbatim() -> None:
    instruction, key = resolve_instruction("Translate the discharge summary into French.")
    assert key is None
    user = build_messages(instruction, "ref", "cand")[1]["content"]
    assert "[[ ## instruction ## ]]\nTranslate the discharge summary into French.\n\n" in user
    assert "[[ ## candidate ## ]]\ncand\n\n" in user
