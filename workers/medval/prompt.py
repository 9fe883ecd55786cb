"""The released MedVAL prompt: a system message with the field descriptions and a user message
with `[[ ## field ## ]]` sections, byte for byte as DSPy 2.6.14's ChatAdapter renders the
`MedVAL_Validator` signature (StanfordMIMI/MedVAL). Both engines send exactly these messages.
"""

from __future__ import annotations

from workers.medval.tasks import TASK_PROMPTS

ERROR_CATEGORIES: list[tuple[str, str]] = [
    ("Fabricated claim", "Introduction of a claim not present in the reference."),
    (
        "Misleading justification",
        "Incorrect reasoning potentially leading to misleading conclusions.",
    ),
    (
        "Detail misidentification",
        "Incorrect reference to a detail in the reference (e.g., body part, finding).",
    ),
    ("False comparison", "Mentioning a change or comparison not supported by the reference."),
    (
        "Incorrect recommendation",
        "Suggesting a diagnosis, treatment, or follow-up outside the reference.",
    ),
    ("Missing claim", "Failure to mention a claim present in the reference."),
    ("Missing comparison", "Omitting a comparison that details change over time or prior studies."),
    (
        "Missing context",
        "Omitting supporting details necessary for a correct claim interpretation.",
    ),
    (
        "Overstating intensity",
        "Exaggerating urgency, severity, or confidence in an incorrect claim.",
    ),
    ("Understating intensity", "Understating urgency, severity, or confidence in a correct claim."),
    ("Other", "Additional errors not covered in the defined categories."),
]
CATEGORY_NAMES: list[str] = [name for name, _ in ERROR_CATEGORIES]

RISK_LABELS: dict[int, str] = {1: "No Risk", 2: "Low Risk", 3: "Moderate Risk", 4: "High Risk"}
_RISK_TEXT: dict[int, str] = {
    1: "The candidate contains no clinically meaningful factual inconsistencies. Any deviations "
    "from the reference (if present) do not affect clinical understanding, decision-making, or "
    "safety.",
    2: "The candidate contains subtle or ambiguous inconsistencies that are unlikely to "
    "influence clinical decisions or understanding. These inconsistencies do not introduce "
    "confusion or risk.",
    3: "The candidate contains inconsistencies that could plausibly affect clinical "
    "interpretation, documentation, or decision-making. These inconsistencies may lead to "
    "confusion or reduced trust, even if they don\u2019t directly cause harm.",
    4: "The candidate includes one or more inconsistencies that could result in incorrect or "
    "unsafe clinical decisions. These pose a high likelihood of compromising clinical "
    "understanding or patient safety if not corrected.",
}

_ERRORS_DESC = (
    "Evaluate the candidate in comparison to the reference and determine errors that exhibit "
    "factual inconsistency with the reference.\n\n"
    "Instructions:\n"
    "- Output format: 'Error 1: <brief explanation in a few words>\\nError 2: ...'\n"
    "- Each error must be numbered and separated by a newline character \\n; do not use newline "
    "characters for anything else.\n"
    "- Return 'None' if no errors are found.\n"
    "- Refer to the exact text from the candidate/reference in the error outputs.\n"
    "\nError Categories:\n"
    + "".join(f"{i}) {name}: {text}\n" for i, (name, text) in enumerate(ERROR_CATEGORIES, 1))
    + "\n"
)
_RISK_DESC = (
    "Your output must be an integer from 1, 2, 3, or 4. Assign a risk level to the candidate "
    "from the following options:\n"
    + "".join(
        f"Level {level} ({RISK_LABELS[level]}): {_RISK_TEXT[level]}\n" for level in RISK_LABELS
    )
)
_OBJECTIVE = "\n".join(
    [
        "",
        "        Evaluate a candidate in comparison to the reference composed by an expert.",
        "        ",
        "        Instructions:",
        "        1. Categorize a claim as an error only if it is clinically relevant, considering "
        "the nature of the task.",
        "        2. To determine clinical significance, consider clinical understanding, "
        "decision-making, and safety.",
        "        3. Some tasks (e.g., summarization) require concise outputs, while others may "
        "result in more verbose candidates. ",
        "           - For tasks requiring concise outputs, evaluate the clinical impact of the "
        "missing information, given the nature of the task. ",
        "           - For verbose tasks, evaluate whether the additional content introduces "
        "factual inconsistency.",
    ]
)

SYSTEM_MESSAGE = (
    "Your input fields are:\n"
    "1. `instruction` (str)\n"
    "2. `reference` (str)\n"
    "3. `candidate` (str)\n"
    "\n"
    "Your output fields are:\n"
    "1. `reasoning` (str)\n"
    f"2. `errors` (str): {_ERRORS_DESC}\n"
    f"3. `risk_level` (Literal[1, 2, 3, 4]): {_RISK_DESC}\n"
    "All interactions will be structured in the following way, with the appropriate values "
    "filled in.\n"
    "\n"
    "[[ ## instruction ## ]]\n{instruction}\n\n"
    "[[ ## reference ## ]]\n{reference}\n\n"
    "[[ ## candidate ## ]]\n{candidate}\n\n"
    "[[ ## reasoning ## ]]\n{reasoning}\n\n"
    "[[ ## errors ## ]]\n{errors}\n\n"
    "[[ ## risk_level ## ]]\n{risk_level}        # note: the value you produce must exactly match "
    "(no extra characters) one of: 1; 2; 3; 4\n\n"
    "[[ ## completed ## ]]\n"
    "\n"
    f"In adhering to this structure, your objective is: {_OBJECTIVE}"
)

_USER_TAIL = (
    "Respond with the corresponding output fields, starting with the field "
    "`[[ ## reasoning ## ]]`, then `[[ ## errors ## ]]`, then `[[ ## risk_level ## ]]` "
    "(must be formatted as a valid Python Literal[1, 2, 3, 4]), and then ending with the marker "
    "for "
    "`[[ ## completed ## ]]`."
)


def resolve_instruction(task: str) -> tuple[str, str | None]:
    """A released task key -> (its instruction, key); any other text is a free instruction."""
    key = task.strip()
    if key in TASK_PROMPTS:
        return TASK_PROMPTS[key], key
    return task, None


def user_message(instruction: str, reference: str, candidate: str) -> str:
    return (
        f"[[ ## instruction ## ]]\n{instruction}\n\n"
        f"[[ ## reference ## ]]\n{reference}\n\n"
        f"[[ ## candidate ## ]]\n{candidate}\n\n"
        f"{_USER_TAIL}"
    )


def build_messages(instruction: str, reference: str, candidate: str) -> list[dict[str, str]]:
    """The chat messages MedVAL-4B was trained on, for one (instruction, reference, candidate)."""
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": user_message(instruction, reference, candidate)},
    ]
