"""The per-request choice between replicas: power of two choices on outstanding requests."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from core.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotReady,
    Overloaded,
    Unavailable,
    Unreachable,
)
from service.replicas import Replica, any_replica, pick, retry_elsewhere


def replicas(n: int, ready: bool = True) -> list[Replica]:
    return [Replica(f"http://w{i}", ready=ready) for i in range(n)]


def test_one_replica_is_taken_only_when_ready_and_not_tried() -> None:
    [only] = replicas(1)
    assert pick([only]) is only
    assert pick([only], tried=[only]) is None
    only.ready = False
    assert pick([only]) is None
    assert any_replica([only]) is only  # metadata and stats need no ready model


def test_the_less_busy_of_two_always_wins_and_ties_split_evenly() -> None:
    a, b = replicas(2)
    a.inflight = 3
    assert all(pick([a, b]) is b for _ in range(200))
    a.inflight = b.inflight = 1
    random.seed(7)
    counts = Counter(pick([a, b]).url for _ in range(4000))
    assert abs(counts["http://w0"] - counts["http://w1"]) < 400


def test_not_ready_and_tried_replicas_are_skipped() -> None:
    a, b, c = replicas(3)
    b.ready = False
    assert {pick([a, b, c], tried=[a]).url for _ in range(50)} == {"http://w2"}
    assert pick([a, b, c], tried=[a, c]) is None


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_closed_loop_load_spreads_within_ten_percent(n: int) -> None:
    """Requests of random length keep 16 in flight: each replica gets about 1/n of them."""
    random.seed(n)
    pool = replicas(n)
    finishing: list[tuple[float, Replica]] = []
    now, served = 0.0, Counter[str]()
    for _ in range(20_000):
        while len(finishing) >= 16:  # the earliest request finishes
            finishing.sort(key=lambda f: f[0])
            now, done = finishing.pop(0)
            done.inflight -= 1
        chosen = pick(pool)
        assert chosen is not None
        chosen.inflight += 1
        served[chosen.url] += 1
        finishing.append((now + random.expovariate(1.0), chosen))
    even = 20_000 / n
    assert all(abs(count - even) < 0.1 * even for count in served.values()), served


def test_a_busy_replica_gets_fewer_requests() -> None:
    """A replica twice as slow ends up with fewer of the requests (least outstanding)."""
    random.seed(1)
    fast, slow = replicas(2)
    finishing: list[tuple[float, Replica]] = []
    now, served = 0.0, Counter[str]()
    for _ in range(10_000):
        while len(finishing) >= 16:
            finishing.sort(key=lambda f: f[0])
            now, done = finishing.pop(0)
            done.inflight -= 1
        chosen = pick([fast, slow])
        assert chosen is not None
        chosen.inflight += 1
        served[chosen.url] += 1
        finishing.append((now + random.expovariate(1.0 if chosen is fast else 0.5), chosen))
    assert served[fast.url] > 1.5 * served[slow.url]


def test_only_errors_where_the_replica_did_no_work_go_elsewhere() -> None:
    assert retry_elsewhere(Unreachable("refused"))  # connection refused
    assert retry_elsewhere(Unavailable("dropped"))  # dropped before an answer; or draining
    assert retry_elsewhere(ModelNotReady("loading"))
    assert not retry_elsewhere(DeadlineExceeded("slow"))  # it may still be working on it
    assert not retry_elsewhere(Overloaded("queue full"))  # it answered: its queue is full
    assert not retry_elsewhere(InvalidInput("bad tensor"))  # any replica would say the same
