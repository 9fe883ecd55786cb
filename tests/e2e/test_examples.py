"""Every request in `examples/**/*.json` runs against a real stack serving the models it names.

Format: {"method", "path", "models", "body" | "body_file" + "content_type", "headers",
"expect_status", "description"}. Job examples (`/v1/jobs`) get a stack with a private Redis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FILES = sorted(EXAMPLES.rglob("*.json"))
REQUIRED = {"method", "path", "expect_status", "description"}


def test_the_examples_folder_is_not_empty() -> None:
    assert FILES, f"no example requests under {EXAMPLES}"


def _load(path: Path) -> dict[str, Any]:
    example = json.loads(path.read_text())
    missing = REQUIRED - set(example)
    assert not missing, f"{path.relative_to(ROOT)} lacks {sorted(missing)}"
    return example


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_example(path: Path, embedded_stack, request: pytest.FixtureRequest) -> None:
    example = _load(path)
    models = list(example.get("models") or ["echo"])
    overrides: dict[str, Any] = {}
    if example["path"].startswith("/v1/jobs"):
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    stack = embedded_stack(models, **overrides)
    headers = dict(example.get("headers") or {})
    kwargs: dict[str, Any] = {"headers": headers}
    if "body_file" in example:
        kwargs["content"] = (path.parent / example["body_file"]).read_bytes()
        if example.get("content_type"):
            headers["Content-Type"] = example["content_type"]
    elif example.get("body") is not None:
        kwargs["json"] = example["body"]
    answer = stack.client.request(example["method"], example["path"], **kwargs)
    assert answer.status_code == example["expect_status"], (
        f"{path.relative_to(ROOT)}: {example['description']}\n"
        f"got {answer.status_code}: {answer.text[:2000]}"
    )
