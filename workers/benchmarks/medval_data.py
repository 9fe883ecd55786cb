"""MedVAL-Bench rows from a local copy, and a small synthetic copy in the same layout for tests.

Released layout (HF `stanfordmimi/MedVAL-Bench`, CSV files per split, `data/{train,test}.csv`):
`#, id, task, input, reference_output, output, physician_error_assessment, physician_risk_grade`.
A results file written by the upstream `run.py` adds `lm_reasoning, lm_error_assessment,
lm_risk_grade`. A copy may be a folder of CSVs, one CSV, an fsspec URL to either, or a folder
written by `datasets.save_to_disk`.
"""

from __future__ import annotations

import csv
import io
import random
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, NotFound

COLUMNS = (
    "#",
    "id",
    "task",
    "input",
    "reference_output",
    "output",
    "physician_error_assessment",
    "physician_risk_grade",
)
RESULT_COLUMNS = ("lm_reasoning", "lm_error_assessment", "lm_risk_grade")
REQUIRED = ("task", "input", "output")
# Tasks with an expert reference output (dataset card); the other two have none.
TASKS_WITH_REFERENCE = ("dialogue2note", "medication2answer", "query2question", "report2impression")
TASKS = (*TASKS_WITH_REFERENCE, "impression2simplified", "bhc2spanish")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # dialogue2note inputs are long


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _check(rows: list[dict[str, str]], where: str) -> list[dict[str, str]]:
    if not rows:
        raise InvalidInput(f"{where} holds no rows; give the CSV of a MedVAL-Bench split")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise InvalidInput(
            f"{where} lacks the column(s) {', '.join(missing)}; MedVAL-Bench CSVs have "
            f"{', '.join(COLUMNS)}"
        )
    return rows


def read_csv_text(handle: Iterable[str], where: str = "the CSV") -> list[dict[str, str]]:
    """Rows of a CSV (header line first) as dicts of strings."""
    reader = csv.DictReader(handle)
    return _check([{k: _text(v) for k, v in row.items() if k is not None} for row in reader], where)


def _pick_csv(candidates: list[str], split: str, where: str) -> str:
    named = [c for c in candidates if c.replace("\\", "/").rsplit("/", 1)[-1] == f"{split}.csv"]
    if len(named) == 1:
        return named[0]
    if not named and len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFound(f"{where} holds no CSV file; the released copy has data/{split}.csv")
    raise InvalidInput(
        f"{where} holds several CSV files ({', '.join(sorted(candidates)[:5])}); name the one "
        f"to read, or keep a single {split}.csv"
    )


def _load_saved(folder: Path, split: str) -> list[dict[str, str]]:
    import datasets  # only for copies written by save_to_disk

    saved = datasets.load_from_disk(str(folder))
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise NotFound(f"{folder} has the splits {', '.join(saved)}, not {split!r}")
        saved = saved[split]
    rows = [{k: _text(v) for k, v in row.items()} for row in saved.to_list()]
    return _check(rows, str(folder))


def _load_url(url: str, split: str) -> list[dict[str, str]]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise NotFound(f"{url} does not exist")
    if fs.isdir(path):
        found = [p for p in fs.find(path) if p.lower().endswith(".csv")]
        path = _pick_csv(found, split, url)
    with fs.open(path, "r", encoding="utf-8", newline="") as handle:
        return read_csv_text(handle, url)


def load_rows(source: str | Path, split: str = "test") -> list[dict[str, str]]:
    """All rows of one split of a MedVAL-Bench copy (see the module docstring for the forms)."""
    text = str(source)
    if "://" in text and not text.startswith("file://"):
        return _load_url(text, split)
    path = Path(text.removeprefix("file://"))
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return _load_saved(path, split)
        found = [str(p) for p in sorted(path.rglob("*.csv"))]
        path = Path(_pick_csv(found, split, str(path)))
    if not path.is_file():
        raise NotFound(f"{path} does not exist; give a folder of CSVs, a CSV or an fsspec URL")
    with path.open(encoding="utf-8", newline="") as handle:
        return read_csv_text(handle, str(path))


def _fake_text(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


_WORDS = [
    *("lung", "heart", "effusion", "pleural", "opacity", "normal"),
    *("mild", "stable", "dose", "daily", "patient", "pain"),
]
_ERRORS = [
    "Error 1: Fabricated claim - the candidate adds a small pleural effusion",
    "Error 1: Missing claim - omits the stable nodule\nError 2: Overstating intensity - 'severe'",
    "Error 1: Detail misidentification - left instead of right",
    "Error 1: Hallucination - the dose is a fabricated claim",
    "Error 1: Understating intensity - calls the fracture minor",
]


def synthetic_rows(
    n_per_task: int = 4, seed: int = 0, tasks: Iterable[str] = TASKS, predictions: bool = False
) -> list[dict[str, str]]:
    """Rows in the released column layout with random text, grades 1-4 and error assessments;
    with `predictions`, also the upstream result columns (`lm_*`), the model agreeing often."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for task in tasks:
        for i in range(n_per_task):
            grade = rng.randint(1, 4)
            row = {
                "#": str(len(rows) + 1),
                "id": str(i + 1),
                "task": task,
                "input": _fake_text(rng, _WORDS, 12),
                "reference_output": (
                    _fake_text(rng, _WORDS, 6) if task in TASKS_WITH_REFERENCE else ""
                ),
                "output": _fake_text(rng, _WORDS, 6),
                "physician_error_assessment": "None" if grade == 1 else rng.choice(_ERRORS),
                "physician_risk_grade": str(grade),
            }
            if predictions:
                lm = grade if rng.random() < 0.6 else rng.randint(1, 4)
                row["lm_reasoning"] = "The candidate was compared with the reference."
                row["lm_error_assessment"] = "None" if lm == 1 else rng.choice(_ERRORS)
                row["lm_risk_grade"] = str(lm)
            rows.append(row)
    return rows


def rows_to_csv(rows: list[Mapping[str, str]]) -> str:
    """CSV text with the released columns first, then any extra ones in first-seen order."""
    extra = [k for row in rows for k in row if k not in COLUMNS]
    fields = list(COLUMNS) + list(dict.fromkeys(extra))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in fields})
    return out.getvalue()


def write_synthetic_csv(path: str | Path, **options: Any) -> Path:
    """Write `synthetic_rows(**options)` as a CSV at `path` (e.g. `copy/data/test.csv`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rows_to_csv(synthetic_rows(**options)), encoding="utf-8")
    return path
