"""`synthetic-qc`: the QC checks of `synthetic-dataset` over an existing imagefolder dataset.

The source is an imagefolder (a folder with `metadata.jsonl` or `metadata.csv`, or that file
itself): each row names its image (`file_name`) and what it was generated to show: `finding`
(or `impression`, `impression_short`), `sex` (or `gender`: female/male/F/M), `age` (or
`anchor_age`), `race`, or just the RoentGen `prompt` ("{age} year old [{RACE}] {sex}.
{finding}", `prompt_variation` too), which fills what the columns leave out. Rows of the
released RoentGen-v2 prompt CSV (`dicom_id`, `gender`, `anchor_age`, `race`, `impression_short`,
`prompt_variation`) name the image the release writes, `{dicom_id}_0.jpg`. Each shard checks its
images through the workers at batch priority and writes its rows last; the report is built
from the finished shards (`qc.json`, `qc.md`, `qc_images.jsonl`, plots, `rejected.jsonl`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import fsspec
from pydantic import Field, model_validator

from core.errors import InvalidInput
from workers.jobs.qc.params import QCChecks
from workers.jobs.types import JobParams, JobType

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

MAX_IMAGES = 1_000_000
METADATA = ("metadata.jsonl", "metadata.csv")
PROMPT = re.compile(
    r"^\s*(\d{1,3})\s+year\s+old\s+(?:([A-Za-z]+)\s+)?(female|male)\s*\.\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
SEX_WORDS = {"f": "female", "female": "female", "m": "male", "male": "male"}
DEFAULT_BINS = [(18, 39), (40, 59), (60, 79), (80, 95)]


class SyntheticQCParams(JobParams):
    source: str = Field(
        ...,
        min_length=1,
        description="An imagefolder dataset (folder path or fsspec URL with metadata.jsonl or "
        "metadata.csv), or the metadata file itself; e.g. a synthetic-dataset job's folder.",
    )
    qc: QCChecks = Field(default_factory=QCChecks, description="Checks, models, thresholds.")
    age_bins: list[tuple[int, int]] = Field(
        DEFAULT_BINS, min_length=1, description="Subgroups of age, for rows without `age_bin`."
    )
    limit: int | None = Field(None, ge=1, le=MAX_IMAGES, description="Check the first N rows.")
    concurrency: int = Field(8, ge=1, le=64, description="Images in flight per QC worker.")

    @model_validator(mode="after")
    def _bins(self) -> SyntheticQCParams:
        if any(not 0 <= lo <= hi <= 120 for lo, hi in self.age_bins):
            raise ValueError("each age bin is [low, high] with 0 <= low <= high <= 120")
        return self


def _first(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return value
    return None


def asked_from(row: dict[str, Any], bins: list[Any]) -> dict[str, Any]:
    """finding, sex, age, race and age_bin of one metadata row (columns, else the prompt)."""
    prompt = _first(row, "prompt", "prompt_variation", "text")
    parsed = PROMPT.match(str(prompt)) if prompt else None
    age_text, race, sex, finding = parsed.groups() if parsed else (None, None, None, None)
    finding = _first(row, "finding", "impression", "impression_short") or finding
    sex_word = str(_first(row, "sex", "gender") or sex or "").strip().lower()
    age = _first(row, "age", "anchor_age")
    age = float(age) if age is not None else (float(age_text) if age_text else None)
    race = _first(row, "race") or race
    age_bin = _first(row, "age_bin")
    if age_bin is None and age is not None:
        age_bin = next((f"{lo}-{hi}" for lo, hi in bins if lo <= age <= hi), "other")
    return {
        "prompt": prompt,
        "finding": str(finding).strip() if finding else None,
        "sex": SEX_WORDS.get(sex_word),
        "age": age,
        "race": str(race).strip().upper() if race else None,
        "age_bin": age_bin,
    }


def read_metadata(source: str) -> tuple[str, list[dict[str, Any]]]:
    """(folder URL, rows) of an imagefolder's metadata.jsonl / metadata.csv."""
    fs, root = fsspec.core.url_to_fs(source)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if fs.isdir(root):
        found = [f"{root.rstrip('/')}/{name}" for name in METADATA]
        found = [path for path in found if fs.isfile(path)]
        if not found:
            raise InvalidInput("source folder has no metadata.jsonl or metadata.csv")
        path = found[0]
    elif fs.isfile(root) and root.lower().endswith((".jsonl", ".csv")):
        path = root
    else:
        raise InvalidInput("source must be an imagefolder folder or its metadata .jsonl/.csv")
    text = fs.cat_file(path).decode()
    if path.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise InvalidInput(f"{path.rsplit('/', 1)[-1]} is not JSON lines") from None
    return protocol + path.rsplit("/", 1)[0], rows


class SyntheticQCJob(JobType):
    name = "synthetic-qc"
    Params = SyntheticQCParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        folder, rows = read_metadata(ctx.params["source"])
        rows = rows[: ctx.params["limit"]] if ctx.params.get("limit") else rows
        if not rows:
            raise InvalidInput("the metadata lists no images")
        if len(rows) > MAX_IMAGES:
            raise InvalidInput(f"the metadata lists more than {MAX_IMAGES} images; set limit")
        items = []
        for index, row in enumerate(rows):
            name = _first(row, "file_name")
            if name is None and _first(row, "dicom_id"):
                name = f"{row['dicom_id']}_0.jpg"  # what the released inference code writes
            if name is None:
                raise InvalidInput(f"metadata row {index} has no file_name")
            items.append({"index": index, "file_name": str(name),
                          "path": f"{folder}/{str(name).lstrip('/')}",
                          **asked_from(row, ctx.params["age_bins"])})  # fmt: skip
        return items

    def _check(self, ctx: JobContext, checker: Any, item: dict[str, Any]) -> dict[str, Any]:
        from workers.jobs.qc.stage import asked

        row = {k: v for k, v in item.items() if k != "path"}
        try:
            with fsspec.open(item["path"], "rb") as handle:
                data = handle.read()
        except (OSError, ValueError):
            return {**row, "qc_error": "image file could not be read", "qc_failed": ["error"],
                    "qc_passed": False, "qc_attempt": 0}  # fmt: skip
        return {**row, **checker.check(data, asked(item)), "qc_attempt": 0}

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        from workers.jobs.qc.checks import Checker
        from workers.jobs.qc.stage import write_checker

        checker = Checker(ctx.models, ctx.params["qc"])
        rows = []
        in_flight = int(ctx.params["concurrency"]) * checker.replicas()
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            for row in pool.map(lambda item: self._check(ctx, checker, item), items):
                rows.append(row)
                ctx.item_done()
        write_checker(ctx, shard, checker, rows)
        return {"passed": sum(bool(r["qc_passed"]) for r in rows)}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        from workers.jobs.qc import stage

        rows, meta = stage.merged(ctx, done)
        rows.sort(key=lambda r: r["index"])
        ctx.artifacts.write_text(stage.REJECTED, stage.jsonl([r for r in rows
                                                              if not r["qc_passed"]]))  # fmt: skip
        extra = {**meta, "source": ctx.params["source"], "planned": len(plan)}
        summary = stage.publish(ctx, rows, ctx.params["qc"], extra, "Synthetic dataset QC report")
        summary["planned"] = len(plan)
        return summary
