"""One route of the gateway, written once for the sync and the async client.

A route is a method that builds a `Request` from typed arguments, decorated with
`@route(METHOD, PATH, parse=Result.from_json)`. On a `Client` the method returns the result;
on an `AsyncClient` it returns an awaitable of it. `tests/unit/client/test_spec_drift.py`
compares every route's method, path and parameters with the served OpenAPI document.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

import httpx

from medserve_client.transport import AsyncTransport, Call, SyncTransport

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """What a route method sends: path parameters, query, JSON or multipart, headers."""

    path_params: Mapping[str, str] | None = None
    query: Mapping[str, Any] | None = None
    json: Any = None
    form: Mapping[str, Any] | None = None
    file: bytes | None = None
    headers: Mapping[str, str] | None = None


class Route(Generic[P, T]):
    """A descriptor: the bound method sends the built request through the client's transport."""

    def __init__(
        self,
        method: str,
        path: str,
        build: Callable[..., Request],
        parse: Callable[[Any], T],
        *,
        content: bool,
        names: Mapping[str, str],
        omit: Mapping[str, str],
        job_type: str | None,
        accept: tuple[int, ...],
    ) -> None:
        self.method, self.path, self.build, self.parse = method, path, build, parse
        self.content, self.names, self.omit = content, dict(names), dict(omit)
        self.job_type, self.accept = job_type, accept
        self.__doc__ = build.__doc__
        self.name = build.__name__

    def parameters(self) -> list[str]:
        """The method's parameter names (what the drift test compares with the spec)."""
        return list(inspect.signature(self.build).parameters)[1:]

    def call(self, owner: Any, *args: Any, **kwargs: Any) -> Call[T]:
        request = self.build(owner, *args, **kwargs)
        path = self.path.format(
            **{k: quote(str(v), safe="/") for k, v in (request.path_params or {}).items()}
        )
        parse = self.parse

        def read(response: httpx.Response) -> T:
            return parse(response.content if self.content else response.json())

        data = files = None
        if request.form is not None:
            data = {k: form_value(v) for k, v in request.form.items() if v is not None}
            files = {"file": ("file", request.file or b"", "application/octet-stream")}
        query = {k: v for k, v in (request.query or {}).items() if v is not None} or None
        headers = dict(request.headers) if request.headers else None
        return Call(self.method, path, read, json=request.json, params=query, data=data,
                    files=files, headers=headers, accept=self.accept)  # fmt: skip

    @overload
    def __get__(self, obj: None, owner: type) -> Route[P, T]: ...
    @overload
    def __get__(self, obj: SyncTransport, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncTransport, owner: type) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self

        @functools.wraps(self.build)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return obj._send(self.call(obj, *args, **kwargs))

        signature = inspect.signature(self.build)
        bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=list(signature.parameters.values())[1:]
        )
        return bound


def route(
    method: str,
    path: str,
    *,
    parse: Callable[[Any], T],
    content: bool = False,
    names: Mapping[str, str] | None = None,
    omit: Mapping[str, str] | None = None,
    job_type: str | None = None,
    accept: tuple[int, ...] = (),
) -> Callable[[Callable[Concatenate[Any, P], Request]], Route[P, T]]:
    """Declare a route method. `names`: spec field -> parameter when they differ; `omit`: spec
    fields the client leaves out, with the reason; `content`: `parse` reads raw bytes."""

    def wrap(build: Callable[Concatenate[Any, P], Request]) -> Route[P, T]:
        return Route(method, path, build, parse, content=content, names=names or {},
                     omit=omit or {}, job_type=job_type, accept=accept)  # fmt: skip

    return wrap


def routes_of(cls: type) -> list[Route[Any, Any]]:
    """Every route a client class offers."""
    found: dict[str, Route[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Route):
                found[name] = value
    return list(found.values())


def form_value(value: Any) -> str:
    """A multipart field: text as is, anything else as JSON (the gateway coerces by type)."""
    return value if isinstance(value, str) else json.dumps(value)


def read_file(value: bytes | str | os.PathLike[str]) -> bytes:
    """File bytes from bytes or a path (a clear error naming the path when it is missing)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path.resolve()} (from {str(value)!r})")
    return path.read_bytes()


def local_path(value: str | os.PathLike[str]) -> str:
    """A local path made absolute on the caller's side (URLs such as s3://... unchanged), so
    the job reads the folder the caller meant, not one relative to the runner."""
    text = os.fspath(value)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body without the fields left unset (the server's defaults apply)."""
    return {k: v for k, v in fields.items() if v is not None}
