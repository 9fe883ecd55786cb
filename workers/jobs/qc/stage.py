"""The QC stage of a campaign (reject and regenerate), and the report artifacts of any QC job.

A campaign item is an image slot. Attempt `a` of a slot generates with seed
`image_seed(item seed, a)` (attempt 0 keeps the campaign's seed, so unrejected images equal a
campaign without QC); each attempt is checked, the first that passes is the slot's image, and a
slot whose `max_attempts` all fail stays empty. Everything is a function of the plan and the
models, so a redone shard writes the same images and takes the same decisions. A shard writes
its images first, then `.shards/qc-NNNNN.jsonl` (every attempt with its scores),
`.shards/qc-models-NNNNN.json` (checks run, skipped, model provenance) and the metadata part
last; finalize reads finished shards only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from workers.jobs.qc import plots, report
from workers.jobs.qc.checks import Asked, Checker
from workers.roentgen.contract import image_seed

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

Render = Callable[[Any, dict[str, Any], int], tuple[bytes, dict[str, Any]]]
ATTEMPTS = "qc_images.jsonl"  # every checked image (each attempt of a campaign)
REJECTED = "rejected.jsonl"


def qc_part(shard: int) -> str:
    return f".shards/qc-{shard:05d}.jsonl"


def models_part(shard: int) -> str:
    return f".shards/qc-models-{shard:05d}.json"


def rejected_name(item: dict[str, Any], attempt: int) -> str:
    index = int(item["index"])
    return f"rejected/{index // 1000:04d}/{index:06d}-{attempt}.png"


def asked(item: dict[str, Any]) -> Asked:
    return Asked(item.get("finding"), item.get("sex"), item.get("age"), item.get("race"))


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def read_jsonl(ctx: JobContext, path: str) -> list[dict[str, Any]]:
    text = ctx.artifacts.read_bytes(path).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_slot(
    ctx: JobContext, item: dict[str, Any], render: Render, checker: Checker
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Generate and check one slot until an image passes; (accepted row or None, attempts)."""
    qc = ctx.params["qc"]
    tried: list[dict[str, Any]] = []
    for attempt in range(int(qc["max_attempts"])):
        png, row = render(ctx, item, image_seed(int(item["seed"]), attempt))
        row.update(checker.check(png, asked(item)), qc_attempt=attempt)
        if row["qc_passed"]:
            ctx.artifacts.write_bytes(item["file_name"], png)  # labelled synthetic by the worker
            row.update(qc_accepted=True, qc_attempts=attempt + 1)
            tried.append(row)
            return row, tried
        row["qc_accepted"] = False
        row["file_name"] = rejected_name(item, attempt) if qc["keep_rejected"] else None
        if row["file_name"]:
            ctx.artifacts.write_bytes(row["file_name"], png)
        tried.append(row)
        ctx.check()  # a cancelled job stops between attempts
    return None, tried


def run_shard(
    ctx: JobContext, shard: int, items: list[dict[str, Any]], render: Render, metadata: str
) -> dict[str, Any]:
    """One campaign shard with QC; writes the accepted rows to `metadata` last."""
    checker = Checker(ctx.models, ctx.params["qc"])
    accepted: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    per_replica = int(ctx.params["concurrency"])  # in flight on each worker of the generator
    with ThreadPoolExecutor(per_replica * ctx.models.replicas(ctx.params["model"])) as pool:
        for row, tried in pool.map(lambda item: run_slot(ctx, item, render, checker), items):
            if row is not None:
                accepted.append(row)
            attempts.extend(tried)
            ctx.item_done()
    write_checker(ctx, shard, checker, attempts)
    ctx.artifacts.write_text(metadata, jsonl(accepted))
    return {"images": len(accepted), "attempts": len(attempts), "empty_slots": len(items) -
            len(accepted)}  # fmt: skip


def write_checker(ctx: JobContext, shard: int, checker: Checker, rows: list[dict]) -> None:
    """A shard's QC rows and which checks and models produced them."""
    ctx.artifacts.write_text(qc_part(shard), jsonl(rows))
    info = {"active": checker.active, "skipped": checker.skipped,
            "provenance": list(checker.provenance.values())}  # fmt: skip
    ctx.artifacts.write_text(models_part(shard), json.dumps(info, sort_keys=True))


def merged(ctx: JobContext, done: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every QC row of the finished shards, and the union of their checks and models."""
    rows: list[dict[str, Any]] = []
    active: set[str] = set()
    skipped: dict[str, str] = {}
    models: dict[str, dict[str, Any]] = {}
    for shard in sorted(done):
        rows.extend(read_jsonl(ctx, qc_part(shard)))
        info = json.loads(ctx.artifacts.read_bytes(models_part(shard)))
        active.update(info["active"])
        skipped.update(info["skipped"])
        for entry in info["provenance"]:
            models.setdefault(f"{entry['check']}:{entry['model']}", entry)
    meta = {"checks_run": sorted(active), "skipped_checks": skipped,
            "models": sorted(models.values(), key=lambda m: (m["check"], m["model"]))}  # fmt: skip
    return rows, meta


def publish(
    ctx: JobContext, rows: list[dict[str, Any]], qc: dict[str, Any], extra: dict[str, Any],
    title: str,
) -> dict[str, Any]:  # fmt: skip
    """qc_attempts.jsonl, qc.json, qc.md and plots/; the job summary's `qc` part."""
    ctx.artifacts.write_text(ATTEMPTS, jsonl(rows))
    built = report.build(rows, qc, extra)
    ctx.artifacts.write_text("qc.json", json.dumps(built, indent=2))
    ctx.artifacts.write_text("qc.md", report.markdown(built, title))
    built_plots = plots.write_all(ctx.artifacts, built) if rows else []
    overall = built["overall"]
    return {
        "checked": overall["n"],
        "passed": overall["passed"],
        "pass_rate": overall["pass_rate"],
        "mean_label_f1": overall["label_f1"]["mean"],
        "checks_run": extra.get("checks_run"),
        "skipped_checks": extra.get("skipped_checks"),
        "warnings": [w["message"] for w in built["warnings"]],
        "artifacts": ["qc.json", "qc.md", ATTEMPTS, *built_plots],
    }


def finalize_campaign(ctx: JobContext, done: list[int]) -> dict[str, Any]:
    """The campaign's QC artifacts (and rejected split); the summary's `qc` part."""
    qc = ctx.params["qc"]
    rows, meta = merged(ctx, done)
    rejected = [r for r in rows if not r["qc_accepted"]]
    kept = {r["file_name"] for r in rejected if r.get("file_name")}
    for orphan in ctx.artifacts.list("rejected"):
        if orphan["path"] not in kept:  # written by a shard that never finished
            ctx.artifacts.delete(orphan["path"])
    if qc["keep_rejected"]:
        ctx.artifacts.write_text(REJECTED, jsonl([r for r in rejected if r.get("file_name")]))
    slots = [r for r in rows if r["qc_attempt"] == 0]
    filled = sum(bool(r["qc_accepted"]) for r in rows)
    extra = {**meta, "slots": len(slots), "filled_slots": filled,
             "max_attempts": qc["max_attempts"]}  # fmt: skip
    summary = publish(ctx, rows, qc, extra, "Synthetic campaign QC report")
    summary.update(slots=len(slots), filled_slots=filled, rejected_attempts=len(rejected))
    return summary
