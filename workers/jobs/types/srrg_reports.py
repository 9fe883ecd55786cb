"""`srrg-reports`: structured radiology reports for a folder (or CSV) of chest X-rays, as a table.

Each X-ray goes to the SRRG report workers (one per requested section) at batch priority, so the
workers' batchers fill their batches; the workers decode, generate and parse (the same path as
`POST /v1/srrg/generate`). Each shard writes its rows to `.shards/reports-NNNNN.jsonl` last, so a
shard redone after a crash is harmless and finished shards are never redone. The final table is
merged from the finished shards: `reports.parquet` and `reports.jsonl` (one row per image: image
id, findings, impression, structure_valid, problems, provenance), plus a dataset card, so
`datasets.load_dataset("parquet", data_files=<folder>/reports.parquet)` (or the folder) reads
it. An image a worker refuses is a row with its error, not a failed job.
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
from pydantic import Field

from core.errors import InvalidInput, MedserveError, Overloaded, Unavailable, UpstreamError
from workers.jobs.types import JobParams, JobType
from workers.srrg.contract import MAX_BEAMS, MAX_LENGTH, Section

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
MAX_FILES = 1_000_000
COLUMNS = {  # name -> pyarrow type name; the table's schema, in order
    "index": "int64", "image_id": "string", "source": "string", "status": "string",
    "error": "string", "findings": "string", "impression": "string",
    "structure_valid": "bool", "findings_structure_valid": "bool",
    "impression_structure_valid": "bool", "findings_problems": "list",
    "impression_problems": "list", "machine_generated": "bool", "findings_model": "string",
    "findings_weights_digest": "string", "impression_model": "string",
    "impression_weights_digest": "string",
}  # fmt: skip


class SRRGReportsParams(JobParams):
    source: str = Field(
        ...,
        min_length=1,
        description="Folder (path or fsspec URL) of .png/.jpg/.jpeg/.dcm/.dicom files, or a CSV "
        "with a `path` column (and optionally `image_id`).",
    )
    sections: list[Section] = Field(["findings", "impression"], min_length=1, max_length=2)
    findings_model: str = Field("srrg-findings", description="The findings report model.")
    impression_model: str = Field("srrg-impression", description="The impression report model.")
    num_beams: int | None = Field(None, ge=1, le=MAX_BEAMS, description="Default: the model's.")
    max_length: int | None = Field(None, ge=2, le=MAX_LENGTH, description="Default: the model's.")
    concurrency: int = Field(4, ge=1, le=64, description="Images in flight to the workers.")


def reports_part(shard: int) -> str:
    return f".shards/reports-{shard:05d}.jsonl"


def _image_id(relative: str) -> str:
    name = relative.strip("/")
    for ext in EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _from_csv(fs: Any, root: str, protocol: str) -> list[tuple[str, str]]:
    rows = list(csv.DictReader(io.StringIO(fs.cat_file(root).decode())))
    if not rows or "path" not in rows[0]:
        raise InvalidInput("the source CSV needs a `path` column (one X-ray file per row)")
    base = root.rsplit("/", 1)[0]
    out = []
    for row in rows:
        path = row.get("path") or ""
        if not path:
            continue
        full = path if "://" in path or path.startswith("/") else f"{protocol}{base}/{path}"
        out.append((row.get("image_id") or _image_id(path), full))
    return out


def list_images(source: str) -> list[tuple[str, str]]:
    """(image id, file) pairs, sorted: X-ray files under a folder, or the rows of a CSV."""
    fs, root = fsspec.core.url_to_fs(source)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if fs.isfile(root):
        if not root.lower().endswith(".csv"):
            raise InvalidInput("source must be a folder or a .csv file with a `path` column")
        pairs = _from_csv(fs, root, protocol)
    elif fs.isdir(root):
        prefix = root.rstrip("/") + "/"
        found = sorted(p for p in fs.find(root) if p.lower().endswith(EXTENSIONS))
        pairs = [(_image_id(p[len(prefix) :]), f"{protocol}{p}") for p in found]
    else:
        raise InvalidInput("source not found: give an existing folder or CSV the runner can read")
    if not pairs:
        raise InvalidInput(f"source has no X-ray files ({', '.join(EXTENSIONS)})")
    if len(pairs) > MAX_FILES:
        raise InvalidInput(f"source lists more than {MAX_FILES} files; split it into several jobs")
    ids = [image_id for image_id, _ in pairs]
    if len(set(ids)) != len(ids):
        raise InvalidInput("two files have the same image id; give the CSV an `image_id` column")
    return pairs


def _section(ctx: JobContext, section: str, data: bytes) -> dict[str, Any]:
    params = ctx.params
    parameters = {k: params[k] for k in ("num_beams", "max_length") if params.get(k) is not None}
    model = params[f"{section}_model"]
    answer = ctx.models.infer(model, {"IMAGE": np.array([data], dtype=np.object_)}, parameters)
    try:
        report = bytes(np.asarray(answer.outputs["report"]).reshape(-1)[0]).decode()
        structure = json.loads(bytes(np.asarray(answer.outputs["structure"]).reshape(-1)[0]))
    except (KeyError, IndexError, ValueError):
        raise UpstreamError(f"model {model!r} answered without a parsed report") from None
    return {
        section: report,
        f"{section}_structure_valid": bool(structure["structure_valid"]),
        f"{section}_problems": list(structure["problems"]),
        f"{section}_model": answer.parameters.get("model", model),
        f"{section}_weights_digest": answer.parameters.get("weights_digest"),
    }


class SRRGReportsJob(JobType):
    name = "srrg-reports"
    Params = SRRGReportsParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        pairs = list_images(ctx.params["source"])
        return [{"index": i, "image_id": n, "source": p} for i, (n, p) in enumerate(pairs)]

    def _report(self, ctx: JobContext, item: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {**item, "status": "ok", "machine_generated": True}
        try:
            with fsspec.open(item["source"], "rb") as handle:
                data = handle.read()
        except (OSError, ValueError):
            return {**row, "status": "error", "error": "input file could not be read"}
        try:
            for section in ctx.params["sections"]:
                row.update(_section(ctx, section, data))
        except (Overloaded, Unavailable):
            raise  # the workers are away: the shard is redone later
        except MedserveError as exc:  # this image is refused; keep going with the others
            return {**item, "status": "error", "error": exc.message, "machine_generated": True}
        flags = [row[f"{s}_structure_valid"] for s in ctx.params["sections"]]
        row["structure_valid"] = all(flags)
        return row

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        rows = []
        with ThreadPoolExecutor(max_workers=int(ctx.params["concurrency"])) as pool:
            for row in pool.map(lambda item: self._report(ctx, item), items):
                rows.append(row)
                ctx.item_done()
        ctx.artifacts.write_text(reports_part(shard), "".join(json.dumps(r) + "\n" for r in rows))
        return {"errors": sum(r["status"] != "ok" for r in rows)}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for shard in sorted(done):
            part = ctx.artifacts.read_bytes(reports_part(shard)).decode()
            rows.extend(json.loads(line) for line in part.splitlines() if line.strip())
        rows = [{name: row.get(name) for name in COLUMNS} for row in rows]
        ctx.artifacts.write_text("reports.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        ctx.artifacts.write_bytes("reports.parquet", parquet(rows))
        ok = [r for r in rows if r["status"] == "ok"]
        summary = {
            "reports": len(ok),
            "errors": len(rows) - len(ok),
            "structure_valid": sum(bool(r["structure_valid"]) for r in ok),
            "planned": len(plan),
        }
        ctx.artifacts.write_text("README.md", dataset_card(ctx, summary))
        return summary


def parquet(rows: list[dict[str, Any]]) -> bytes:
    """The rows as one Parquet table with a fixed schema (so empty columns keep their type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"int64": pa.int64(), "string": pa.string(), "bool": pa.bool_(),
             "list": pa.list_(pa.string())}  # fmt: skip
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def dataset_card(ctx: JobContext, summary: dict[str, Any]) -> str:
    params = ctx.params
    models = ", ".join(f"`{params[f'{s}_model']}` ({s})" for s in params["sections"])
    return (
        "---\nlicense: other\ntags: [machine-generated, radiology-reports, chest-x-ray, "
        "medserve]\nconfigs:\n- config_name: default\n  data_files: reports.parquet\n---\n"
        "# Structured radiology reports (MACHINE-GENERATED: not reviewed by a radiologist)\n\n"
        f"Generated by medserve job `{ctx.job.id}` from `{params['source']}` with {models}; "
        f"decoding num_beams={params.get('num_beams') or 'model default'}, "
        f"max_length={params.get('max_length') or 'model default'}. Each row names the model "
        "and weights digest of each section.\n\n"
        f"Reports: {summary['reports']} of {summary['planned']} images "
        f"({summary['errors']} refused, listed with their error); "
        f"{summary['structure_valid']} follow the structured format.\n\n"
        'Load: `datasets.load_dataset("parquet", data_files="<this folder>/reports.parquet")`.\n'
        "Research use only; not for diagnosis.\n"
    )
