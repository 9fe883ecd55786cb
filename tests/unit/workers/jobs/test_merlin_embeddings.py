"""`merlin-embeddings` planning and its table: sources (folder, CSV, JSONL), ids, parameters,
and the Parquet part a shard writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from core.errors import InvalidInput
from workers.jobs.types import job_type
from workers.jobs.types.merlin_embeddings import list_cts, parquet_bytes


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_folder_lists_ct_files_sorted_with_unique_ids(tmp_path: Path) -> None:
    for name in ("b/scan.nii.gz", "a/scan.nii", "c/series 1.zip", "notes.txt", "a/x.png"):
        touch(tmp_path / name)
    rows = list_cts(str(tmp_path))
    assert [Path(r["source"]).relative_to(tmp_path).as_posix() for r in rows] == [
        "a/scan.nii", "b/scan.nii.gz", "c/series 1.zip"]  # fmt: skip
    assert [r["id"] for r in rows] == ["scan", "scan-2", "series_1"]


def test_csv_and_jsonl_manifests_resolve_relative_paths(tmp_path: Path) -> None:
    touch(tmp_path / "cts" / "one.nii.gz")
    (tmp_path / "list.csv").write_text("path,id\ncts/one.nii.gz,patient-7\n/abs/two.zip,\n")
    rows = list_cts(str(tmp_path / "list.csv"))
    assert rows == [
        {"id": "patient-7", "source": f"{tmp_path}/cts/one.nii.gz"},
        {"id": "two", "source": "/abs/two.zip"},
    ]
    lines = [{"path": "cts/one.nii.gz"}, {"path": "cts/one.nii.gz", "id": "again"}]
    (tmp_path / "list.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [r["id"] for r in list_cts(str(tmp_path / "list.jsonl"))] == ["one", "again"]


@pytest.mark.parametrize(
    ("content", "name", "says"),
    [
        ("id\nx\n", "list.csv", "needs a `path`"),
        ("{not json\n", "list.jsonl", "not JSON"),
        ("[1]\n", "list.jsonl", "object"),
        ("path\nx\n", "list.txt", "folder, a .csv or a .jsonl"),
    ],
)
def test_bad_manifests_say_what_to_fix(tmp_path: Path, content: str, name: str, says: str):
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidInput, match=says):
        list_cts(str(tmp_path / name))


def test_missing_or_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        list_cts(str(tmp_path / "nowhere"))
    touch(tmp_path / "only.png")
    with pytest.raises(InvalidInput, match="no CT files"):
        list_cts(str(tmp_path))


def test_params_refuse_unknown_fields_and_other_families() -> None:
    job = job_type("merlin-embeddings")
    assert job.validate({"source": "/data"})["model"] == "merlin"
    with pytest.raises(InvalidInput, match="include_features"):
        job.validate({"source": "/data", "include_feature": True})
    with pytest.raises(InvalidInput, match="model"):
        job.validate({"source": "/data", "model": "medvae-4-1-2d"})


def test_a_shard_part_is_a_typed_table() -> None:
    import pyarrow.parquet as pq

    ok = {
        "index": 0,
        "id": "a",
        "source": "a.nii",
        "status": "ok",
        "embedding": [0.5] * 512,
        "phenotypes": [0.1] * 1692,
        "input_shape": [4, 4, 4],
        "spacing": [1, 1, 1],
        "orientation": "RAS",
        "model": "merlin",
        "version": "1",
        "weights_digest": "sha256:x",
    }
    bad = {"index": 1, "id": "b", "source": "b.zip", "status": "error", "error": "2 series"}
    table = pq.read_table(io.BytesIO(parquet_bytes([ok, bad], include_features=False)))
    assert table.column_names[:5] == ["index", "id", "source", "status", "error"]
    assert "features" not in table.column_names
    assert str(table.schema.field("embedding").type) == "fixed_size_list<element: float>[512]"
    rows = table.to_pylist()
    assert rows[1]["embedding"] is None and rows[1]["error"] == "2 series"
    assert len(rows[0]["phenotypes"]) == 1692
    with_features = pq.read_table(io.BytesIO(parquet_bytes([ok], include_features=True)))
    assert "features" in with_features.column_names
