"""The client cannot drift from the server: every operation of the served OpenAPI document has
a client method (or a reviewed reason to leave it to another client), every request field and
parameter is one of its arguments, and every job type has a submit method whose arguments are
the type's parameters. The checks are shown to catch a planted route and a planted field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.settings import GatewaySettings
from medserve_client import AsyncClient, Client
from medserve_client.client import STREAMS
from medserve_client.routes import Route, routes_of
from service.app import create_app
from workers.jobs.types import JOB_TYPES, job_type

# Operations the client leaves to other clients, on purpose (reviewed; keep the reasons).
LEFT_TO_OTHERS = {
    "/v2": "Open Inference Protocol v2: use tritonclient.http / tritonclient.grpc",
    "POST /v1/chat/completions": "OpenAI-compatible: use the openai SDK (base_url=<gateway>/v1)",
    "POST /v1/completions": "OpenAI-compatible: use the openai SDK (base_url=<gateway>/v1)",
    "GET /metrics": "Prometheus text for scrapers, not an API call",
}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document the gateway serves at /openapi.json (the same `app.openapi()` call)."""
    return create_app(GatewaySettings()).openapi()


def _left_to_others(method: str, path: str) -> bool:
    return f"{method} {path}" in LEFT_TO_OTHERS or any(
        path == key or path.startswith(key + "/") for key in LEFT_TO_OTHERS if key.startswith("/")
    )


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def spec_fields(spec: dict[str, Any], op: dict[str, Any]) -> set[str]:
    """Every request body property and every path, query and header parameter."""
    names = {p["name"].lower().replace("-", "_") for p in op.get("parameters", [])}
    content = op.get("requestBody", {}).get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    if media is not None:
        names |= set(_resolve(spec, media.get("schema", {})).get("properties", {}))
    return names


def _covered(route: Route[Any, Any]) -> set[str]:
    return set(route.parameters()) | set(route.names) | set(route.omit)


def drift(spec: dict[str, Any], cls: type) -> list[str]:
    """What the served spec has that the client lacks, and client routes the spec lacks."""
    routes = [r for r in routes_of(cls) if r.job_type is None]
    problems, seen = [], set()
    for path, item in spec["paths"].items():
        for method in (m for m in item if m in METHODS):
            key = (method.upper(), path)
            seen.add(key)
            if _left_to_others(*key):
                continue
            if key in STREAMS:
                if not callable(getattr(cls, STREAMS[key], None)):
                    problems.append(f"{cls.__name__} lacks {STREAMS[key]} for {key}")
                continue
            mine = [r for r in routes if (r.method, r.path) == key]
            if not mine:
                problems.append(
                    f"no client method for {method.upper()} {path}: add a @route method in "
                    "medserve_client/ or a reasoned LEFT_TO_OTHERS entry"
                )
                continue
            missing = spec_fields(spec, item[method]) - set().union(*map(_covered, mine))
            if missing:
                names = ", ".join(r.name for r in mine)
                problems.append(f"{names} ({method.upper()} {path}) lacks {sorted(missing)}")
    for r in routes:
        if (r.method, r.path) not in seen:
            problems.append(f"{r.name}: {r.method} {r.path} is not in the served spec")
    return problems


def job_drift(cls: type) -> list[str]:
    """Job types without a submit method, and parameters a method lacks or invents."""
    by_type = {r.job_type: r for r in routes_of(cls) if r.job_type is not None}
    problems = [f"{r.name}: no job type {t!r} on the server" for t, r in by_type.items()
                if t not in JOB_TYPES]  # fmt: skip
    for name in JOB_TYPES:
        route = by_type.get(name)
        if route is None:
            problems.append(f"no submit_{name.replace('-', '_')} for job type {name!r}")
            continue
        fields = set(job_type(name).Params.model_fields)
        args = set(route.parameters()) - {"idempotency_key"}
        if fields - args:
            problems.append(f"{route.name} lacks {sorted(fields - args)}")
        if args - fields:
            problems.append(f"{route.name} sends {sorted(args - fields)}, unknown to {name!r}")
    return problems


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_every_served_operation_and_field_has_a_client_method(spec, cls) -> None:
    assert drift(spec, cls) == []


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_every_job_type_has_a_submit_method_with_its_parameters(cls) -> None:
    assert job_drift(cls) == []


def test_a_new_route_or_field_in_the_spec_fails_the_check(spec) -> None:
    planted = copy.deepcopy(spec)
    planted["paths"]["/v1/chexagent/report"] = {"post": {"responses": {}}}
    schema = _resolve(planted, planted["paths"]["/v1/roentgen/generate"]["post"]["requestBody"]
                      ["content"]["application/json"]["schema"])  # fmt: skip
    schema["properties"]["view"] = {"type": "string"}
    found = drift(planted, Client)
    assert any("POST /v1/chexagent/report" in p for p in found), found
    assert any("roentgen_generate" in p and "'view'" in p for p in found), found


def test_a_new_job_type_or_parameter_fails_the_check(monkeypatch) -> None:
    monkeypatch.setitem(JOB_TYPES, "chexagent-reports", JOB_TYPES["sleep"])
    found = job_drift(Client)
    assert any("'chexagent-reports'" in p for p in found), found
    sleep = job_type("sleep").Params
    monkeypatch.setitem(sleep.model_fields, "jitter_ms", copy.copy(sleep.model_fields["items"]))
    assert any("submit_sleep lacks ['jitter_ms']" in p for p in job_drift(Client))


def test_the_allow_list_names_only_operations_that_exist(spec) -> None:
    ops = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item if m in METHODS}
    for key in LEFT_TO_OTHERS:
        assert key in ops or any(op.split(" ", 1)[1].startswith(key) for op in ops), key
