"""The QC building blocks without models: parameters, per-image label scores, metadata rows of
any imagefolder (the released prompt CSV too), intervals, subgroup warnings and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput
from tests.qc_support import check_report, close, wilson
from workers.jobs.qc import report
from workers.jobs.qc.checks import label_prf
from workers.jobs.types import job_type
from workers.jobs.types.synthetic_qc import asked_from, read_metadata

BINS = [(18, 39), (40, 59), (60, 79), (80, 95)]


def test_qc_is_off_by_default_and_refuses_unknown_fields() -> None:
    kind = job_type("synthetic-dataset")
    assert kind.validate({})["qc"] is None
    on = kind.validate({"qc": {}})["qc"]
    assert on["max_attempts"] == 3 and on["max_age_delta"] == 16.0 and not on["keep_rejected"]
    assert on["checks"] == ["findings", "sex", "race", "age"]
    with pytest.raises(InvalidInput, match="max_attempts"):
        kind.validate({"qc": {"max_attemps": 2}})
    with pytest.raises(InvalidInput, match="checks"):
        kind.validate({"qc": {"checks": ["height"]}})
    with pytest.raises(InvalidInput, match="max_attempts"):
        job_type("synthetic-qc").validate({"source": "x", "qc": {"max_attempts": 2}})


def test_label_scores_per_image() -> None:
    a = np.array([1, 1, 0, 0])
    assert label_prf(a, np.array([1, 0, 1, 0])) == (0.5, 0.5, 0.5)
    assert label_prf(a, np.array([1, 1, 0, 0])) == (1.0, 1.0, 1.0)
    assert label_prf(np.zeros(4), np.zeros(4)) == (1.0, 1.0, 1.0)  # nothing asked, nothing seen
    assert label_prf(a, np.zeros(4)) == (0.0, 0.0, 0.0)  # nothing seen of what was asked
    assert label_prf(np.zeros(4), a) == (0.0, 0.0, 0.0)  # findings nobody asked for


def test_rows_give_their_demographics_from_columns_or_the_prompt() -> None:
    released = {"dicom_id": "demo0002", "gender": "F", "anchor_age": "86", "race": "BLACK",
                "impression_short": "No evidence of acute cardiopulmonary process .",
                "prompt_variation": "86 year old BLACK female. No evidence of acute "
                "cardiopulmonary process ."}  # fmt: skip
    got = asked_from(released, BINS)
    assert (got["sex"], got["age"], got["race"], got["age_bin"]) == ("female", 86.0, "BLACK",
                                                                     "80-95")  # fmt: skip
    assert got["finding"] == "No evidence of acute cardiopulmonary process ."
    only_prompt = asked_from({"prompt": "50 year old male. Small left pleural effusion."}, BINS)
    assert only_prompt == {"prompt": "50 year old male. Small left pleural effusion.",
                           "finding": "Small left pleural effusion.", "sex": "male",
                           "age": 50.0, "race": None, "age_bin": "40-59"}  # fmt: skip
    ours = asked_from({"finding": "x.", "sex": "male", "age": 9, "age_bin": "0-17"}, BINS)
    assert ours["age_bin"] == "0-17" and ours["race"] is None
    assert asked_from({}, BINS)["sex"] is None


def test_metadata_is_read_from_jsonl_or_csv(tmp_path: Path) -> None:
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png"}) + "\n")
    folder, rows = read_metadata(str(tmp_path))
    assert folder == str(tmp_path) and rows == [{"file_name": "a.png"}]
    (tmp_path / "p.csv").write_text("dicom_id,gender\nd1,M\n")
    assert read_metadata(str(tmp_path / "p.csv"))[1] == [{"dicom_id": "d1", "gender": "M"}]
    with pytest.raises(InvalidInput, match="must be an imagefolder"):
        read_metadata(str(tmp_path / "missing-dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no metadata"):
        read_metadata(str(tmp_path / "empty"))


def test_wilson_interval() -> None:
    assert report.wilson(0, 0, 0.95) is None
    low, high = report.wilson(8, 10, 0.95)
    assert math.isclose(low, 0.49016, abs_tol=1e-5) and math.isclose(high, 0.94332, abs_tol=1e-5)
    assert close(report.wilson(3, 7, 0.9), wilson(3, 7, 0.9))
    assert report.wilson(0, 5, 0.95)[0] == 0.0 and report.wilson(5, 5, 0.95)[1] == 1.0


def rows_for(groups: dict[str, tuple[int, int]]) -> list[dict]:
    """(passed, total) per sex value -> checked-image rows."""
    rows = []
    for sex, (passed, total) in groups.items():
        for i in range(total):
            ok = i < passed
            rows.append({"finding": "f.", "sex": sex, "age_bin": "40-59", "race": None,
                         "qc_passed": ok, "qc_sex_ok": ok, "qc_race_ok": None,
                         "qc_age_ok": True, "qc_findings_ok": None, "qc_attempt": 0,
                         "qc_label_f1": 0.25 * (i % 4), "qc_prompt_labels": ["a"],
                         "qc_report_labels": ["a"] if i % 4 == 0 else []})  # fmt: skip
    return rows


def test_subgroup_warnings_follow_the_margin_and_the_group_size() -> None:
    rows = rows_for({"female": (2, 10), "male": (9, 10)})
    warned = report.subgroup_warnings(rows, 0.1)
    assert [(w["dimension"], w["value"]) for w in warned] == [("sex", "female")]
    assert math.isclose(warned[0]["gap"], 0.7) and "sex=female" in warned[0]["message"]
    assert report.subgroup_warnings(rows, 0.75) == []
    assert report.subgroup_warnings(rows, 0.1, min_size=11) == []
    assert report.subgroup_warnings(rows_for({"female": (5, 10), "male": (5, 10)}), 0.0) == []


def test_the_report_is_its_rows_recomputed() -> None:
    rows = rows_for({"female": (2, 10), "male": (9, 10)})
    for row in rows:  # keep the label F1 consistent with the label lists (set F1)
        row["qc_label_f1"] = 1.0 if row["qc_report_labels"] else 0.0
    qc = job_type("synthetic-dataset").validate({"qc": {}})["qc"]
    built = report.build(rows, qc, {"checks_run": ["sex"]})
    check_report(built, rows)
    assert built["by"]["race"] == {"unspecified": built["overall"]}
    assert built["overall"]["checks"]["sex"]["passed"] == 11
    assert "race" not in built["overall"]["checks"]  # never judged
    text = report.markdown(built, "QC")
    assert "WARNING: sex=female" in text and "| female | 10 | 0.200 |" in text
    again = report.build(list(rows), qc, {"checks_run": ["sex"]})
    assert again == built  # seeded bootstrap: the same rows, the same intervals
