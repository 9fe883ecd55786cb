"""Reading the real CSV and the synthetic imagefolder; the finding -> label rule; input errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import InvalidInput
from workers.training.params import RealData, SyntheticData
from workers.training.sources import map_finding, read_real, read_synthetic

LABELS = ["No Finding", "Cardiomegaly", "Pleural Effusion"]


def write_csv(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "labels.csv"
    path.write_text(text)
    return path


CSV = (
    "Path,Sex,Age,Race,PatientID,No Finding,Cardiomegaly,Pleural Effusion\n"
    "a/1.png,Male,61,WHITE,P1,,1,-1\n"
    "a/2.png,F,,BLACK,P1,1,0,\n"
    "/abs/3.png,female,40.5,,,,-1.0,1.0\n"
)


def test_real_csv_labels_demographics_and_paths(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path, CSV)
    table = read_real(RealData(csv=str(csv_path), patient_column="PatientID"))
    assert table.label_names == LABELS  # CheXpert columns found in the CSV, in CheXpert order
    assert table.labels.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]  # -1 -> 0 (U-zeros)
    assert table.paths == [f"{tmp_path}/a/1.png", f"{tmp_path}/a/2.png", "/abs/3.png"]
    assert table.sex == ["male", "female", "female"]
    assert table.age == [61.0, None, 40.5]
    assert table.race == ["WHITE", "BLACK", "unknown"]
    assert table.patient == ["P1", "P1", "row2"]  # a blank patient id stays its own patient


@pytest.mark.parametrize(("policy", "expected"), [("ones", 1.0), ("ignore", math.nan)])
def test_uncertain_policy(tmp_path: Path, policy: str, expected: float) -> None:
    table = read_real(RealData(csv=str(write_csv(tmp_path, CSV)), uncertain=policy))
    value = table.labels[0, 2]
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_images_root_and_url(tmp_path: Path) -> None:
    table = read_real(RealData(csv=f"file://{write_csv(tmp_path, CSV)}", images="memory://cxr"))
    assert table.paths[0] == "memory://cxr/a/1.png"


def test_missing_label_column_is_named(tmp_path: Path) -> None:
    spec = RealData(csv=str(write_csv(tmp_path, CSV)), labels=["Cardiomegaly", "Edema"])
    with pytest.raises(InvalidInput, match=r"no label column\(s\) \['Edema'\]"):
        read_real(spec)


def test_missing_declared_column_and_bad_value(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path, CSV)
    with pytest.raises(InvalidInput, match="no patient column 'Subject'"):
        read_real(RealData(csv=str(csv_path), patient_column="Subject"))
    bad = write_csv(tmp_path / "bad", "Path,Cardiomegaly\nx.png,yes\n")
    with pytest.raises(InvalidInput, match="CSV row 2: label value 'yes'"):
        read_real(RealData(csv=str(bad), sex_column=None, age_column=None, race_column=None))


def test_empty_dataset_and_missing_file(tmp_path: Path) -> None:
    empty = write_csv(tmp_path, "Path,Cardiomegaly\n")
    with pytest.raises(InvalidInput, match="no rows: the dataset is empty"):
        read_real(RealData(csv=str(empty)))
    with pytest.raises(InvalidInput, match="not found"):
        read_real(RealData(csv=str(tmp_path / "nope.csv")))


def test_no_known_labels_asks_for_them(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path, "Path,Sex,Age,Race,Nodule\nx.png,M,1,A,1\n")
    with pytest.raises(InvalidInput, match="list yours in `labels`"):
        read_real(RealData(csv=str(csv_path)))


@pytest.mark.parametrize(
    ("row", "finding_map", "expected"),
    [
        ({"finding": "Cardiomegaly."}, None, ["Cardiomegaly"]),
        ({"finding": "cardiomegaly; PLEURAL effusion"}, None, ["Cardiomegaly", "Pleural Effusion"]),
        ({"finding": "No acute cardiopulmonary process."}, None, ["No Finding"]),
        ({"finding": "Small left pleural effusion"}, None, []),  # not a label name: no guessing
        ({"finding": "Cardiomegaly, nodule"}, None, []),  # every part must be a label
        ({"finding": "x", "labels": ["pleural effusion", "Edema"]}, None, ["Pleural Effusion"]),
        ({"finding": "x", "labels": {"Cardiomegaly": 1, "No Finding": 0}}, None, ["Cardiomegaly"]),
        (
            {"finding": "Small left pleural effusion"},
            {"small left pleural effusion": ["Pleural Effusion"]},
            ["Pleural Effusion"],
        ),
        ({"finding": "Cardiomegaly"}, {"other": ["No Finding"]}, []),  # a map replaces the rule
    ],
)
def test_finding_to_label_rule(row: dict, finding_map: dict | None, expected: list[str]) -> None:
    spec = SyntheticData(folder="unused", finding_map=finding_map)
    assert map_finding(row, LABELS, spec) == expected


def write_metadata(folder: Path, findings: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "file_name": f"images/{i:06d}.png",
            "finding": f,
            "sex": "female",
            "age": 50,
            "race": "WHITE",
        }
        for i, f in enumerate(findings)
    ]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_synthetic_rows_map_and_unmapped_are_counted(tmp_path: Path) -> None:
    folder = write_metadata(
        tmp_path,
        [
            "Cardiomegaly",
            "Pleural effusion, cardiomegaly",
            "No acute cardiopulmonary process.",
            "Nodule",
        ],
    )
    table = read_synthetic(SyntheticData(folder=str(folder)), LABELS, "No Finding")
    assert table.labels.tolist() == [[0, 1, 0], [0, 1, 1], [1, 0, 0]]
    assert table.dropped == 1 and table.extra["unmapped"] == {"Nodule": 1}
    assert table.paths[0] == f"{folder}/images/000000.png"


def test_synthetic_without_overlap_is_refused(tmp_path: Path) -> None:
    folder = write_metadata(tmp_path, ["Nodule", "Mass"])
    with pytest.raises(InvalidInput, match="no synthetic finding maps to a real label"):
        read_synthetic(SyntheticData(folder=str(folder)), LABELS, "No Finding")
    with pytest.raises(InvalidInput, match="empty"):
        read_synthetic(SyntheticData(folder=str(write_metadata(tmp_path / "e", []))), LABELS, "")


def test_submit_time_modules_do_not_import_torch() -> None:
    """The gateway runs the submit-time checks and never imports torch."""
    code = (
        "import sys, workers.training.inputs, workers.training.params, workers.training.callbacks;"
        "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[4]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root)},
        check=True,
    )
    assert out.stdout.strip() == "[]"
