"""SMMILE problems from a local copy in the released layout, and a tiny copy for tests.

Released layout (HF `smmile/SMMILE`, one `train` split of parquet files): one row per
question-image-answer triplet with `question, answer, image, image_url, problem_id, order,
parquet_path, speciality, flag_answer_format, flag_image_type, flag_cognitive_process,
flag_rarity, flag_difficulty_llms`; `image` is the datasets Image struct {bytes, path}.
As upstream `inference_and_evaluation/utils.py` (`load_data`, `process_data`) does: rows are
grouped by `problem_id` in first-seen order and sorted by `order`; the last row is the query,
the earlier ones the in-context examples; a problem with any image missing is skipped.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, NotFound

FLAGS = (
    "flag_answer_format",
    "flag_image_type",
    "flag_cognitive_process",
    "flag_rarity",
    "flag_difficulty_llms",
)
COLUMNS = (
    "question",
    "answer",
    "image",
    "image_url",
    "problem_id",
    "order",
    "parquet_path",
    "speciality",
    *FLAGS,
)


@dataclass(frozen=True)
class Example:
    """One question-image-answer triplet; `image` holds the encoded file (PNG/JPEG) or None."""

    question: str
    answer: str
    image: bytes | None
    problem_id: str
    order: int
    image_url: str = ""
    speciality: str = ""
    flags: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A problem: in-context examples then the query, sorted by `order`."""

    problem_id: str
    examples: tuple[Example, ...]

    @property
    def query(self) -> Example:
        return self.examples[-1]

    @property
    def icl(self) -> tuple[Example, ...]:
        return self.examples[:-1]

    def with_icl(self, icl: Iterable[Example]) -> Problem:
        """The same query with other in-context examples (for the ablations)."""
        return replace(self, examples=(*icl, self.query))


def _image_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        data = value.get("bytes")
        if data:
            return bytes(data)
        path = value.get("path")
        if path and Path(path).is_file():
            return Path(path).read_bytes()
        return None
    raise InvalidInput(f"the image column holds {type(value).__name__}; expected the Image struct")


def _example(row: dict[str, Any]) -> Example:
    missing = [c for c in ("question", "answer", "image", "problem_id", "order") if c not in row]
    if missing:
        raise InvalidInput(f"the SMMILE rows lack {', '.join(missing)}; columns: {COLUMNS}")
    return Example(
        question=str(row["question"]),
        answer=str(row["answer"]),
        image=_image_bytes(row["image"]),
        problem_id=str(row["problem_id"]),
        order=int(row["order"]),
        image_url=str(row.get("image_url") or ""),
        speciality=str(row.get("speciality") or ""),
        flags={f: None if row[f] is None else str(row[f]) for f in FLAGS if f in row},
    )


def group(rows: Iterable[dict[str, Any]], skip_missing_images: bool = True) -> list[Problem]:
    """Problems from rows: grouped by problem_id (first-seen order), sorted by order."""
    by_id: dict[str, list[Example]] = {}
    for row in rows:
        example = _example(row)
        by_id.setdefault(example.problem_id, []).append(example)
    problems = []
    for pid, examples in by_id.items():
        examples.sort(key=lambda e: e.order)
        if skip_missing_images and any(e.image is None for e in examples):
            continue
        problems.append(Problem(pid, tuple(examples)))
    return problems


def _parquet_files(source: str) -> tuple[Any, list[str]]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    if not fs.exists(path):
        raise NotFound(f"{source} does not exist; give the SMMILE folder or a parquet file")
    files = sorted(p for p in fs.find(path) if p.endswith(".parquet")) if fs.isdir(path) else [path]
    if not files:
        raise NotFound(f"{source} holds no parquet file; the released copy has data/*.parquet")
    return fs, files


def read_rows(source: str | Path) -> list[dict[str, Any]]:
    """All rows of every parquet file under `source` (a folder, a file or an fsspec URL)."""
    import pyarrow.parquet as pq

    fs, files = _parquet_files(str(source))
    rows: list[dict[str, Any]] = []
    for name in files:
        with fs.open(name, "rb") as handle:
            rows += pq.read_table(handle).to_pylist()
    return rows


def load_problems(source: str | Path, skip_missing_images: bool = True) -> list[Problem]:
    """The problems of a local SMMILE (or SMMILE++) copy, in upstream order."""
    return group(read_rows(source), skip_missing_images)


def _png(rng: random.Random, size: int = 8) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    image.putpixel((0, 0), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


TINY_PROBLEMS = [
    # speciality, image type, [(question, answer), ...] (the last one is the query)
    ("radiology", "X-Ray", [("Which side is the effusion?", "Left"),
                            ("Which side is the effusion?", "Right"),
                            ("Which side is the effusion?", "Left")]),
    ("dermatology", "Photograph", [("What is the lesion?", "Melanoma."),
                                   ("What is the lesion?", "Nevus"),
                                   ("What is the lesion?", "Nevus"),
                                   ("What is the lesion?", "Melanoma")]),
    ("pathology", "Staining", [("Is this malignant?", "No"), ("Is this malignant?", "Yes")]),
]  # fmt: skip


def tiny_rows(seed: int = 0, missing_image: bool = False) -> list[dict[str, Any]]:
    """Rows of a tiny SMMILE copy (small PNGs), shuffled so grouping and sorting matter; with
    `missing_image`, a fourth problem whose query image is absent."""
    rng = random.Random(seed)
    specs = list(TINY_PROBLEMS)
    if missing_image:
        specs.append(("ophthalmology", "Fundus Photograph", [("Q?", "A"), ("Q?", "B")]))
    rows = []
    for p, (speciality, image_type, pairs) in enumerate(specs):
        for order, (question, answer) in enumerate(pairs):
            absent = missing_image and p == len(specs) - 1 and order == len(pairs) - 1
            rows.append(
                {
                    "question": question,
                    "answer": answer,
                    "image": None if absent else {"bytes": _png(rng), "path": f"{p}_{order}.png"},
                    "image_url": f"https://example.org/{p}/{order}.png",
                    "problem_id": f"problem-{p}",
                    "order": order,
                    "parquet_path": f"data/{p}_{order}.parquet",
                    "speciality": speciality,
                    "flag_answer_format": "free response",
                    "flag_image_type": image_type,
                    "flag_cognitive_process": "classification/diagnosis",
                    "flag_rarity": "common",
                    "flag_difficulty_llms": "medium",
                }
            )
    head, tail = rows[:2], rows[2:]
    rng.shuffle(tail)  # problem-0 stays first seen
    return head + tail


def write_tiny_dataset(folder: str | Path, **options: Any) -> Path:
    """Write `tiny_rows(**options)` as `folder/data/train-00000-of-00001.parquet` with the
    datasets feature metadata (Image for `image`, int64 for `order`, strings elsewhere)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = tiny_rows(**options)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {c: pa.string() for c in COLUMNS} | {"image": image, "order": pa.int64()}
    schema = pa.schema(list(types.items()))
    features = {c: {"dtype": str(t), "_type": "Value"} for c, t in types.items()}
    features["image"] = {"_type": "Image"}
    schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path = Path(folder) / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path
