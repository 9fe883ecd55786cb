"""MedVAL-Bench: metrics against values computed by hand on a small table, error categories from
free text, the report renderers and the readers of each copy layout."""

from __future__ import annotations

import json
import struct

import pytest

from core.errors import InvalidInput, NotFound
from workers.benchmarks import medval_data, medval_metrics, medval_report
from workers.benchmarks.classification import cohen_kappa, f1_report

# task, physician grade, model grade
TABLE = [
    ("report2impression", "1", "1"),
    ("report2impression", "2", "3"),
    ("report2impression", "3", "3"),
    ("report2impression", "4", "2"),
    ("dialogue2note", "4", "4"),
    ("dialogue2note", "3", "4"),
    ("dialogue2note", "1", "None"),
    ("dialogue2note", "2", "Literal[2]"),
]


def rows(table=TABLE) -> list[dict[str, str]]:
    return [
        {
            "#": str(i + 1),
            "id": str(i),
            "task": task,
            "input": "in",
            "reference_output": "",
            "output": "out",
            "physician_error_assessment": "None",
            "physician_risk_grade": truth,
            "lm_risk_grade": pred,
        }
        for i, (task, truth, pred) in enumerate(table)
    ]


def test_overall_metrics_match_the_hand_computed_values() -> None:
    out = medval_metrics.score(rows())
    overall = out["overall"]
    assert (overall["n"], overall["n_missing"]) == (7, 1)
    safety = overall["safety"]
    assert safety["counts"] == {"tp": 3, "fp": 1, "fn": 1, "tn": 2}
    assert safety["unsafe_f1"] == pytest.approx(0.75)
    assert safety["safe_f1"] == pytest.approx(2 / 3)
    assert safety["macro_f1"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert safety["accuracy"] == pytest.approx(5 / 7)
    risk = overall["risk"]
    assert risk["accuracy"] == pytest.approx(4 / 7)
    assert risk["within_one"] == pytest.approx(6 / 7)
    assert risk["mean_absolute_error"] == pytest.approx(4 / 7)
    assert risk["macro_f1"] == pytest.approx(0.625)
    assert risk["weighted_f1"] == pytest.approx(4 / 7)
    assert risk["kappa"] == pytest.approx(15 / 36)
    assert risk["kappa_linear"] == pytest.approx(0.5)
    assert risk["kappa_quadratic"] == pytest.approx(62 / 104)
    assert risk["confusion"] == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 1]]
    assert risk["per_level"]["1"]["f1"] == 1.0 and risk["per_level"]["3"]["support"] == 2
    json.dumps(out)  # JSON-able


def test_per_task_blocks_and_their_mean() -> None:
    out = medval_metrics.score(rows())
    r2i, d2n = out["per_task"]["report2impression"], out["per_task"]["dialogue2note"]
    assert r2i["safety"]["unsafe_f1"] == pytest.approx(0.5)
    assert (d2n["n"], d2n["n_missing"], d2n["safety"]["unsafe_f1"]) == (3, 1, 1.0)
    assert out["task_mean"]["safety.unsafe_f1"] == pytest.approx(0.75)


def test_per_sample_safety_classification() -> None:
    samples = medval_metrics.score(rows())["samples"]
    second = samples[1]
    assert (second["physician_safety"], second["model_safety"]) == ("safe", "unsafe")
    assert second["safety_agrees"] is False and second["risk_agrees"] is False
    assert samples[6]["model_risk"] is None and samples[6]["safety_agrees"] is None


def test_threshold_moves_the_safe_unsafe_line() -> None:
    out = medval_metrics.score(rows(), unsafe_from=2)
    # unsafe = 2..4: truth [F,T,T,T,T,T,T], pred [F,T,T,T,T,T,T]
    assert out["overall"]["safety"]["unsafe_f1"] == 1.0
    with pytest.raises(InvalidInput):
        medval_metrics.score(rows(), unsafe_from=5)


def test_predictions_mapping_overrides_the_column() -> None:
    preds = {
        str(i + 1): {"risk_level": t, "errors": "Error 1: Missing claim - x"}
        for i, (_, t, _) in enumerate(TABLE)
    }
    out = medval_metrics.score(rows(), predictions=preds)
    assert out["overall"]["risk"]["accuracy"] == 1.0 and out["overall"]["n_missing"] == 0
    assert out["overall"]["errors"]["model"]["per_category"]["Missing claim"] == 8


def test_agrees_with_scikit_learn_on_a_larger_synthetic_copy() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    samples = medval_metrics.per_sample(medval_data.synthetic_rows(12, seed=3, predictions=True))
    truth = [s["physician_risk"] for s in samples]
    pred = [s["model_risk"] for s in samples]
    report = f1_report(truth, pred)
    assert report["macro_f1"] == pytest.approx(metrics.f1_score(truth, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(metrics.f1_score(truth, pred, average="weighted"))
    for weights in (None, "linear", "quadratic"):
        ours = cohen_kappa(truth, pred, (1, 2, 3, 4), weights)
        assert ours == pytest.approx(metrics.cohen_kappa_score(truth, pred, weights=weights))
    unsafe_t, unsafe_p = [t >= 3 for t in truth], [p >= 3 for p in pred]
    out = medval_metrics.score(medval_data.synthetic_rows(12, seed=3, predictions=True))
    assert out["overall"]["safety"]["unsafe_f1"] == pytest.approx(
        metrics.f1_score(unsafe_t, unsafe_p)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("None", []),
        ("", []),
        ("Error 1: Fabricated claim - adds an effusion", ["Fabricated claim"]),
        (
            'Error 1: Hallucination - "Small pleural effusion" is a fabricated claim.',
            ["Fabricated claim"],
        ),
        (
            "Error 1: Missing  contex of the prior study\nError 2: Overstating intensity",
            ["Missing context", "Overstating intensity"],
        ),
        ("Error 1: Other - wrong units", ["Other"]),
        ("Error 1: the other finding is wrong", ["Unclassified"]),
        ("Error 1: [Missing comparison] no mention of change", ["Missing comparison"]),
    ],
)
def test_error_categories_from_free_text(text: str, expected: list[str]) -> None:
    assert medval_metrics.error_categories(text) == expected


def test_error_counts_per_category_and_group() -> None:
    table = rows()
    table[0]["physician_error_assessment"] = "Error 1: Fabricated claim - x\nError 2: Missing claim"
    table[1]["physician_error_assessment"] = "Error 1: something odd"
    counts = medval_metrics.score(table)["overall"]["errors"]["physician"]
    assert counts["rows_with_errors"] == 2 and counts["errors"] == 3
    assert counts["per_category"]["Fabricated claim"] == 1
    assert counts["per_category"]["Unclassified"] == 1
    assert counts["per_group"] == {"hallucination": 1, "omission": 1, "unclassified": 1}
    assert len(counts["per_category"]) == 12  # the 11 categories + Unclassified


def test_grades_in_the_forms_files_hold() -> None:
    assert [medval_metrics.grade(v) for v in ("3", "3.0", 4, "Level 2 (Low Risk)")] == [3, 3, 4, 2]
    assert [medval_metrics.grade(v) for v in ("", "None", "nan", "7", "two or three")] == [None] * 5


def test_missing_columns_and_bad_physician_grades_are_refused() -> None:
    table = rows()
    with pytest.raises(InvalidInput, match="physician grade"):
        medval_metrics.score(
            [{k: v for k, v in r.items() if k != "physician_risk_grade"} for r in table]
        )
    with pytest.raises(InvalidInput, match="no model grades"):
        medval_metrics.score([{k: v for k, v in r.items() if k != "lm_risk_grade"} for r in table])
    table[0]["physician_risk_grade"] = "9"
    with pytest.raises(InvalidInput, match="row 1"):
        medval_metrics.score(table)


def test_markdown_table_and_confusion_png(tmp_path) -> None:
    metrics = medval_metrics.score(rows())
    text = medval_report.render_markdown(metrics)
    assert (
        "| **overall** | 7 | 1 | 75.0 | 70.8 | 75.0 | 62.5 | 57.1 | 85.7 | 0.57 | 0.596 |" in text
    )
    assert "| report2impression | 4 | 0 | 50.0 |" in text
    assert "| Fabricated claim | 0 | - |" in text  # no model error column
    png = medval_report.plot_confusion(metrics["overall"]["risk"]["confusion"], tmp_path / "c.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (552, 480)


def test_synthetic_csv_has_the_released_layout(tmp_path) -> None:
    path = medval_data.write_synthetic_csv(tmp_path / "copy" / "data" / "test.csv", n_per_task=2)
    header = path.read_text().splitlines()[0]
    assert (
        header == "#,id,task,input,reference_output,output,physician_error_assessment,"
        "physician_risk_grade"
    )
    loaded = medval_data.load_rows(tmp_path / "copy")
    assert len(loaded) == 12 and {r["task"] for r in loaded} == set(medval_data.TASKS)
    assert all(r["reference_output"] == "" for r in loaded if r["task"] == "bhc2spanish")


def test_reader_picks_the_split_from_a_folder_and_reads_one_file(tmp_path) -> None:
    medval_data.write_synthetic_csv(tmp_path / "data" / "test.csv", n_per_task=1)
    medval_data.write_synthetic_csv(tmp_path / "data" / "train.csv", n_per_task=3)
    assert len(medval_data.load_rows(tmp_path, split="test")) == 6
    assert len(medval_data.load_rows(tmp_path, split="train")) == 18
    assert len(medval_data.load_rows(tmp_path / "data" / "train.csv")) == 18
    with pytest.raises(InvalidInput, match="several CSV"):
        medval_data.load_rows(tmp_path, split="validation")
    with pytest.raises(NotFound):
        medval_data.load_rows(tmp_path / "absent")


def test_reader_takes_an_fsspec_url() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    text = medval_data.rows_to_csv(medval_data.synthetic_rows(1, predictions=True))
    with fs.open("/medval/data/test.csv", "w") as handle:
        handle.write(text)
    loaded = medval_data.load_rows("memory://medval")
    assert len(loaded) == 6 and "lm_risk_grade" in loaded[0]
    assert medval_data.load_rows("memory://medval/data/test.csv") == loaded


def test_reader_takes_a_saved_dataset(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    table = medval_data.synthetic_rows(1)
    columns = {k: [r[k] for r in table] for k in table[0]}
    columns["physician_risk_grade"] = [int(v) for v in columns["physician_risk_grade"]]
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)}).save_to_disk(tmp_path)
    loaded = medval_data.load_rows(tmp_path)
    assert [r["physician_risk_grade"] for r in loaded] == [r["physician_risk_grade"] for r in table]
    with pytest.raises(NotFound, match="splits test"):
        medval_data.load_rows(tmp_path, split="train")


SCORED_CSV_ROWS = [  # task, physician grade, model grade (the table the old medval scorer used)
    ("report2impression", "1", "1"),
    ("report2impression", "2", "3"),  # false alarm
    ("report2impression", "3", "3"),
    ("report2impression", "4", "2"),  # missed unsafe
    ("dialogue2note", "4", "4"),
    ("dialogue2note", "3", "4"),  # right side, wrong level
    ("dialogue2note", "1", "None"),  # no grade
    ("dialogue2note", "2", "Literal[2]"),
]


@pytest.mark.parametrize("pred_col", ["lm_risk_grade", "risk_level"])
def test_a_results_csv_scores_as_the_old_scorer_did(tmp_path, pred_col: str) -> None:
    import csv

    path = tmp_path / "results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["#", "id", "task", "input", "output", "physician_risk_grade", pred_col])
        for i, (task, truth, pred) in enumerate(SCORED_CSV_ROWS):
            writer.writerow([i, f"id{i}", task, "reference, text", "candidate", truth, pred])
    scores = medval_metrics.score(medval_data.load_rows(path))
    overall = scores["overall"]
    assert overall["n"] == 7 and overall["n_missing"] == 1
    assert overall["safety"]["unsafe_precision"] == pytest.approx(3 / 4)
    assert overall["safety"]["unsafe_recall"] == pytest.approx(3 / 4)
    assert overall["safety"]["unsafe_f1"] == pytest.approx(3 / 4)
    assert overall["safety"]["accuracy"] == pytest.approx(5 / 7)
    assert overall["risk"]["accuracy"] == pytest.approx(4 / 7)
    assert overall["risk"]["confusion"][3][1] == 1  # physician 4, model 2
    r2i, d2n = scores["per_task"]["report2impression"], scores["per_task"]["dialogue2note"]
    assert (r2i["n"], r2i["risk"]["accuracy"], r2i["safety"]["unsafe_f1"]) == (4, 0.5, 0.5)
    assert (d2n["n"], d2n["n_missing"], d2n["safety"]["unsafe_f1"]) == (3, 1, 1.0)
    assert d2n["risk"]["accuracy"] == pytest.approx(2 / 3)
