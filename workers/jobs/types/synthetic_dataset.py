"""`synthetic-dataset`: a demographically balanced RoentGen-v2 campaign as an `imagefolder` dataset.

Images are generated through the model workers at batch priority (several requests in
flight, so the worker's dynamic batcher fills its batches), labelled synthetic with their
provenance in PNG text chunks, and written atomically under `images/`. Each shard writes its
metadata rows to `.shards/metadata-NNNNN.jsonl` last; the final `metadata.jsonl` (what
`datasets.load_dataset("imagefolder", data_dir=...)` reads), `balance.json` and a dataset card
are built from finished shards only, and images of unfinished shards are removed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from core.errors import UpstreamError
from workers.jobs import campaign
from workers.jobs.qc.params import CampaignQC
from workers.jobs.types import JobParams, JobType
from workers.roentgen.contract import RACES, SEXES

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

MAX_IMAGES = 1_000_000


class SyntheticParams(JobParams):
    model: str = Field("roentgen-v2", description="A RoentGen model served by the workers.")
    findings: list[str] = Field(  # impressions too: the text after the demographics
        ["No acute cardiopulmonary process."],
        min_length=1,
        max_length=500,
        description="Findings/impressions, one prompt sentence each.",
    )
    sexes: list[Literal["female", "male"]] = Field(list(SEXES), min_length=1)
    age_bins: list[tuple[int, int]] = Field(
        [(18, 39), (40, 59), (60, 79), (80, 95)], min_length=1, description="[low, high] years."
    )
    races: list[Literal["WHITE", "BLACK", "ASIAN", "HISPANIC"]] = Field(
        list(RACES), description="Race/ethnicity in the prompt; [] leaves it out."
    )
    images_per_cell: int = Field(1, ge=1, le=100_000)
    total_images: int | None = Field(
        None, ge=1, le=MAX_IMAGES, description="Instead of images_per_cell: split by marginals."
    )
    marginals: dict[str, dict[str, float]] | None = Field(
        None, description='Target shares per dimension, e.g. {"sex": {"female": 0.5, "male": 0.5}}.'
    )
    seed: int = Field(0, ge=0, lt=2**31)
    steps: int = Field(75, ge=1, le=200)
    guidance_scale: float = Field(3.0, ge=0.0, le=30.0)
    height: int = Field(512, ge=64, le=1024, multiple_of=8)
    width: int = Field(512, ge=64, le=1024, multiple_of=8)
    concurrency: int = Field(
        8, ge=1, le=64, description="Requests in flight per worker serving the model."
    )
    qc: CampaignQC | None = Field(
        None,
        description="Check every image with the platform's models (SRRG + SRR-BERT findings, "
        "demographic classifiers), regenerate rejected ones, and write a QC report "
        "(docs/synthetic-qc.md). Off when null; {} turns it on with the defaults.",
    )

    @model_validator(mode="after")
    def _check(self) -> SyntheticParams:
        for lo, hi in self.age_bins:
            if not 0 <= lo <= hi <= 120:
                raise ValueError("each age bin is [low, high] with 0 <= low <= high <= 120")
        if any(not f.strip() or len(f) > 300 for f in self.findings):
            raise ValueError("each finding is a non-empty sentence of at most 300 characters")
        if self.marginals:
            unknown = set(self.marginals) - {"finding", "sex", "age_bin", "race"}
            if unknown:
                raise ValueError(
                    f"marginals dimensions are finding, sex, age_bin, race: not {unknown}"
                )
        cells = len(self.findings) * len(self.sexes) * len(self.age_bins) * max(len(self.races), 1)
        total = self.total_images or cells * self.images_per_cell
        if total > MAX_IMAGES:
            raise ValueError(f"{total} images requested; at most {MAX_IMAGES} per job")
        return self


def metadata_part(shard: int) -> str:
    return f".shards/metadata-{shard:05d}.jsonl"


class SyntheticDatasetJob(JobType):
    name = "synthetic-dataset"
    Params = SyntheticParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        return campaign.plan_items(ctx.params)

    def _render(
        self, ctx: JobContext, item: dict[str, Any], seed: int
    ) -> tuple[bytes, dict[str, Any]]:
        """One image of `item` with `seed`: its PNG (labelled synthetic) and metadata row."""
        p = ctx.params
        parameters = {
            "seed": seed,
            "steps": p["steps"],
            "guidance_scale": p["guidance_scale"],
            "height": p["height"],
            "width": p["width"],
            "format": "png",
        }
        prompt = np.array([item["prompt"].encode()], dtype=np.object_)
        response = ctx.models.infer(p["model"], {"prompt": prompt}, parameters, outputs=["FILE"])
        try:
            png = bytes(np.asarray(response.outputs["FILE"]).reshape(-1)[0])
        except (KeyError, IndexError):
            raise UpstreamError("the image model answered without a FILE output") from None
        info = response.parameters
        return png, {
            "file_name": item["file_name"],
            "index": item["index"],
            "cell": item["cell"],
            "prompt": item["prompt"],
            "finding": item["finding"],
            "sex": item["sex"],
            "age": item["age"],
            "age_bin": item["age_bin"],
            "race": item["race"],
            "model": info.get("model", p["model"]),
            "version": info.get("version", response.model_version),
            "weights": info.get("weights"),
            "weights_digest": info.get("weights_digest"),
            **{k: v for k, v in parameters.items() if k != "format"},
            "synthetic": True,
        }

    def _generate(self, ctx: JobContext, item: dict[str, Any]) -> dict[str, Any]:
        png, row = self._render(ctx, item, int(item["seed"]))
        ctx.artifacts.write_bytes(item["file_name"], png)  # labelled synthetic by the worker
        return row

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        if ctx.params.get("qc") is not None:
            from workers.jobs.qc import stage

            return stage.run_shard(ctx, shard, items, self._render, metadata_part(shard))
        rows = []
        per_replica = int(ctx.params["concurrency"])  # in flight on each worker of the model
        with ThreadPoolExecutor(per_replica * ctx.models.replicas(ctx.params["model"])) as pool:
            for row in pool.map(lambda item: self._generate(ctx, item), items):
                rows.append(row)
                ctx.item_done()
        ctx.artifacts.write_text(metadata_part(shard), "".join(json.dumps(r) + "\n" for r in rows))
        return {"images": len(rows)}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for shard in sorted(done):
            part = ctx.artifacts.read_bytes(metadata_part(shard)).decode()
            rows.extend(json.loads(line) for line in part.splitlines() if line.strip())
        kept = {r["file_name"] for r in rows}
        for orphan in ctx.artifacts.list("images"):
            if orphan["path"] not in kept:  # written by a shard that never finished
                ctx.artifacts.delete(orphan["path"])
        ctx.artifacts.write_text("metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        summary = campaign.balance(rows, plan)
        ctx.artifacts.write_text("balance.json", json.dumps(summary, indent=2))
        if ctx.params.get("qc") is not None:
            from workers.jobs.qc import stage

            summary["qc"] = stage.finalize_campaign(ctx, done)
            summary["warnings"] = summary["qc"]["warnings"]
        ctx.artifacts.write_text("README.md", dataset_card(ctx, summary, rows))
        return summary


def dataset_card(ctx: JobContext, summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    first = rows[0] if rows else {}
    return (
        "---\nlicense: other\ntags: [synthetic, chest-x-ray, medserve]\n---\n"
        "# Synthetic chest X-ray dataset (SYNTHETIC IMAGES: not real patients)\n\n"
        f"Generated by medserve job `{ctx.job.id}` with model `{first.get('model')}` "
        f"version `{first.get('version')}`, weights `{first.get('weights')}` "
        f"(digest `{first.get('weights_digest')}`).\n\n"
        f"Images: {summary['images']} of {summary['planned']} planned "
        f"over {summary['cells']} cells "
        f"(per cell {summary['per_cell_min']}-{summary['per_cell_max']}). "
        "Every PNG carries `synthetic=true` and its provenance in PNG text chunks; "
        "`metadata.jsonl` holds prompt, demographics, seed and model per image; "
        "`balance.json` the balance reached.\n\n"
        f"{qc_line(summary)}"
        'Load: `datasets.load_dataset("imagefolder", data_dir=<this folder>)`.\n'
        "Research use only; not for diagnosis.\n"
    )


def qc_line(summary: dict[str, Any]) -> str:
    """The dataset card's QC paragraph (empty without QC)."""
    qc = summary.get("qc")
    if not qc:
        return ""
    warned = "".join(f"\n- WARNING: {w}" for w in qc["warnings"])
    rate = "n/a" if qc["pass_rate"] is None else f"{qc['pass_rate']:.3f}"
    return (
        f"Quality control (machine-generated, `qc.md`): {qc['filled_slots']} of {qc['slots']} "
        f"image slots hold an image that passed ({qc['checked']} images checked, pass rate "
        f"{rate}); only accepted images are listed in `metadata.jsonl`.{warned}\n\n"
    )
