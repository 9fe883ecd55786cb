"""MedVAL-Bench scoring: binary safe/unsafe F1 (1-2 safe) and risk accuracy, per task."""

import csv
from pathlib import Path

import pytest

from workers.medval.scoring import ScoringError, score_csv

ROWS = [  # task, physician grade, model grade
    ("report2impression", "1", "1"),
    ("report2impression", "2", "3"),  # false alarm
    ("report2impression", "3", "3"),
    ("report2impression", "4", "2"),  # missed unsafe
    ("dialogue2note", "4", "4"),
    ("dialogue2note", "3", "4"),  # right side, wrong level
    ("dialogue2note", "1", "None"),  # no grade
    ("dialogue2note", "2", "Literal[2]"),
]


def write(path: Path, rows: list[tuple[str, str, str]], pred_col: str = "lm_risk_grade") -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["#", "id", "task", "input", "output", "physician_risk_grade", pred_col])
        for i, (task, truth, pred) in enumerate(rows):
            writer.writerow([i, f"id{i}", task, "reference, text", "candidate", truth, pred])
    return path


def test_overall_and_per_task_metrics(tmp_path: Path) -> None:
    scores = score_csv(write(tmp_path / "results.csv", ROWS))
    overall = scores["overall"]
    # 7 graded rows: unsafe truth {3,4,4,3} -> predicted unsafe for 3 of 4; one false alarm.
    assert overall["n"] == 7 and overall["n_missing"] == 1
    assert overall["binary_precision"] == pytest.approx(3 / 4)
    assert overall["binary_recall"] == pytest.approx(3 / 4)
    assert overall["binary_f1"] == pytest.approx(3 / 4)
    assert overall["binary_accuracy"] == pytest.approx(5 / 7)
    assert overall["risk_accuracy"] == pytest.approx(4 / 7)
    assert overall["confusion"][3][1] == 1  # physician 4, model 2
    r2i, d2n = scores["per_task"]["report2impression"], scores["per_task"]["dialogue2note"]
    assert (r2i["n"], r2i["risk_accuracy"], r2i["binary_f1"]) == (4, 0.5, 0.5)
    assert (d2n["n"], d2n["n_missing"], d2n["binary_f1"], d2n["risk_accuracy"]) == (
        3,
        1,
        1.0,
        2 / 3,
    )


def test_risk_level_column_is_accepted(tmp_path: Path) -> None:
    scores = score_csv(write(tmp_path / "r.csv", ROWS[:2], pred_col="risk_level"))
    assert scores["prediction_column"] == "risk_level" and scores["overall"]["n"] == 2


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match="model grade"):
        score_csv(write(tmp_path / "a.csv", ROWS, pred_col="something_else"))
    with pytest.raises(ScoringError, match="line 2"):
        score_csv(write(tmp_path / "b.csv", [("report2impression", "7", "1")]))
