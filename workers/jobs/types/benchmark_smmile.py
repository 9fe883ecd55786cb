"""`benchmark-smmile`: the SMMILE multimodal in-context-learning benchmark against any
OpenAI-compatible multimodal endpoint (vLLM, the platform's own `/v1`, an API).

Each problem is asked once per condition: zero-shot (`0-shot`) and in-context (`ICL`), as the
released `inference_openai.py` asks it (`workers.benchmarks.smmile_prompts`), and, as options,
the paper's two ablations: `ICL+irrelevant` (one in-context example of another problem, of
another speciality when there is one, injected) and `ICL+most_relevant_first|last` (the most
relevant example moved to the first or last slot). Open questions are scored by exact match
(`evaluate_EM.py`) and, with a `judge` endpoint, by the LLM judge (`evaluate_LLMJudge.py`);
multiple-choice ones by the released option extraction. Results per condition, per speciality
and per image type (`stratify.py`). Every random draw (MCQA option order, the injected example
and its slot) is made once, in the frozen plan, so a resumed job asks the same questions.
Artifacts: `metrics.json`, `report.md`, `accuracy.png`, `samples.parquet`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from core.errors import InvalidInput
from workers.jobs.benchmarking import Endpoint, read_parts, write_part
from workers.jobs.types import JobParams, JobType

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext


class SmmileParams(JobParams):
    source: str = Field(
        ..., min_length=1, description="SMMILE copy: a folder of parquet files, one, or a URL."
    )
    endpoint: Endpoint = Field(..., description="The multimodal model under test.")
    modes: list[Literal["0-shot", "ICL"]] = Field(["0-shot", "ICL"], min_length=1)
    task_format: Literal["open", "mcqa"] = "open"
    answer_role: Literal["system", "assistant"] = Field(
        "system", description="Role of the in-context answers (upstream OpenAI script: system)."
    )
    irrelevant_example: bool = Field(False, description="Ablation: add `ICL+irrelevant`.")
    irrelevant_position: Literal["random", "first", "last"] = "random"
    most_relevant: list[Literal["first", "last"]] = Field(
        [], description="Ablation: add `ICL+most_relevant_<where>` for each."
    )
    judge: Endpoint | None = Field(None, description="LLM judge for open questions.")
    judge_temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Unset: the judge's default, as upstream (ollama)."
    )
    strict_match: bool = Field(False, description="Exact match without normalisation.")
    seed: int = Field(42, description="MCQA option order and the injected example.")
    limit: int | None = Field(None, ge=1, description="First N problems.")
    max_tokens: int = Field(512, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight.")

    @model_validator(mode="after")
    def _consistent(self) -> SmmileParams:
        if self.judge is not None and self.task_format != "open":
            raise ValueError("the LLM judge scores open questions; drop judge for mcqa")
        return self

    def conditions(self) -> list[str]:
        out = list(dict.fromkeys(self.modes))
        if self.irrelevant_example:
            out.append("ICL+irrelevant")
        out += [f"ICL+most_relevant_{where}" for where in dict.fromkeys(self.most_relevant)]
        return out


def _refs(examples: Any) -> list[list[Any]]:
    return [[e.problem_id, e.order] for e in examples]


def _arrangements(problems: list[Any], conditions: list[str], p: dict[str, Any]) -> dict:
    """Per condition, per problem: the in-context examples (as references) and notes."""
    import random

    from workers.benchmarks.smmile_prompts import inject_irrelevant, place_most_relevant

    rng = random.Random(p["seed"])
    out: dict[str, list[dict[str, Any]]] = {}
    for condition in conditions:
        rows = []
        for problem in problems:
            note: dict[str, Any] = {}
            if condition == "0-shot":
                icl: list[list[Any]] | None = None
            elif condition == "ICL+irrelevant":
                changed, extra = inject_irrelevant(problem, problems, rng, p["irrelevant_position"])
                icl, note = _refs(changed.icl), {"injected": [extra.problem_id, extra.order]}
            elif condition.startswith("ICL+most_relevant_"):
                where = condition.rsplit("_", 1)[1]
                changed, moved = place_most_relevant(problem, where)
                icl, note = _refs(changed.icl), {"moved": moved}
            else:
                icl = _refs(problem.icl)
            rows.append({"icl": icl, **note})
        out[condition] = rows
    return out


class SmmileBenchJob(JobType):
    name = "benchmark-smmile"
    Params = SmmileParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        import random

        from workers.benchmarks.smmile_prompts import mcqa_options
        from workers.jobs.types.benchmark_smmile_run import problems_of

        p = ctx.params
        problems = problems_of(p["source"])[: p.get("limit") or None]
        if not problems:
            raise InvalidInput(f"{p['source']} holds no complete SMMILE problem")
        conditions = SmmileParams.model_validate(p).conditions()
        if any(c != "0-shot" for c in conditions) and not any(pr.icl for pr in problems):
            raise InvalidInput("no problem has in-context examples; run modes ['0-shot'] only")
        rng = random.Random(p["seed"])  # upstream seeds the option order with 42
        options = [
            mcqa_options(pr, rng) if p["task_format"] == "mcqa" else (None, None) for pr in problems
        ]
        arranged = _arrangements(problems, conditions, p)
        items = []
        for condition in conditions:
            for k, problem in enumerate(problems):
                items.append(
                    {
                        "index": len(items),
                        "condition": condition,
                        "problem_id": problem.problem_id,
                        "options": options[k][0],
                        "correct_option": options[k][1],
                        **arranged[condition][k],
                    }
                )
        return items

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        from workers.jobs.types.benchmark_smmile_run import ask_shard

        records = ask_shard(ctx, items)
        write_part(ctx, "answers", shard, {"records": records})
        return {"failed": sum(1 for r in records if r.get("error"))}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        from workers.jobs.types.benchmark_smmile_outputs import write_outputs

        records = {
            r["index"]: r for part in read_parts(ctx, "answers", done) for r in part["records"]
        }
        return write_outputs(ctx, plan, records)
