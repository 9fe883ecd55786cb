"""The one error table: every type has a unique code and a status; one renderer for all."""

from __future__ import annotations

import importlib
import pkgutil

import orjson
import pytest

from core import errors
from core.errors import (
    BY_CODE,
    HTTP_STATUS,
    MedserveError,
    from_status,
    http_status,
    http_status_of,
    render,
)


def _all_types() -> list[type[MedserveError]]:
    found, stack = [], [MedserveError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def _import_everything() -> None:
    """Import every product module, so an error type defined anywhere is seen."""
    for package in ("core", "model_store", "workers", "service", "cli"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def test_every_error_type_has_a_unique_code_and_a_status() -> None:
    _import_everything()
    types = [cls for cls in _all_types() if cls.__module__ == "core.errors"]
    codes = [cls.code for cls in types if cls is not MedserveError]
    assert len(codes) == len(set(codes)), sorted(codes)
    for cls in types:
        status = http_status(cls("x"))
        assert 400 <= status <= 599, cls
        assert BY_CODE[cls.code] is cls or cls is MedserveError
    # every error type defined anywhere joins the table (no stray subclasses elsewhere)
    strays = [cls for cls in _all_types() if cls.__module__ != "core.errors"]
    assert not strays, strays


@pytest.mark.parametrize(
    ("cls", "status"),
    [(errors.InvalidInput, 422), (errors.BadRequest, 400), (errors.ModelNotFound, 404),
     (errors.ConstraintUnsupported, 502), (errors.Unreachable, 503),
     (errors.PayloadTooLarge, 413), (errors.DeadlineExceeded, 504),
     (errors.MethodNotAllowed, 405)],
)  # fmt: skip
def test_statuses_and_the_round_trip_across_a_process_boundary(
    cls: type[MedserveError], status: int
) -> None:
    error = cls("what to fix")
    assert http_status(error) == status
    rebuilt = from_status(status, "what to fix", cls.code)
    assert type(rebuilt) is cls and rebuilt.message == "what to fix"
    # without a code, the status alone picks a type with that status
    assert http_status(from_status(status, "m")) == status


def test_unknown_statuses_map_to_upstream_or_bad_request() -> None:
    assert http_status_of(599) is errors.UpstreamError
    assert http_status_of(418) is errors.BadRequest
    assert HTTP_STATUS[errors.Overloaded] == 503


def test_render_writes_the_envelope_or_the_oip_shape_with_retry_after() -> None:
    status, headers, body = render(errors.Overloaded("queue full", retry_after=2.2), oip=False,
                                   request_id="r1")  # fmt: skip
    table = dict(headers)
    assert status == 503 and table[b"retry-after"] == b"3"
    assert table[b"content-type"] == b"application/json"
    assert table[b"x-medserve-error-code"] == b"overloaded"
    assert orjson.loads(body) == {
        "error": {"code": "overloaded", "message": "queue full", "request_id": "r1"}
    }
    status, headers, body = render(errors.InvalidInput("bad"), oip=True)
    assert status == 400 and orjson.loads(body) == {"error": "bad"}  # OIP: 400, as Triton
    assert b"retry-after" not in dict(headers)
    # 503 and 429 always say when to retry, even without an explicit delay
    assert b"retry-after" in dict(render(errors.Unavailable("down"), oip=True)[1])
    assert b"retry-after" in dict(render(errors.RateLimited("slow"), oip=False)[1])
