"""`srrg-reports` parameters and input listing (no workers needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput
from workers.jobs.types import job_type
from workers.jobs.types.srrg_reports import list_images, parquet


def test_params_are_checked_with_the_closest_name() -> None:
    job = job_type("srrg-reports")
    params = job.validate({"source": "/data"})
    assert params["sections"] == ["findings", "impression"]
    assert params["findings_model"] == "srrg-findings" and params["num_beams"] is None
    with pytest.raises(InvalidInput, match="did you mean 'sections'"):
        job.validate({"source": "/data", "section": ["findings"]})
    with pytest.raises(InvalidInput, match="num_beams"):
        job.validate({"source": "/data", "num_beams": 9})
    with pytest.raises(InvalidInput, match="sections"):
        job.validate({"source": "/data", "sections": ["summary"]})


def test_a_folder_lists_xray_files_with_relative_ids(tmp_path: Path) -> None:
    (tmp_path / "p1" / "s1").mkdir(parents=True)
    for name in ("b.png", "a.JPG", "p1/s1/view.dcm", "p1/x.dicom", "notes.txt", "vol.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    ids = [image_id for image_id, _ in list_images(str(tmp_path))]
    assert ids == ["a", "b", "p1/s1/view", "p1/x"]


def test_a_csv_lists_paths_and_optional_ids(tmp_path: Path) -> None:
    (tmp_path / "one.png").write_bytes(b"x")
    (tmp_path / "list.csv").write_text("path,image_id\none.png,study-1\n/abs/two.dcm,\n")
    pairs = list_images(str(tmp_path / "list.csv"))
    assert pairs == [("study-1", f"{tmp_path}/one.png"), ("abs/two", "/abs/two.dcm")]
    (tmp_path / "dup.csv").write_text("path,image_id\na.png,x\nb.png,x\n")
    with pytest.raises(InvalidInput, match="same image id"):
        list_images(str(tmp_path / "dup.csv"))
    (tmp_path / "bad.csv").write_text("file\na.png\n")
    with pytest.raises(InvalidInput, match="`path` column"):
        list_images(str(tmp_path / "bad.csv"))


def test_empty_or_missing_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no X-ray files"):
        list_images(str(tmp_path))
    with pytest.raises(InvalidInput, match="source not found"):
        list_images(str(tmp_path / "absent"))


def test_the_table_keeps_its_schema_when_a_column_is_empty() -> None:
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet([{"index": 0, "status": "error"}])))
    assert table.schema.field("structure_valid").type == "bool"
    assert table.schema.field("findings_problems").type.value_type == "string"
