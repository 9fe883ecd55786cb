"""`Client` (blocking) and `AsyncClient` (asyncio): every route, plus what streams.

    from medserve_client import Client
    with Client("http://127.0.0.1:8000", api_key=None) as client:
        result = client.roentgen_generate(age=60, sex="female", impression="No acute process.")
        result.images[0].save("cxr.png")

Streams are written out here for each flavour: a job's progress (server-sent events,
reconnecting when the connection drops), waiting for readiness, paging, downloads.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from medserve_client.api import Api
from medserve_client.api_reports import ReportsApi
from medserve_client.errors import InvalidRequest, MedserveClientError, NotFound
from medserve_client.job_types import JobTypesApi
from medserve_client.jobs import JobsApi
from medserve_client.resources import Artifact, Job, JobEvent, Readiness
from medserve_client.transport import (
    NOT_SENT,
    AsyncTransport,
    Options,
    SyncTransport,
    answer_error,
    delay_for,
    unreachable,
)

FULL_ID = 32  # job ids are 32 hex characters
PAGE = 500
STREAMS = {("GET", "/v1/jobs/{job_id}/events"): "job_events"}  # streamed routes, not `@route`


class SSEParser:
    """Server-sent events from text lines: (event, data) at each blank line."""

    def __init__(self) -> None:
        self.event, self.data = "message", []  # type: tuple[str, list[str]]

    def feed(self, line: str) -> tuple[str, dict[str, Any]] | None:
        if line.startswith(":"):
            return None
        if line:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self.event = value
            elif name == "data":
                self.data.append(value)
            return None
        if not self.data:
            return None
        out = (self.event, json.loads("\n".join(self.data)))
        self.event, self.data = "message", []
        return out


def match_prefix(prefix: str, jobs: list[Job]) -> Job | None:
    """The one job whose id starts with `prefix`; InvalidRequest when several do."""
    found = [j for j in jobs if j.id.startswith(prefix)]
    if len(found) > 1:
        ids = ", ".join(j.id for j in found[:5])
        raise InvalidRequest(422, "ambiguous_id", f"'{prefix}' matches several jobs ({ids}); "
                             "give more characters")  # fmt: skip
    return found[0] if found else None


def _no_prefix(prefix: str) -> NotFound:
    return NotFound(404, "not_found", f"no job id starts with '{prefix}'; list your jobs with "
                    "`medserve jobs status` or Client.list_jobs()")  # fmt: skip


def _target(folder: Path, artifact: Artifact) -> Path:
    target = (folder / artifact.path).resolve()
    if folder.resolve() not in target.parents:
        raise MedserveClientError(f"artifact path {artifact.path!r} leaves {folder}")
    return target


class Client(Api, ReportsApi, JobsApi, JobTypesApi, SyncTransport):
    """Blocking client. `base_url` and `api_key` default to MEDSERVE_URL / MEDSERVE_API_KEY."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout: float | httpx.Timeout | None = None, max_retries: int | None = None,
        max_retry_wait_s: float | None = None, headers: dict[str, str] | None = None,
        http: httpx.Client | None = None,
    ) -> None:  # fmt: skip
        options = Options.build(base_url, api_key, timeout=timeout, max_retries=max_retries,
                                max_retry_wait_s=max_retry_wait_s, headers=headers)  # fmt: skip
        SyncTransport.__init__(self, options, http)

    def with_options(self, **changes: Any) -> Client:
        """A client with other `timeout`, `max_retries` or `max_retry_wait_s`, same pool."""
        clone = Client.__new__(Client)
        SyncTransport.__init__(clone, self.options.with_changes(**changes), self._http)
        return clone

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 120.0, every_s: float = 0.5) -> Readiness:
        """Poll `/readyz` until ready; TimeoutError naming what is still not ready."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                state = self.readiness()
                if state.ready:
                    return state
                why = state.not_ready()
            except MedserveClientError as exc:
                why = {"gateway": str(exc)}
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not ready after {timeout_s:.0f} s: {why}")
            time.sleep(every_s)

    def iter_jobs(self, state: Any = None, type: str | None = None) -> Iterator[Job]:
        """Every job of yours, newest first, page by page."""
        offset: int | None = 0
        while offset is not None:
            page = self.list_jobs(state=state, type=type, offset=offset, limit=PAGE)
            yield from page.jobs
            offset = page.next_offset

    def find_job(self, id_or_prefix: str) -> Job:
        """A job by its full id or a unique prefix of it (as the CLI's progress bar shows)."""
        if len(id_or_prefix) >= FULL_ID:
            return self.get_job(id_or_prefix)
        found = match_prefix(id_or_prefix, list(self.iter_jobs()))
        if found is None:
            raise _no_prefix(id_or_prefix)
        return found

    def job_events(self, job_id: str) -> Iterator[JobEvent]:
        """The job's progress events until `end`; reconnects (bounded) when the stream drops."""
        attempt = 0
        while True:
            parser = SSEParser()
            try:
                with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise answer_error(r)
                    for line in r.iter_lines():
                        if (parsed := parser.feed(line)) is not None:
                            attempt = 0
                            yield JobEvent.parse(*parsed)
                            if parsed[0] == "end":
                                return
            except (httpx.TransportError, *NOT_SENT) as exc:
                wait = delay_for(self.options, attempt, None)
                if wait is None:
                    raise unreachable(self.options, exc) from None
                time.sleep(wait)
                attempt += 1

    def wait_job(
        self, job_id: str, on_progress: Callable[[Job], None] | None = None,
        timeout_s: float | None = None,
    ) -> Job:  # fmt: skip
        """Follow the job until it ends and return it (any final state: check `.succeeded`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for event in self.job_events(job_id):
            if event.job is not None and on_progress is not None:
                on_progress(event.job)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still running after {timeout_s:.0f} s")
        return self.get_job(job_id)

    def download_artifacts(
        self, job_id: str, folder: str | Path,
        on_bytes: Callable[[Artifact, int], None] | None = None,
    ) -> list[Path]:  # fmt: skip
        """Stream every artifact of the job into `folder` (same relative paths)."""
        folder, written = Path(folder), []
        for artifact in self.list_artifacts(job_id).artifacts:
            target = _target(folder, artifact)
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._http.stream("GET", artifact.url) as r, target.open("wb") as out:
                if r.status_code >= 400:
                    r.read()
                    raise answer_error(r)
                for block in r.iter_bytes():
                    out.write(block)
                    if on_bytes is not None:
                        on_bytes(artifact, len(block))
            written.append(target)
        return written


class AsyncClient(Api, ReportsApi, JobsApi, JobTypesApi, AsyncTransport):
    """The asyncio client: the same methods, awaited (`async for` for `job_events`)."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout: float | httpx.Timeout | None = None, max_retries: int | None = None,
        max_retry_wait_s: float | None = None, headers: dict[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:  # fmt: skip
        options = Options.build(base_url, api_key, timeout=timeout, max_retries=max_retries,
                                max_retry_wait_s=max_retry_wait_s, headers=headers)  # fmt: skip
        AsyncTransport.__init__(self, options, http)

    def with_options(self, **changes: Any) -> AsyncClient:
        clone = AsyncClient.__new__(AsyncClient)
        AsyncTransport.__init__(clone, self.options.with_changes(**changes), self._http)
        return clone

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def wait_ready(self, timeout_s: float = 120.0, every_s: float = 0.5) -> Readiness:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                state = await self.readiness()
                if state.ready:
                    return state
                why = state.not_ready()
            except MedserveClientError as exc:
                why = {"gateway": str(exc)}
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not ready after {timeout_s:.0f} s: {why}")
            await asyncio.sleep(every_s)

    async def find_job(self, id_or_prefix: str) -> Job:
        if len(id_or_prefix) >= FULL_ID:
            return await self.get_job(id_or_prefix)
        jobs: list[Job] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.list_jobs(offset=offset, limit=PAGE)
            jobs.extend(page.jobs)
            offset = page.next_offset
        found = match_prefix(id_or_prefix, jobs)
        if found is None:
            raise _no_prefix(id_or_prefix)
        return found

    async def job_events(self, job_id: str) -> AsyncIterator[JobEvent]:
        attempt = 0
        while True:
            parser = SSEParser()
            try:
                async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        raise answer_error(r)
                    async for line in r.aiter_lines():
                        if (parsed := parser.feed(line)) is not None:
                            attempt = 0
                            yield JobEvent.parse(*parsed)
                            if parsed[0] == "end":
                                return
            except (httpx.TransportError, *NOT_SENT) as exc:
                wait = delay_for(self.options, attempt, None)
                if wait is None:
                    raise unreachable(self.options, exc) from None
                await asyncio.sleep(wait)
                attempt += 1

    async def wait_job(
        self, job_id: str, on_progress: Callable[[Job], None] | None = None,
        timeout_s: float | None = None,
    ) -> Job:  # fmt: skip
        async def follow() -> None:
            async for event in self.job_events(job_id):
                if event.job is not None and on_progress is not None:
                    on_progress(event.job)

        await asyncio.wait_for(follow(), timeout_s)
        return await self.get_job(job_id)

    async def download_artifacts(self, job_id: str, folder: str | Path) -> list[Path]:
        folder, written = Path(folder), []
        for artifact in (await self.list_artifacts(job_id)).artifacts:
            target = _target(folder, artifact)
            target.parent.mkdir(parents=True, exist_ok=True)
            async with self._http.stream("GET", artifact.url) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise answer_error(r)
                with target.open("wb") as out:
                    async for block in r.aiter_bytes():
                        out.write(block)
            written.append(target)
        return written
