"""Turn pydantic validation errors into one plain message that says how to fix the input.

Used for request bodies, OIP parameters, job parameters and manifests, so every refusal reads
the same: the field, what is wrong, and for an unknown field the closest valid one. Values sent
are never echoed back.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

# Names users reach for that mean another field (the suggestion wins over spelling).
SYNONYMS: dict[str, str] = {
    "gender": "sex",
    "num_images": "n",
    "n_images": "n",
    "num_inference_steps": "steps",
    "source": "reference",
    "generated": "candidate",
    "hypothesis": "candidate",
    "cfg": "guidance_scale",
    "guidance": "guidance_scale",
}
_PREFIXES = ("Value error, ", "Assertion failed, ")


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid field a user most likely meant by `name` (a synonym or a near spelling)."""
    options = list(valid)
    hint = SYNONYMS.get(name.lower())
    if hint in options:
        return hint
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.55)
    return match[0] if match else None


def fields_of(model: type[BaseModel]) -> list[str]:
    """Every name a model accepts (field names and their aliases)."""
    names = []
    for name, info in model.model_fields.items():
        names.append(name)
        if info.alias:
            names.append(info.alias)
    return names


def _location(loc: Iterable[Any], skip: tuple[str, ...]) -> str:
    parts = [str(p) for p in loc if p not in skip]
    return ".".join(parts)


def describe_errors(
    errors: Iterable[Any],
    valid: Iterable[str] = (),
    *,
    what: str = "field",
    skip: tuple[str, ...] = ("body", "query", "path"),
    limit: int = 5,
) -> str:
    """'field x: problem; unknown field y (did you mean z?)' for pydantic error dicts."""
    names = list(valid)
    parts: list[str] = []
    for error in list(errors)[:limit]:
        where = _location(error.get("loc", ()), skip)
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            name = where.rsplit(".", 1)[-1]
            hint = closest(name, names) if names else None
            text = f"unknown {what} '{where}'"
            text += f" (did you mean '{hint}'?)" if hint else ""
            if names and not hint:
                text += f"; valid: {', '.join(sorted(set(names)))}"
            parts.append(text)
            continue
        message = str(error.get("msg", "invalid value"))
        for prefix in _PREFIXES:
            if message.startswith(prefix):
                message = message[len(prefix) :]
        if kind == "missing":
            message = "is required"
        parts.append(f"{what} '{where}': {message}" if where else message)
    return "; ".join(parts)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def model_at(model: type[BaseModel], loc: Iterable[Any]) -> type[BaseModel] | None:
    """The nested model that owns the field at `loc` (so a typo deep inside gets a hint)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if not isinstance(part, str) or part not in current.model_fields:
            continue  # list indexes, union tags
        models = _models_in(current.model_fields[part].annotation)
        current = models[0] if models else None
    return current


def describe(
    exc: ValidationError,
    model: type[BaseModel] | None = None,
    *,
    what: str = "field",
    skip: tuple[str, ...] = ("body", "query", "path"),
    limit: int = 5,
) -> str:
    """`describe_errors` for a ValidationError of `model`; an unknown nested field is compared
    with the fields of the model it sits in."""
    if model is None:
        return describe_errors(exc.errors(), [], what=what, skip=skip, limit=limit)
    parts = []
    for error in exc.errors()[:limit]:
        owner = model
        if error.get("type") == "extra_forbidden":
            owner = model_at(model, tuple(error.get("loc", ()))[:-1]) or model
        parts.append(describe_errors([error], fields_of(owner), what=what, skip=skip))
    return "; ".join(parts)
