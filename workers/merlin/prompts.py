"""Merlin's label tables and prompts (torch-free, importable by a contract module).

- phenotypes: `data/phenotypes.csv` (1,692 phecodes; row i = output i), from the repository's
  `documentation/phenotypes.csv`.
- five-year diseases: the order of `documentation/demo.py`.
- report prompts: one per organ system, `documentation/report_generation_demo.py`.
- zero-shot findings: `data/zero_shot_prompts.json` (see its `provenance`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"

FIVE_YEAR_DISEASES: tuple[tuple[str, str], ...] = (
    ("CVD", "Cardiovascular Disease"),
    ("IHD", "Ischemic Heart Disease"),
    ("HTN", "Hypertension"),
    ("DM", "Diabetes Mellitus"),
    ("CKD", "Chronic Kidney Disease"),
    ("CLD", "Chronic Liver Disease"),
)

# The 13 canonical organ systems of the released demo, in its order.
ORGAN_SYSTEMS: tuple[str, ...] = (
    "lower thorax",
    "liver",
    "gallbladder",
    "spleen",
    "pancreas",
    "adrenal glands",
    "kidneys",
    "bowel",
    "peritoneum",
    "pelvic",
    "circulatory",
    "lymph nodes",
    "musculoskeletal",
)
REPORT_PROMPT = "Generate a radiology report for {organ}###\n"
REPORT_SEPARATOR = "###"
# Token-id stop sequence of the released demo (EosListStoppingCriteria). It lies beyond
# RadLLaMA-7b's 32,000-token vocabulary, so with the released model it never fires and a
# report ends at EOS or after max_new_tokens.
STOP_SEQUENCE: tuple[int, ...] = (48134,)
MAX_NEW_TOKENS = 128
REPETITION_PENALTY = 1.2


def report_prompt(organ: str) -> str:
    return REPORT_PROMPT.format(organ=organ)


def split_report(text: str) -> str:
    """The organ system's text: what precedes the first '###' (as released), stripped."""
    return text.split(REPORT_SEPARATOR)[0].strip()


@dataclass(frozen=True)
class Phenotype:
    code: str
    name: str


@lru_cache(maxsize=1)
def phenotypes() -> tuple[Phenotype, ...]:
    with (DATA / "phenotypes.csv").open(newline="") as handle:
        return tuple(
            Phenotype(row["phecode"], row["phecode_str"]) for row in csv.DictReader(handle)
        )


@dataclass(frozen=True)
class Finding:
    """A finding scored zero-shot: mean similarity to `positive` against mean to `negative`."""

    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    region: str = ""


@lru_cache(maxsize=1)
def builtin_findings() -> tuple[Finding, ...]:
    doc = json.loads((DATA / "zero_shot_prompts.json").read_text())
    return tuple(
        Finding(f["name"], tuple(f["positive"]), tuple(f["negative"]), f.get("region", ""))
        for f in doc["findings"]
    )
