"""Benchmark job parameters (unknown fields refused at every level, cross-field rules), the
bounded concurrent map, Parquet cells and the sync LLM client's error mapping."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pyarrow.parquet as pq
import pytest

from core.errors import InvalidInput, Overloaded, UpstreamError
from workers.jobs.artifacts import ArtifactStore
from workers.jobs.benchmarking import Endpoint, bounded_map, write_parquet
from workers.jobs.types import job_type
from workers.runtime.llm_sync import EventLoop, _status_error

ENDPOINT = {"base_url": "http://vllm:8000/v1", "model": "m"}


def refused(kind: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        job_type(kind).validate(params)


def test_medval_params() -> None:
    kind = job_type("benchmark-medval")
    normal = kind.validate({"source": "copy"})
    assert normal["evaluator"] == {
        "model": "medval-4b",
        "base_url": None,
        "api_key_env": None,
        "timeout_s": 600.0,
        "priority": None,
    }
    assert normal["max_tokens"] == 1024 and normal["unsafe_from"] == 3
    refused("benchmark-medval", {"source": "c", "evaluater": {}}, "evaluator")
    refused("benchmark-medval", {"source": "c", "evaluator": {"modle": "x"}}, "evaluator.modle")
    refused("benchmark-medval", {"source": "c", "tasks": ["report2summary"]}, "unknown task")
    refused("benchmark-medval", {"source": "c", "evaluator": {"base_url": "vllm:8000"}}, "base_url")
    refused("benchmark-medval", {"source": "c", "unsafe_from": 1}, "unsafe_from")


def test_reports_params() -> None:
    kind = job_type("benchmark-reports")
    normal = kind.validate({"source": "pairs.csv"})
    assert normal["green"] == "auto" and normal["green_model"] == "green-radllama2-7b"
    assert normal["srrbert"] is None and normal["lexical"] is True
    spec = kind.validate({"source": "x", "srrbert": {"model": "srr-bert"}})["srrbert"]
    assert spec["label_set"] == "leaves_with_statuses" and spec["batch_size"] == 4
    refused("benchmark-reports", {"source": "x", "srrbert": {}}, "exactly one of worker, model_dir")
    refused(
        "benchmark-reports",
        {"source": "x", "srrg": {"model_dir": "a", "model": "b"}},
        "exactly one",
    )
    refused(
        "benchmark-reports", {"source": "x", "srrbert": {"model": "a", "labels": "x"}}, "labels"
    )
    refused("benchmark-reports", {"source": "x", "green": "yes"}, "green")
    refused("benchmark-reports", {"source": "x", "bertscore": {}}, "model_dir")


def test_smmile_params() -> None:
    kind = job_type("benchmark-smmile")
    normal = kind.validate({"source": "s", "endpoint": ENDPOINT})
    assert normal["modes"] == ["0-shot", "ICL"] and normal["answer_role"] == "system"
    assert normal["seed"] == 42 and normal["max_tokens"] == 512 and normal["temperature"] == 0
    refused("benchmark-smmile", {"source": "s"}, "endpoint")
    refused("benchmark-smmile", {"source": "s", "endpoint": {**ENDPOINT, "key": "k"}}, "key")
    refused("benchmark-smmile", {"source": "s", "endpoint": ENDPOINT, "modes": ["2-shot"]}, "modes")
    refused(
        "benchmark-smmile",
        {"source": "s", "endpoint": ENDPOINT, "task_format": "mcqa", "judge": ENDPOINT},
        "judge scores open questions",
    )
    refused(
        "benchmark-smmile",
        {"source": "s", "endpoint": {**ENDPOINT, "api_key_env": "a b"}},
        "api_key_env",
    )


def test_smmile_conditions_follow_the_ablation_options() -> None:
    from workers.jobs.types.benchmark_smmile import SmmileParams

    params = SmmileParams(
        source="s",
        endpoint=Endpoint(**ENDPOINT),
        modes=["ICL", "0-shot"],
        irrelevant_example=True,
        most_relevant=["last", "first", "last"],
    )
    assert params.conditions() == [
        "ICL",
        "0-shot",
        "ICL+irrelevant",
        "ICL+most_relevant_last",
        "ICL+most_relevant_first",
    ]


def test_endpoint_key_comes_from_the_runner_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = Endpoint(**ENDPOINT, api_key_env="BENCH_TEST_KEY", priority=5)
    monkeypatch.delenv("BENCH_TEST_KEY", raising=False)
    with pytest.raises(InvalidInput, match="no environment variable BENCH_TEST_KEY"):
        endpoint.client()
    monkeypatch.setenv("BENCH_TEST_KEY", "secret")
    client = endpoint.client()
    try:
        assert client.client.headers["Authorization"] == "Bearer secret"
        assert client.base_url == "http://vllm:8000/v1"
    finally:
        client.close()
    assert endpoint.extra() == {"priority": 5} and Endpoint(**ENDPOINT).extra() == {}


class Ctx:
    """The part of JobContext `bounded_map` uses; stops after `stop_after` items."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.done, self.stop_after = 0, stop_after

    def item_done(self) -> None:
        self.done += 1
        if self.stop_after is not None and self.done >= self.stop_after:
            raise RuntimeError("stop")


def test_bounded_map_keeps_order_and_bounds_concurrency() -> None:
    live, peak, lock = [0], [0], threading.Lock()

    def work(i: int) -> int:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.01 * (i % 3))
        with lock:
            live[0] -= 1
        return i * i

    ctx = Ctx()
    assert bounded_map(ctx, list(range(20)), work, 3) == [i * i for i in range(20)]  # type: ignore[arg-type]
    assert peak[0] <= 3 and ctx.done == 20


def test_bounded_map_drops_unstarted_items_on_a_stop() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.05)
        return i

    with pytest.raises(RuntimeError, match="stop"):
        bounded_map(Ctx(stop_after=2), list(range(40)), work, 2)  # type: ignore[arg-type]
    assert len(started) < 10  # in-flight items finish, the rest never start


def test_parquet_cells_keep_one_type_per_column(tmp_path) -> None:
    store = ArtifactStore(str(tmp_path))
    rows = [
        {"index": 0, "icl": None, "pair": ["p", 1], "opts": {"A": "x"}, "words": ["a"]},
        {"index": 1, "icl": [["p", 0]], "pair": ["q", 2], "opts": None, "words": []},
    ]
    write_parquet(store, "t.parquet", rows)
    table = pq.read_table(io.BytesIO(store.read_bytes("t.parquet"))).to_pylist()
    assert table[0]["pair"] == '["p", 1]' and table[1]["icl"] == '[["p", 0]]'
    assert table[0]["opts"] == '{"A": "x"}' and table[0]["words"] == ["a"]


def test_llm_status_errors_say_what_happened() -> None:
    assert isinstance(_status_error(503, None, "u"), Overloaded)
    refused_call = _status_error(400, {"error": {"message": "too many images"}}, "u")
    assert isinstance(refused_call, InvalidInput) and "too many images" in refused_call.message
    assert isinstance(_status_error(500, None, "u"), UpstreamError)
    loop = EventLoop()

    async def answer() -> int:
        return 7

    assert loop.run(answer()) == 7
    loop.close()
