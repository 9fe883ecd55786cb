"""Durability of jobs on real Redis with real `medserve jobs-worker` processes.

SIGKILL of a runner mid-job, a Redis restart mid-job, cancellation and failure: the output
of every finished job has each item exactly once, and finished shards are never redone.
"""

from __future__ import annotations

import json
import subprocess
import time

from tests.harness import CLI, ROOT, JobsEnv, wait_until


def read_items(env: JobsEnv, job_id: str) -> list[int]:
    job = env.store.get(job_id)
    path = job.artifact_uri + "/items.jsonl"
    with open(path) as handle:
        return [json.loads(line)["index"] for line in handle if line.strip()]


def test_sigkill_mid_job_resumes_from_last_finished_shard(jobs_env: JobsEnv) -> None:
    first = jobs_env.start_runner()
    job = jobs_env.submit("sleep", {"items": 40, "item_ms": 60})  # 8 shards of 5
    jobs_env.wait(job.id, lambda j: j.shards_done >= 2, 30, "two finished shards")
    first.kill()
    finished_before = set(jobs_env.store.shards(job.id))
    assert 2 <= len(finished_before) < 8

    jobs_env.start_runner()
    done = jobs_env.wait(job.id, lambda j: j.terminal, 60, "the job to finish on the second runner")

    assert done.state == "succeeded"
    assert done.attempt == 2
    assert read_items(jobs_env, job.id) == list(range(40))  # no duplicates, no gaps, in order
    shards = jobs_env.store.shards(job.id)
    assert sorted(shards) == list(range(8))
    starts = jobs_env.store.shard_starts(job.id)
    for shard in finished_before:
        assert shards[shard]["attempt"] == 1  # committed by the killed runner ...
        assert starts[shard] == 1  # ... and never started again
    redone = [s for s, n in starts.items() if n > 1]
    assert len(redone) <= 1  # only the shard in flight at the kill ran twice
    assert all(shards[s]["attempt"] == 2 for s in set(shards) - finished_before)
    assert done.done == 40 and done.total == 40


def test_redis_restart_mid_job_continues(jobs_env: JobsEnv) -> None:
    jobs_env.start_runner()
    job = jobs_env.submit("sleep", {"items": 30, "item_ms": 50})
    jobs_env.wait(job.id, lambda j: j.shards_done >= 1, 30, "a finished shard")
    jobs_env.server.restart(down_s=1.0)
    assert jobs_env.store.get(job.id).state == "running"  # the restart happened mid-job

    done = jobs_env.wait(job.id, lambda j: j.terminal, 60, "the job to finish after the restart")
    assert done.state == "succeeded"
    assert read_items(jobs_env, job.id) == list(range(30))
    assert done.done == 30


def test_cancel_stops_within_a_second_and_keeps_finished_shards(jobs_env: JobsEnv) -> None:
    jobs_env.start_runner()
    job = jobs_env.submit("sleep", {"items": 400, "item_ms": 40})
    jobs_env.wait(job.id, lambda j: j.shards_done >= 2, 30, "two finished shards")
    asked = time.monotonic()
    jobs_env.control.cancel("t1", job.id)
    # the runner polls the flag every 0.2 s between items (40 ms each), not at the heartbeat
    cancelled = jobs_env.wait(job.id, lambda j: j.terminal, 10.0, "the job to stop")
    latency = time.monotonic() - asked
    print(f"cancel latency: {latency:.2f} s")
    assert latency < 1.5, f"cancel took {latency:.2f} s"

    assert cancelled.state == "cancelled"
    kept = read_items(jobs_env, job.id)
    assert kept == list(range(len(kept)))
    assert len(kept) == cancelled.done == 5 * cancelled.shards_done
    assert cancelled.summary["items_written"] == len(kept)
    assert cancelled.shards_done < 40


def test_failing_item_fails_job_with_safe_message(jobs_env: JobsEnv) -> None:
    jobs_env.start_runner()
    job = jobs_env.submit("sleep", {"items": 12, "item_ms": 1, "fail_at": 7})
    failed = jobs_env.wait(job.id, lambda j: j.terminal, 30, "the job to fail")
    assert failed.state == "failed"
    assert failed.error == "item 7 failed on purpose (fail_at)"
    assert failed.shards_done == 1  # shard 0 (items 0-4) was kept


def test_jobs_check_sees_a_live_runner_and_not_a_dead_one(jobs_env: JobsEnv) -> None:
    def check() -> int:
        env = jobs_env.env()
        return subprocess.run([*CLI, "jobs", "check", "--runner", ""], env=env, cwd=ROOT,
                              capture_output=True, timeout=60).returncode  # fmt: skip

    assert check() == 1  # no runner yet
    runner = jobs_env.start_runner()
    wait_until(lambda: check() == 0, 60, "the runner's heartbeat", every=0.5)
    runner.kill()
    jobs_env.store.r.flushdb()  # the heartbeat key would expire after 3 leases; drop it now
    assert check() == 1
