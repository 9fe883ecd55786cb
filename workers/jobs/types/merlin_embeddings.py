"""`merlin-embeddings`: embed a folder or manifest of CTs with Merlin into a Parquet table.

Source: a folder (every .nii, .nii.gz and .zip under it, sorted), a .csv with a `path` column
or a .jsonl of objects with `path`; both may give an `id` (default: the file name without its
extension, made unique). Each CT goes to the clip model's worker as OIP `IMAGE` bytes at batch
priority (the worker batches volumes from concurrent requests). Each shard writes its rows
atomically to `data/part-NNNNN.parquet`, so a resumed job redoes only unfinished shards; the
folder is a `datasets` table: `datasets.load_dataset("parquet", data_dir=<job>/data)`.
Columns: id, source, status, error, embedding (512 float32, L2-normalised), phenotypes (1,692
float32 probabilities, in the order of `phecodes.json`), features (2048, when asked), input
shape, spacing, orientation, model, version, weights_digest. A CT the model refuses is a row
with status "error" and the reason, not a failed job.
"""

from __future__ import annotations

import csv
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
from pydantic import Field

from core.errors import InvalidInput, MedserveError, Overloaded, Unavailable
from workers.jobs.types import JobParams, JobType
from workers.merlin.contract import EMBEDDING_DIM, FEATURE_DIM, PHENOTYPE_COUNT

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

EXTENSIONS = (".nii.gz", ".nii", ".zip")
MAX_FILES = 1_000_000


class MerlinEmbeddingsParams(JobParams):
    model: str = Field("merlin", pattern=r"^merlin[\w-]*$", description="A Merlin clip model.")
    source: str = Field(
        ..., min_length=1,
        description="Folder (path or fsspec URL), .csv with a `path` column, or .jsonl.",
    )  # fmt: skip
    include_features: bool = Field(False, description="Also store the 2048-d pooled features.")
    concurrency: int = Field(
        4, ge=1, le=64, description="Requests in flight per worker serving the model."
    )


def part_name(shard: int) -> str:
    return f"data/part-{shard:05d}.parquet"


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for ext in EXTENSIONS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "ct"


def _manifest_rows(text: str, jsonl: bool) -> list[dict[str, str]]:
    if jsonl:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise InvalidInput("the source .jsonl has a line that is not JSON") from None
        if not all(isinstance(r, dict) for r in rows):
            raise InvalidInput("each line of the source .jsonl must be an object with `path`")
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or any(not isinstance(r.get("path"), str) or not r["path"] for r in rows):
        raise InvalidInput("every row of the source manifest needs a `path` (one CT per row)")
    return [{"path": r["path"], "id": str(r.get("id") or "")} for r in rows]


def list_cts(source: str) -> list[dict[str, str]]:
    """[{id, source}] in a deterministic order: a folder's CT files, or a manifest's rows."""
    fs, root = fsspec.core.url_to_fs(source)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if fs.isfile(root):
        lower = root.lower()
        if not lower.endswith((".csv", ".jsonl")):
            raise InvalidInput("source must be a folder, a .csv or a .jsonl manifest of CTs")
        rows = _manifest_rows(fs.cat_file(root).decode(), lower.endswith(".jsonl"))
        base = root.rsplit("/", 1)[0]
        for row in rows:
            if "://" not in row["path"] and not row["path"].startswith("/"):
                row["path"] = f"{protocol}{base}/{row['path']}"
    elif fs.isdir(root):
        found = sorted(p for p in fs.find(root) if p.lower().endswith(EXTENSIONS))
        rows = [{"path": f"{protocol}{p}", "id": ""} for p in found]
    else:
        raise InvalidInput("source not found: give a folder or manifest the job runner can read")
    if not rows:
        raise InvalidInput("source has no CT files (.nii, .nii.gz, or .zip of a DICOM series)")
    if len(rows) > MAX_FILES:
        raise InvalidInput(f"source lists more than {MAX_FILES} CTs; split it into several jobs")
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        base_id = row["id"] or _stem(row["path"])
        seen[base_id] = seen.get(base_id, 0) + 1
        ident = base_id if seen[base_id] == 1 else f"{base_id}-{seen[base_id]}"
        out.append({"id": ident, "source": row["path"]})
    return out


def _schema(include_features: bool) -> Any:
    import pyarrow as pa

    fields = [
        ("index", pa.int64()), ("id", pa.string()), ("source", pa.string()),
        ("status", pa.string()), ("error", pa.string()),
        ("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
        ("phenotypes", pa.list_(pa.float32(), PHENOTYPE_COUNT)),
        ("input_shape", pa.list_(pa.int32())), ("spacing", pa.list_(pa.float32())),
        ("orientation", pa.string()), ("model", pa.string()), ("version", pa.string()),
        ("weights_digest", pa.string()),
    ]  # fmt: skip
    if include_features:
        fields.insert(6, ("features", pa.list_(pa.float32(), FEATURE_DIM)))
    return pa.schema(fields)


def parquet_bytes(rows: list[dict[str, Any]], include_features: bool) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(include_features)
    table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


class MerlinEmbeddingsJob(JobType):
    name = "merlin-embeddings"
    Params = MerlinEmbeddingsParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        return [{"index": i, **row} for i, row in enumerate(list_cts(ctx.params["source"]))]

    def _embed(self, ctx: JobContext, item: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {"index": item["index"], "id": item["id"], "source": item["source"]}
        try:
            with fsspec.open(item["source"], "rb") as handle:
                data = handle.read()
        except (OSError, ValueError):
            return {**row, "status": "error", "error": "the CT file could not be read"}
        parameters = {"tasks": json.dumps(["embedding", "phenotypes"]), "top_k": "all"}
        try:
            answer = ctx.models.infer(
                ctx.params["model"], {"IMAGE": np.array([data], dtype=np.object_)}, parameters
            )
        except (Overloaded, Unavailable):
            raise
        except MedserveError as exc:  # this CT is refused; keep going with the others
            return {**row, "status": "error", "error": exc.message}
        out = answer.outputs
        info = answer.parameters
        row.update(
            status="ok",
            embedding=np.asarray(out["EMBEDDING"], dtype=np.float32).reshape(-1).tolist(),
            phenotypes=np.asarray(out["PHENOTYPES"], dtype=np.float32).reshape(-1).tolist(),
            input_shape=json.loads(info["input_shape"]),
            spacing=json.loads(info["spacing"]),
            orientation=info.get("orientation"),
            model=info.get("model"),
            version=info.get("version"),
            weights_digest=info.get("weights_digest"),
        )
        if ctx.params["include_features"]:
            row["features"] = np.asarray(out["FEATURES"], dtype=np.float32).reshape(-1).tolist()
        return row

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        per_replica = int(ctx.params["concurrency"])  # in flight on each worker of the model
        with ThreadPoolExecutor(per_replica * ctx.models.replicas(ctx.params["model"])) as pool:
            for row in pool.map(lambda item: self._embed(ctx, item), items):
                rows.append(row)
                ctx.item_done()
        data = parquet_bytes(rows, bool(ctx.params["include_features"]))
        ctx.artifacts.write_bytes(part_name(shard), data)
        return {"errors": sum(r["status"] != "ok" for r in rows)}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        import pyarrow.parquet as pq

        from workers.merlin.prompts import phenotypes

        ok = errors = 0
        failures = []
        for shard in sorted(done):
            table = pq.read_table(io.BytesIO(ctx.artifacts.read_bytes(part_name(shard))),
                                  columns=["index", "id", "status", "error"])  # fmt: skip
            for r in table.to_pylist():
                if r["status"] == "ok":
                    ok += 1
                else:
                    errors += 1
                    failures.append(r)
        codes = [
            {"index": i, "phecode": p.code, "name": p.name} for i, p in enumerate(phenotypes())
        ]
        ctx.artifacts.write_text("phecodes.json", json.dumps(codes))
        ctx.artifacts.write_text("errors.jsonl", "".join(json.dumps(f) + "\n" for f in failures))
        ctx.artifacts.write_text("README.md", _card(ctx.params, ok, errors, len(plan)))
        return {"embedded": ok, "errors": errors, "planned": len(plan)}


def _card(params: dict[str, Any], ok: int, errors: int, planned: int) -> str:
    return (
        f"# Merlin CT embeddings\n\nModel `{params['model']}`; {ok} of {planned} CTs embedded, "
        f"{errors} refused (see errors.jsonl).\n\n"
        'Load: `datasets.load_dataset("parquet", data_dir="<this folder>/data")`, or any '
        "Parquet reader on `data/*.parquet`.\n\n"
        "- `embedding`: 512-d contrastive image embedding (L2-normalised)\n"
        "- `phenotypes`: 1,692 phecode probabilities; entry i is phecodes.json[i]\n"
        "- `features`: 2048-d pooled image features (when include_features)\n"
        "- `status` / `error`: rows the model refused keep their reason\n\n"
        "Machine-generated by a model; research use only.\n"
    )
