"""Labelled inputs as tables (torch-free): a real CheXpert-style CSV and a synthetic imagefolder.

Real CSV: one row per image; `path` relative to the images root (or absolute / a URL); label
cells 1 (positive), 0 or blank (negative: not mentioned), -1 (uncertain: `uncertain` policy);
demographics in sex/age/race columns; an optional patient id.

Synthetic `metadata.jsonl` (what the `synthetic-dataset` job writes): its finding text maps to
real labels by this rule, first match wins:
1. a `labels` field in the row (a list of label names, or {name: 0/1});
2. `finding_map[finding]` when the job gives a map;
3. the finding split at commas/semicolons, each part equal to a label name ignoring case,
   spaces and punctuation ("Cardiomegaly." -> Cardiomegaly; "Edema; pleural effusion" -> both);
   "No acute cardiopulmonary process" (RoentGen's normal impression) -> "No Finding".
Named labels are positive, every other label negative. Rows that map to nothing are dropped
(and counted); when none maps, the input is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from core.errors import InvalidInput
from workers.training.params import CHEXPERT_LABELS, RealData, SyntheticData

NORMAL_IMPRESSIONS = ("no acute cardiopulmonary process", "no acute cardiopulmonary abnormality")
SEX_NAMES = {"m": "male", "male": "male", "f": "female", "female": "female"}
UNKNOWN = "unknown"


@dataclass
class Table:
    """Images with labels ([N, L], NaN = left out), demographics and patient ids."""

    paths: list[str]
    labels: np.ndarray
    label_names: list[str]
    sex: list[str]
    age: list[float | None]
    race: list[str]
    patient: list[str]
    split: list[str] | None = None
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> Table:
        pick = [int(i) for i in index]
        return Table(
            paths=[self.paths[i] for i in pick],
            labels=self.labels[pick],
            label_names=self.label_names,
            sex=[self.sex[i] for i in pick],
            age=[self.age[i] for i in pick],
            race=[self.race[i] for i in pick],
            patient=[self.patient[i] for i in pick],
            split=[self.split[i] for i in pick] if self.split else None,
        )

    def digest(self) -> str:
        """A short hash of paths and labels: a checkpoint is only resumed on the same data."""
        h = hashlib.sha256()
        h.update("\n".join(self.paths).encode())
        h.update(np.nan_to_num(self.labels, nan=-9).astype(np.float32).tobytes())
        return h.hexdigest()[:16]


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else ""


def resolve(path: str, root: str) -> str:
    """`path` as given when absolute or a URL, else joined to `root` (same filesystem)."""
    if "://" in path or path.startswith("/"):
        return path
    return f"{root.rstrip('/')}/{path.removeprefix('./')}" if root else path


def _read_text(url: str, what: str) -> str:
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isfile(root):
        raise InvalidInput(f"{what} {url!r} not found: give a file the runner can read")
    data: bytes = fs.cat_file(root)
    return data.decode("utf-8-sig")


def _label_value(cell: str, policy: str, where: str) -> float:
    text = cell.strip()
    if text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{where}: label value {cell!r} is not 1, 0, -1 or blank") from None
    if value == 1:
        return 1.0
    if value == 0:
        return 0.0
    if value == -1:
        return {"zeros": 0.0, "ones": 1.0, "ignore": math.nan}[policy]
    raise InvalidInput(f"{where}: label value {cell!r} is not 1, 0, -1 or blank")


def _age(cell: Any) -> float | None:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _sex(cell: Any) -> str:
    text = str(cell or "").strip().lower()
    return SEX_NAMES.get(text, text or UNKNOWN)


def _column(header: list[str], name: str | None, what: str) -> str | None:
    if name is None:
        return None
    if name not in header:
        raise InvalidInput(f"the CSV has no {what} column {name!r}; its columns: {header[:30]}")
    return name


def read_real(spec: RealData) -> Table:
    """The real dataset's rows, labels parsed, paths resolved; `InvalidInput` on a bad CSV."""
    text = _read_text(spec.csv, "real CSV")
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    rows = list(reader)
    if not header or not rows:
        raise InvalidInput(f"the real CSV {spec.csv!r} has no rows: the dataset is empty")
    path_col = _column(header, spec.path_column, "path")
    if spec.labels:
        missing = [name for name in spec.labels if name not in header]
        if missing:
            raise InvalidInput(
                f"the CSV has no label column(s) {missing}; its columns: {header[:30]}"
            )
        names = list(spec.labels)
    else:
        names = [name for name in CHEXPERT_LABELS if name in header]
        if not names:
            raise InvalidInput(
                "the CSV has none of the CheXpert label columns; list yours in `labels`"
            )
    cols = {
        k: _column(header, getattr(spec, f"{k}_column"), k)
        for k in ("sex", "age", "race", "patient", "split")
    }
    root = spec.images if spec.images is not None else spec.csv.rpartition("/")[0]
    labels = np.zeros((len(rows), len(names)), dtype=np.float32)
    paths = []
    for i, row in enumerate(rows):
        rel = (row.get(path_col) or "").strip() if path_col else ""
        if not rel:
            raise InvalidInput(f"CSV row {i + 2}: empty {spec.path_column!r}")
        paths.append(resolve(rel, root))
        for j, name in enumerate(names):
            labels[i, j] = _label_value(row.get(name) or "", spec.uncertain, f"CSV row {i + 2}")

    def values(key: str, convert: Any, default: Any) -> list[Any]:
        col = cols[key]
        return [convert(r.get(col)) for r in rows] if col else [default] * len(rows)

    return Table(
        paths=paths,
        labels=labels,
        label_names=names,
        sex=values("sex", _sex, UNKNOWN),
        age=values("age", _age, None),
        race=values("race", lambda c: str(c or "").strip() or UNKNOWN, UNKNOWN),
        patient=[
            str(r.get(cols["patient"]) or "").strip() or f"row{i}" if cols["patient"] else f"row{i}"
            for i, r in enumerate(rows)
        ],
        split=values("split", lambda c: str(c or "").strip().lower(), "")
        if cols["split"]
        else None,
    )


def map_finding(row: dict[str, Any], names: list[str], spec: SyntheticData) -> list[str]:
    """The real labels a synthetic row stands for (see the module docstring for the rule)."""
    by_norm = {normalise(n): n for n in names}
    given = row.get("labels")
    if isinstance(given, dict):
        given = [k for k, v in given.items() if v in (1, True, "1", 1.0)]
    if isinstance(given, list):
        return [by_norm[normalise(str(g))] for g in given if normalise(str(g)) in by_norm]
    finding = str(row.get("finding") or "")
    if spec.finding_map is not None:
        targets = spec.finding_map.get(finding)
        if targets is None:
            targets = {normalise(k): v for k, v in spec.finding_map.items()}.get(
                normalise(finding), []
            )
        return [by_norm[normalise(t)] for t in targets if normalise(t) in by_norm]
    if normalise(finding) in NORMAL_IMPRESSIONS and "no finding" in by_norm:
        return [by_norm["no finding"]]
    parts = [normalise(p) for p in re.split(r"[,;]", finding) if normalise(p)]
    if parts and all(p in by_norm for p in parts):
        return [by_norm[p] for p in parts]
    return []


def read_synthetic(spec: SyntheticData, names: list[str], no_finding: str) -> Table:
    """Synthetic rows mapped onto the real label set; `InvalidInput` when nothing overlaps."""
    root = spec.folder.rstrip("/")
    text = _read_text(f"{root}/metadata.jsonl", "synthetic metadata")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        raise InvalidInput(f"the synthetic dataset {spec.folder!r} is empty (no metadata rows)")
    kept: list[tuple[dict[str, Any], list[str]]] = []
    unmapped: dict[str, int] = {}
    for row in rows:
        targets = map_finding(row, names, spec)
        if targets and "file_name" in row:
            kept.append((row, targets))
        else:
            key = str(row.get("finding"))
            unmapped[key] = unmapped.get(key, 0) + 1
    if not kept:
        sample = sorted(unmapped)[:5]
        raise InvalidInput(
            f"no synthetic finding maps to a real label {names}: findings {sample}; name "
            "findings after the label columns, add a `labels` field, or give `finding_map`"
        )
    labels = np.zeros((len(kept), len(names)), dtype=np.float32)
    for i, (_, targets) in enumerate(kept):
        for t in targets:
            labels[i, names.index(t)] = 1.0
        if no_finding in names and any(t != no_finding for t in targets):
            labels[i, names.index(no_finding)] = 0.0
    table = Table(
        paths=[resolve(r["file_name"], root) for r, _ in kept],
        labels=labels,
        label_names=names,
        sex=[_sex(r.get("sex")) for r, _ in kept],
        age=[_age(r.get("age")) for r, _ in kept],
        race=[str(r.get("race") or UNKNOWN) for r, _ in kept],
        patient=[f"synthetic{i}" for i in range(len(kept))],
        dropped=len(rows) - len(kept),
    )
    table.extra["unmapped"] = unmapped
    return table


def check_files(paths: list[str], what: str, sample: int = 3) -> None:
    """Cheap existence check of the first few files (submit time: no image is decoded)."""
    for path in paths[:sample]:
        fs, real = fsspec.core.url_to_fs(path)
        if not fs.isfile(real):
            raise InvalidInput(
                f"{what} file {path!r} not found: check the images root / the paths column"
            )
