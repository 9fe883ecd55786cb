"""Every request in `examples/**/*.json` runs against a real stack serving the models it names.

Format: {"method", "path", "models", "body" | "body_file" + "content_type", "headers",
"expect_status", "description"}. Job examples (`/v1/jobs`) get a stack with a private Redis.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FILES = sorted(EXAMPLES.rglob("*.json"))
REQUIRED = {"method", "path", "expect_status", "expect_body", "description"}
MAGIC = {"png": b"\x89PNG", "npy": b"\x93NUMPY", "dicom": b"DICM", "gzip": b"\x1f\x8b"}


def matches(expected: Any, got: Any, where: str = "body") -> list[str]:
    """Where `got` departs from the `expected` subset (special strings: <present>,
    <contains:text>, <one-of:a|b>, <base64:png|npy|dicom|gzip>); lists match element-wise."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object"]
        problems = []
        for key, value in expected.items():
            if key not in got:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += matches(value, got[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) < len(expected):
            return [f"{where}: expected a list of at least {len(expected)}"]
        return [p for i, e in enumerate(expected) for p in matches(e, got[i], f"{where}[{i}]")]
    if isinstance(expected, str) and expected.startswith("<") and expected.endswith(">"):
        kind, _, arg = expected[1:-1].partition(":")
        ok = {
            "present": lambda: got is not None,
            "contains": lambda: isinstance(got, str) and arg in got,
            "one-of": lambda: str(got).lower() in arg.lower().split("|"),
            "base64": lambda: isinstance(got, str) and MAGIC[arg] in base64.b64decode(got)[:132],
        }[kind]()
        return [] if ok else [f"{where}: {got!r:.80} is not {expected}"]
    return [] if expected == got else [f"{where}: {got!r:.80} != {expected!r}"]


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
    problems = matches(example["expect_body"], answer.json())
    assert not problems, f"{path.relative_to(ROOT)}: {problems}"


def test_the_matcher_fails_on_a_wrong_body() -> None:
    assert matches({"a": {"b": 1}}, {"a": {"b": 2}}) == ["body.a.b: 2 != 1"]
    assert matches({"x": "<contains:yes>"}, {"x": "no"})
    assert matches([{"k": 1}], [{"k": 1}, {"k": 2}]) == []
    assert matches({"d": "<base64:png>"}, {"d": base64.b64encode(b"GIF89a").decode()})
