"""The released MedVAL task instructions (StanfordMIMI/MedVAL `utils/task_prompts.json`, MIT).

Keys are the task names used by MedVAL-Bench; each value is the `instruction` field of the prompt.
"""

from __future__ import annotations

TASK_PROMPTS: dict[str, str] = {
    "report2simplified": (
        "Create a simplified, patient-friendly version of the reference.\n"
        "1. Reference Description: The original text containing medical terminology.\n"
        "2. Candidate Description: The simplified, patient-friendly, and easy-to-understand "
        "version of the text.\n"
    ),
    "impression2simplified": (
        "Create a simplified, patient-friendly version of the reference.\n"
        "1. Reference Description: The original text containing medical terminology.\n"
        "2. Candidate Description: The simplified, patient-friendly, and easy-to-understand "
        "version of the text.\n"
    ),
    "report2impression": (
        "Summarize the radiology report findings into an impression with minimal text.\n"
        "1. Reference Description: The findings section of the radiology report.\n"
        "2. Candidate Description: The impression section of the radiology report with minimal "
        "text.\n"
    ),
    "bhc2spanish": (
        "Translate the brief hospital course into Spanish.\n"
        "1. Reference Description: The brief hospital course section of the discharge note.\n"
        "2. Candidate Description: The Spanish-translated version of the brief hospital course.\n"
    ),
    "query2question": (
        "Summarize the patient health query into one question of 15 words or less.\n"
        "1. Reference Description: The patient health query.\n"
        "2. Candidate Description: The patient health question of 15 words or less.\n"
    ),
    "dialogue2note": (
        "Summarize the patient/doctor dialogue into an assessment and plan.\n"
        "1. Reference Description: The original patient/doctor dialogue.\n"
        "2. Candidate Description: The assessment and plan section.\n"
    ),
    "medication2answer": (
        "Answer the following medication-related patient health question.\n"
        "1. Reference Description: The medication-related patient health question.\n"
        "2. Candidate Description: The answer to the medication-related question.\n"
    ),
}
