"""`benchmark-smmile` per shard: rebuild each planned question from the copy, ask the endpoint,
score the answer (exact match or MCQA option), ask the judge for open questions."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from core.errors import DeadlineExceeded, MedserveError, Overloaded, Unavailable

if TYPE_CHECKING:
    from workers.benchmarks.smmile_data import Problem
    from workers.jobs.runner import JobContext

FATAL = (Overloaded, Unavailable, DeadlineExceeded)
JUDGE_MAX_TOKENS = 16  # the judge answers one digit; anything longer counts as malformed anyway
_PROBLEMS: dict[str, list[Problem]] = {}
_LOCK = threading.Lock()


def problems_of(source: str) -> list[Problem]:
    """The copy's problems, read once per runner process (the copy must not change mid-job)."""
    from workers.benchmarks.smmile_data import load_problems

    with _LOCK:
        if source not in _PROBLEMS:
            _PROBLEMS[source] = load_problems(source)
        return _PROBLEMS[source]


def problem_for(item: dict[str, Any], by_id: dict[str, Problem], examples: dict) -> Problem:
    problem = by_id[item["problem_id"]]
    if item.get("icl") is None:
        return problem
    return problem.with_icl(examples[(pid, order)] for pid, order in item["icl"])


def _ask(
    ctx: JobContext, clients: dict[str, Any], item: dict[str, Any], problem: Problem
) -> dict[str, Any]:
    from workers.benchmarks import smmile_scoring as scoring
    from workers.benchmarks.smmile_prompts import build_messages

    p = ctx.params
    mode = "0-shot" if item.get("icl") is None else "ICL"
    record: dict[str, Any] = {
        "index": item["index"],
        "condition": item["condition"],
        "problem_id": item["problem_id"],
        "error": None,
    }
    messages = build_messages(problem, mode, item.get("options"), p["answer_role"])
    body = {
        "model": p["endpoint"]["model"],
        "messages": messages,
        "temperature": p["temperature"],
        "max_tokens": p["max_tokens"],
        **clients["extra"],
    }
    try:
        response, finish = clients["model"].chat(body)
    except FATAL:
        raise
    except MedserveError as exc:  # this question is refused (too many images...): keep going
        return {**record, "response": "ERROR", "error": exc.message, "correct": False}
    record |= {"response": response, "finish_reason": finish}
    if item.get("options"):
        scored = scoring.score_mcqa(response, item["options"], item["correct_option"])
        record |= {**scored, "correct": scored["is_correct"]}
    else:
        answer = problem.query.answer
        record["correct"] = scoring.exact_match(answer, response, p["strict_match"])
        if clients.get("judge") is not None:
            record |= _judge(ctx, clients, problem.query.question, answer, response)
    return record


def _judge(
    ctx: JobContext, clients: dict[str, Any], question: str, answer: str, response: str
) -> dict[str, Any]:
    from workers.benchmarks import smmile_scoring as scoring

    p = ctx.params
    body: dict[str, Any] = {
        "model": p["judge"]["model"],
        "max_tokens": JUDGE_MAX_TOKENS,
        "messages": scoring.judge_messages(question, answer, response),
        **clients["judge_extra"],
    }
    if p.get("judge_temperature") is not None:
        body["temperature"] = p["judge_temperature"]
    try:
        reply, _ = clients["judge"].chat(body)
    except FATAL:
        raise
    except MedserveError as exc:
        return {
            "judge_reply": None,
            "judge_correct": False,
            "judge_well_formed": False,
            "judge_error": exc.message,
        }
    correct, well_formed = scoring.parse_judgment(reply)
    return {"judge_reply": reply, "judge_correct": correct, "judge_well_formed": well_formed}


def ask_shard(ctx: JobContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from workers.jobs.benchmarking import Endpoint, bounded_map

    p = ctx.params
    problems = problems_of(p["source"])
    by_id = {pr.problem_id: pr for pr in problems}
    examples = {(e.problem_id, e.order): e for pr in problems for e in pr.examples}
    endpoint = Endpoint.model_validate(p["endpoint"])
    judge = Endpoint.model_validate(p["judge"]) if p.get("judge") else None
    clients: dict[str, Any] = {
        "model": endpoint.client(),
        "extra": endpoint.extra(),
        "judge": judge.client() if judge else None,
        "judge_extra": judge.extra() if judge else {},
    }
    try:
        return bounded_map(
            ctx,
            items,
            lambda item: _ask(ctx, clients, item, problem_for(item, by_id, examples)),
            int(p["concurrency"]),
        )
    finally:
        for name in ("model", "judge"):
            if clients[name] is not None:
                clients[name].close()
