"""Routes that take a file: one body parser (JSON with base64, or multipart/form-data) and the
OpenAPI request body that documents both forms with every field.

Multipart fields arrive as strings; each is coerced by its declared type, as JSON fields are
(`bits=16` is the integer 16, `sample=true` a boolean, `spacing=[1,1,3]` a list), so the two
forms accept exactly the same requests.
"""

from __future__ import annotations

import base64
import binascii
import json
import types
import typing
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from core.errors import BadRequest, InvalidInput, UnsupportedMediaType
from core.validation import describe

Schema = TypeVar("Schema", bound=BaseModel)
FILE_PART = "file"


def _is_text(annotation: Any) -> bool:
    """True when a field takes text as is (str, or a Literal of strings)."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in args)
    if origin in (typing.Union, types.UnionType):
        return all(_is_text(a) for a in args)
    return False


def coerce_form(schema: type[BaseModel], key: str, value: str) -> Any:
    """A form string as the field's type would read it from JSON."""
    field = schema.model_fields.get(key)
    if field is None or _is_text(field.annotation):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # the schema's validator names the field and the expected type


def _is_list(schema: type[BaseModel], key: str) -> bool:
    field = schema.model_fields.get(key)
    if field is None:
        return False
    kinds = [field.annotation, *typing.get_args(field.annotation)]
    return any(typing.get_origin(kind) is list or kind is list for kind in kinds)


async def parse_body(
    request: Request, schema: type[Schema], b64_field: str
) -> tuple[Schema, bytes | None]:
    """The body as `schema` plus the file bytes (a multipart `file` part, or base64)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw_file: bytes | None = None
    if content_type == "multipart/form-data":
        form = await request.form()
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                if key != FILE_PART:
                    raise InvalidInput(f"send the file in a part named 'file', not '{key}'")
                raw_file = await value.read()
            elif _is_list(schema, key):  # repeated parts, or one JSON list, or one value
                value = coerce_form(schema, key, str(value))
                fields.setdefault(key, []).extend(value if isinstance(value, list) else [value])
            else:
                fields[key] = coerce_form(schema, key, str(value))
        if raw_file is not None:
            fields[b64_field] = ""
    elif content_type in ("application/json", ""):
        try:
            fields = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            hint = "" if content_type else "; send it with Content-Type: application/json"
            raise BadRequest(f"the body is not valid JSON{hint}") from None
        if not isinstance(fields, dict):
            raise BadRequest("the body must be a JSON object")
    else:
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    try:
        body = schema.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput("invalid request: " + describe(exc, schema)) from None
    return body, _file(body, b64_field, raw_file)


def _file(body: BaseModel, b64_field: str, raw_file: bytes | None) -> bytes | None:
    encoded = getattr(body, b64_field)
    if raw_file is None and encoded == "":
        raise InvalidInput(f"{b64_field} is empty; send the file's bytes in base64")
    if raw_file is None and encoded:
        try:
            raw_file = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{b64_field} is not valid base64") from None
    if raw_file is not None and not raw_file:
        raise InvalidInput("the file is empty")
    return raw_file


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """`schema` with every local `$ref` replaced by its definition (Swagger resolves none)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def inline_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its definitions inlined (for hand-written request bodies)."""
    full = schema.model_json_schema()
    result: dict[str, Any] = _inline(full, full.get("$defs", {}))
    return result


def request_body(
    schema: type[BaseModel], b64_field: str, example: dict[str, Any], file_help: str
) -> dict[str, Any]:
    """`openapi_extra` for a file route: JSON (with `example`) and multipart with every field."""
    json_schema = inline_schema(schema)
    properties = {k: v for k, v in json_schema.get("properties", {}).items() if k != b64_field}
    properties = {FILE_PART: {"type": "string", "format": "binary", "description": file_help},
                  **properties}  # fmt: skip
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_schema, "example": example},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties,
                               "required": [FILE_PART]},
                },
            },
        }
    }  # fmt: skip
