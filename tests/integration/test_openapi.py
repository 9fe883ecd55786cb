"""The served OpenAPI document works in users' tools: it validates, every request body's
example succeeds when sent as is, path parameters have examples that exist, and Swagger UI
expands every operation without an error box (headless Chromium)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.harness import API_MODELS

MODELS = API_MODELS  # one stack for every route


@pytest.fixture(scope="module")
def stack(embedded_stack, redis_url: str):
    return embedded_stack(MODELS, redis_url=redis_url)


@pytest.fixture(scope="module")
def spec(stack) -> dict[str, Any]:
    return stack.client.get("/openapi.json").json()


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _example(spec: dict[str, Any], media: dict[str, Any]) -> Any:
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values()))["value"]
    schema = _resolve(spec, media.get("schema", {}))
    return (schema.get("examples") or [None])[0]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "delete")
    ]


def test_the_served_document_validates_and_has_no_dangling_reference(spec) -> None:
    validate(spec)  # openapi-spec-validator: the OpenAPI 3.1 schema, every $ref resolvable
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    # Swagger UI resolves references from the document root only
    assert refs and all(ref.startswith("#/components/schemas/") for ref in refs), set(refs)
    assert {"bearer", "apiKey"} <= set(spec["components"]["securitySchemes"])


def test_every_path_parameter_has_an_example(spec) -> None:
    missing = [
        f"{method.upper()} {path}: {param['name']}"
        for path, method, op in _operations(spec)
        for param in op.get("parameters", [])
        if param["in"] == "path" and not (param.get("example") or param.get("examples")
                                          or param.get("schema", {}).get("examples"))
    ]  # fmt: skip
    assert not missing, missing


def _path_example(param: dict[str, Any]) -> str:
    examples = param.get("examples") or param.get("schema", {}).get("examples") or []
    value = param.get("example", examples[0] if isinstance(examples, list) else None)
    if isinstance(examples, dict):
        value = next(iter(examples.values()))["value"]
    return str(value)


def test_every_request_body_example_succeeds_as_sent(stack, spec) -> None:
    job = stack.client.post("/v1/jobs", json={"type": "sleep", "params": {"items": 1}}).json()
    failures, sent = [], 0
    for path, method, op in _operations(spec):
        body = op.get("requestBody")
        if body is None:
            continue
        media = body["content"].get("application/json")
        assert media is not None, f"{path}: no JSON form"
        example = _example(spec, media)
        assert example is not None, f"{method.upper()} {path}: the body has no example"
        url = path
        for param in op.get("parameters", []):
            if param["in"] == "path":
                value = job["id"] if param["name"] == "job_id" else _path_example(param)
                url = url.replace("{" + param["name"] + "}", value)
        expected = sorted(code for code in op["responses"] if code.startswith("2"))
        answer = stack.client.request(method, url, json=example, timeout=300)
        sent += 1
        if str(answer.status_code) not in expected:
            failures.append(f"{method.upper()} {path}: {answer.status_code} {answer.text[:300]}")
    assert sent >= 8 and not failures, failures


def test_multipart_operations_list_every_field(spec) -> None:
    for path in ("/v1/medvae/encode", "/v1/medvae/decode"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        form = content["multipart/form-data"]["schema"]["properties"]
        fields = _resolve(spec, content["application/json"]["schema"])["properties"]
        b64 = {"image_base64", "latent_base64"}
        assert set(fields) - b64 <= set(form) and "file" in form, path


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")
def test_swagger_ui_expands_every_operation_without_an_error(stack) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto(stack.url + "/docs")
        page.wait_for_selector(".opblock-summary", timeout=30_000)
        summaries = page.locator(".opblock-summary")
        count = summaries.count()
        for index in range(count):
            summaries.nth(index).click()
        page.wait_for_timeout(1500)
        errors = page.locator(".errors-wrapper, .opblock .errors").all_inner_texts()
        text = page.inner_text("body")
        browser.close()
    assert count >= 20
    assert not [e for e in errors if e.strip()], errors
    assert "Resolver error" not in text and "Could not resolve reference" not in text
