"""Fencing and leases of the job record on real Redis: a stale runner cannot write."""

from __future__ import annotations

import time

from tests.harness import JobsEnv


def test_stale_runner_is_fenced_off(jobs_env: JobsEnv) -> None:
    store = jobs_env.store
    job, _ = store.create("sleep", "t1", {"items": 10}, artifact_root="memory://a")
    attempt_a, state = store.claim(job.id, "runner-a", lease_s=0.2)
    assert (attempt_a, state) == (1, "running")
    assert store.claim(job.id, "runner-b", lease_s=5) == (
        0,
        "leased",
    )  # lease held: duplicate dropped
    assert store.commit_shard(job.id, attempt_a, 0, 5, {}) == 1
    assert store.commit_shard(job.id, attempt_a, 0, 5, {}) == 0  # recorded once only

    time.sleep(0.3)  # runner A stalls past its lease ...
    assert store.running_without_lease() == [(job.id, 1)]
    assert store.requeue_once(job.id, 1, ttl_s=5) and not store.requeue_once(job.id, 1, ttl_s=5)
    attempt_b, _ = store.claim(job.id, "runner-b", lease_s=5)  # ... and B takes over
    assert attempt_b == 2

    assert store.commit_shard(job.id, attempt_a, 1, 5, {}) == -1  # A wakes up: every write refused
    assert store.update(job.id, attempt_a, partial=3) is False
    assert store.finish(job.id, attempt_a, "succeeded") is False
    assert store.heartbeat(job.id, "runner-a", attempt_a, 5) == 0

    assert store.commit_shard(job.id, attempt_b, 1, 5, {}) == 1
    assert store.finish(job.id, attempt_b, "succeeded", summary={"ok": True})
    final = store.get(job.id)
    assert (final.state, final.done, final.shards_done, final.attempt) == ("succeeded", 10, 2, 2)
    assert store.claim(job.id, "runner-c", lease_s=5) == (0, "succeeded")  # late redelivery
    assert store.running_without_lease() == []


def test_cancel_queued_and_heartbeat_reports_cancel(jobs_env: JobsEnv) -> None:
    store = jobs_env.store
    queued, _ = store.create("sleep", "t1", {}, artifact_root="memory://a")
    assert store.cancel(queued.id) == "cancelled"
    assert store.claim(queued.id, "r", lease_s=5) == (0, "cancelled")

    running, _ = store.create("sleep", "t1", {}, artifact_root="memory://a")
    attempt, _ = store.claim(running.id, "r", lease_s=5)
    assert store.heartbeat(running.id, "r", attempt, 5) == 1
    assert store.cancel(running.id) == "cancelling"
    assert store.heartbeat(running.id, "r", attempt, 5) == 2
