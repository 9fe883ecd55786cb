"""The artifacts of `benchmark-smmile`: accuracy per condition (zero-shot, ICL, ablations), per
speciality and image type, as upstream's evaluation and stratification JSONs hold them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

STRATA = ("speciality", "flag_image_type")


def _condition(ctx: JobContext, items: list[dict], records: dict[int, dict]) -> dict[str, Any]:
    from workers.benchmarks import smmile_scoring as scoring
    from workers.jobs.types.benchmark_smmile_run import problem_for, problems_of

    problems = problems_of(ctx.params["source"])
    by_id = {pr.problem_id: pr for pr in problems}
    examples = {(e.problem_id, e.order): e for pr in problems for e in pr.examples}
    answered = [(i, records[i["index"]]) for i in items if i["index"] in records]
    pids = [i["problem_id"] for i, _ in answered]
    mode = "0-shot" if items[0].get("icl") is None else "ICL"
    main = scoring.summarize(
        pids, [r["correct"] for _, r in answered], [r.get("response") for _, r in answered]
    )
    scored = [problem_for(i, by_id, examples) for i, _ in answered]
    out: dict[str, Any] = {
        "n": len(items),
        "answered": len(answered),
        "scoring": "mcqa" if items[0].get("options") else "exact_match",
        "accuracy": main["accuracy"],
        "summary": main,
        "stratification": scoring.stratify(scored, main["problem_accuracies"], mode),
    }
    if any("judge_correct" in r for _, r in answered):
        judge_errors = sum(1 for _, r in answered if not r.get("judge_well_formed"))
        judged = scoring.summarize(
            pids, [bool(r.get("judge_correct")) for _, r in answered], judge_errors=judge_errors
        )
        out["llm_judge"] = {
            "accuracy": judged["accuracy"],
            "summary": judged,
            "stratification": scoring.stratify(scored, judged["problem_accuracies"], mode),
        }
    return out


def _table(results: dict[str, dict], key: str, title: str) -> list[str]:
    conditions = list(results)
    values = sorted(
        {v for r in results.values() for v in r["stratification"].get(f"{key}_accuracy", {})}
    )
    lines = [
        "",
        f"## {title}",
        "",
        "| " + title.lower() + " | " + " | ".join(conditions) + " |",
        "|---|" + "---:|" * len(conditions),
    ]
    for value in values:
        cells = []
        for c in conditions:
            acc = results[c]["stratification"].get(f"{key}_accuracy", {}).get(value)
            cells.append("-" if acc is None else f"{acc:.1f}")
        lines.append(f"| {value} | " + " | ".join(cells) + " |")
    return lines


def _report(doc: dict[str, Any]) -> str:
    results = doc["conditions"]
    judged = any("llm_judge" in r for r in results.values())
    lines = [
        "# SMMILE",
        "",
        f"Model {doc['endpoint']['model']} at {doc['endpoint']['base_url']}; format "
        f"{doc['task_format']}; {doc['problems']} problems. Accuracy in %.",
        "",
        "| condition | answered | "
        + ("exact match" if doc["task_format"] == "open" else "MCQA accuracy")
        + (" | LLM judge | judge format errors" if judged else "")
        + " |",
        "|---|---:|---:|" + ("---:|---:|" if judged else ""),
    ]
    for name, r in results.items():
        row = f"| {name} | {r['answered']}/{r['n']} | {r['accuracy']:.1f}"
        if judged:
            j = r.get("llm_judge")
            row += f" | {j['accuracy']:.1f} | {j['summary']['llm_err_count']}" if j else " | - | -"
        lines.append(row + " |")
    if "ICL" in results and "0-shot" in results:
        gain = results["ICL"]["accuracy"] - results["0-shot"]["accuracy"]
        lines += ["", f"ICL minus zero-shot: {gain:+.1f} points."]
    lines += _table(results, "speciality", "Speciality")
    lines += _table(results, "flag_image_type", "Image type")
    return "\n".join(lines) + "\n"


def write_outputs(ctx: JobContext, plan: list[dict], records: dict[int, dict]) -> dict[str, Any]:
    from workers.jobs.benchmarking import bar_chart, write_parquet

    p = ctx.params
    conditions = list(dict.fromkeys(i["condition"] for i in plan))
    results = {
        c: _condition(ctx, [i for i in plan if i["condition"] == c], records) for c in conditions
    }
    endpoint = {k: p["endpoint"][k] for k in ("base_url", "model")}
    doc = {
        "benchmark": "SMMILE",
        "source": p["source"],
        "endpoint": endpoint,
        "judge": {k: p["judge"][k] for k in ("base_url", "model")} if p.get("judge") else None,
        "task_format": p["task_format"],
        "answer_role": p["answer_role"],
        "problems": len(plan) // max(len(conditions), 1),
        "conditions": results,
        "machine_generated": True,
    }
    ctx.artifacts.write_text("metrics.json", json.dumps(doc, indent=2, sort_keys=True))
    ctx.artifacts.write_text("report.md", _report(doc))
    series = {"all": {c: r["accuracy"] for c, r in results.items()}}
    for value in sorted(
        {v for r in results.values() for v in r["stratification"].get("speciality_accuracy", {})}
    ):
        series[value] = {
            c: r["stratification"].get("speciality_accuracy", {}).get(value)
            for c, r in results.items()
        }
    ctx.artifacts.write_bytes("accuracy.png", bar_chart(series, "SMMILE accuracy", "%", 100.0))
    rows = [
        {
            **{
                k: i.get(k)
                for k in (
                    "index",
                    "condition",
                    "problem_id",
                    "icl",
                    "options",
                    "correct_option",
                    "injected",
                    "moved",
                )
            },
            **records.get(i["index"], {"error": "not asked (job stopped early)"}),
        }
        for i in plan
    ]
    write_parquet(ctx.artifacts, "samples.parquet", rows)
    summary: dict[str, Any] = {c: round(r["accuracy"], 4) for c, r in results.items()}
    return {"problems": doc["problems"], "accuracy": summary}
