"""The job API through the real gateway app, real Redis and a real job runner process:
submit (202), idempotency, tenant isolation, listing, SSE progress, cancel, artifacts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.harness import JobsEnv

ALICE = {"Authorization": "Bearer key-alice"}
BOB = {"Authorization": "Bearer key-bob"}


@pytest.fixture
def api(jobs_env: JobsEnv) -> Iterator[TestClient]:
    settings = jobs_env.settings.model_copy(update={"api_keys": ["key-alice:alice", "key-bob:bob"]})
    with TestClient(create_app(settings)) as client:
        yield client


def sse_events(client: TestClient, path: str, headers: dict[str, str]) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    with client.stream("GET", path, headers=headers, timeout=60) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event:
                events.append((event, json.loads(line[len("data: ") :])))
    return events


def test_submit_is_idempotent_per_tenant(api: TestClient) -> None:
    body = {"type": "sleep", "params": {"items": 3, "item_ms": 1}}
    first = api.post("/v1/jobs", json=body, headers={**ALICE, "Idempotency-Key": "k-1"})
    again = api.post("/v1/jobs", json=body, headers={**ALICE, "Idempotency-Key": "k-1"})
    other = api.post("/v1/jobs", json=body, headers={**BOB, "Idempotency-Key": "k-1"})

    assert first.status_code == 202 and again.status_code == 202
    assert first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["id"] != first.json()["id"]  # keys are scoped per tenant

    changed = {"type": "sleep", "params": {"items": 4, "item_ms": 1}}
    clash = api.post("/v1/jobs", json=changed, headers={**ALICE, "Idempotency-Key": "k-1"})
    assert clash.status_code == 409
    assert "Idempotency-Key" in clash.json()["error"]["message"]


def test_tenants_see_only_their_own_jobs(api: TestClient) -> None:
    job = api.post("/v1/jobs", json={"type": "sleep", "params": {"items": 2}}, headers=ALICE).json()
    for path in ("", "/events", "/artifacts", "/artifacts/items.jsonl"):
        answer = api.get(f"/v1/jobs/{job['id']}{path}", headers=BOB)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found"
    assert api.post(f"/v1/jobs/{job['id']}/cancel", headers=BOB).status_code == 404
    assert api.get("/v1/jobs", headers=BOB).json()["jobs"] == []
    assert [j["id"] for j in api.get("/v1/jobs", headers=ALICE).json()["jobs"]] == [job["id"]]


def test_bad_submissions_get_clear_4xx(api: TestClient) -> None:
    unknown = api.post("/v1/jobs", json={"type": "nope"}, headers=ALICE)
    assert unknown.status_code == 422
    assert "sleep" in unknown.json()["error"]["message"]
    bad = api.post("/v1/jobs", json={"type": "sleep", "params": {"items": -1}}, headers=ALICE)
    assert bad.status_code == 422
    assert "items" in bad.json()["error"]["message"]
    assert api.get("/v1/jobs?state=bogus", headers=ALICE).status_code == 422
    # a typo never starts the default (expensive) campaign: it is refused with a suggestion
    typo = api.post("/v1/jobs", json={"type": "sleep", "params": {"itmes": 5}}, headers=ALICE)
    assert typo.status_code == 422
    assert "unknown param 'itmes' (did you mean 'items'?)" in typo.json()["error"]["message"]
    huge = {"type": "synthetic-dataset", "params": {"n_images": 10**12}}
    refused = api.post("/v1/jobs", json=huge, headers=ALICE)
    assert refused.status_code == 422 and "n_images" in refused.json()["error"]["message"]
    assert api.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_list_filters_and_paginates(api: TestClient) -> None:
    body = {"type": "sleep", "params": {"items": 1}}
    ids = [api.post("/v1/jobs", json=body, headers=ALICE).json()["id"] for _ in range(5)]
    api.post(f"/v1/jobs/{ids[0]}/cancel", headers=ALICE)  # queued (no runner): cancelled at once
    page1 = api.get("/v1/jobs?limit=3", headers=ALICE).json()
    page2 = api.get(f"/v1/jobs?limit=3&offset={page1['next_offset']}", headers=ALICE).json()
    assert [j["id"] for j in page1["jobs"] + page2["jobs"]] == ids[::-1]
    assert page2["next_offset"] is None
    cancelled = api.get("/v1/jobs?state=cancelled&type=sleep", headers=ALICE).json()["jobs"]
    assert [j["id"] for j in cancelled] == [ids[0]]


def test_events_stream_progress_until_done_then_artifacts(
    api: TestClient, jobs_env: JobsEnv
) -> None:
    jobs_env.start_runner()
    job = api.post(
        "/v1/jobs", json={"type": "sleep", "params": {"items": 20, "item_ms": 40}}, headers=ALICE
    ).json()
    events = sse_events(api, f"/v1/jobs/{job['id']}/events", ALICE)

    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["state"] == "succeeded"
    progress = [data["progress"]["done"] for kind, data in events if kind == "progress"]
    assert len(progress) >= 3  # intermediate updates, not just start and end
    assert progress == sorted(progress) and progress[-1] == 20
    assert any(0 < done < 20 for done in progress)

    listing = api.get(f"/v1/jobs/{job['id']}/artifacts", headers=ALICE).json()
    paths = [a["path"] for a in listing["artifacts"]]
    assert "items.jsonl" in paths and not any(p.startswith(".") for p in paths)
    body = api.get(f"/v1/jobs/{job['id']}/artifacts/items.jsonl", headers=ALICE)
    assert body.status_code == 200
    assert [json.loads(line)["index"] for line in body.text.splitlines()] == list(range(20))
    escape = api.get(f"/v1/jobs/{job['id']}/artifacts/..%2F..%2Fx", headers=ALICE)
    assert escape.status_code in (404, 422)


def test_cancel_running_job_through_api(api: TestClient, jobs_env: JobsEnv) -> None:
    jobs_env.start_runner()
    job = api.post(
        "/v1/jobs", json={"type": "sleep", "params": {"items": 500, "item_ms": 20}}, headers=ALICE
    ).json()
    jobs_env.wait(job["id"], lambda j: j.shards_done >= 1, 30, "a finished shard")
    answer = api.post(f"/v1/jobs/{job['id']}/cancel", headers=ALICE)
    assert answer.status_code == 202
    assert answer.json()["cancel_requested"] is True
    done = jobs_env.wait(job["id"], lambda j: j.terminal, 3.0, "the job to stop")
    assert done.state == "cancelled"
    final = api.get(f"/v1/jobs/{job['id']}", headers=ALICE).json()
    assert final["state"] == "cancelled" and final["progress"]["done"] == 5 * done.shards_done
    again = api.post(f"/v1/jobs/{job['id']}/cancel", headers=ALICE)
    assert again.status_code == 202 and again.json()["state"] == "cancelled"
