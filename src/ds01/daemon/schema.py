"""Request bodies: one frozen dataclass per endpoint, parsed strictly (CONTRACT §1, issue: declared schemas).

`parse(Body, data)` rejects unknown fields, wrong types and out-of-range values with a `UsageError` (exit 2
at the client). Field limits come from `dataclasses.field(metadata=...)`: `min`/`max` for numbers,
`max_len` for strings and lists (default 4096 characters, 256 items), `choices` for a closed set.
For GET endpoints the values come from the query string and are coerced from text first (`coerce=True`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, get_args, get_origin

from ds01.errors import UsageError

T = TypeVar("T")
MAX_STR = 4096
MAX_ITEMS = 256


@dataclasses.dataclass(frozen=True)
class Empty:
    """The body of an endpoint that takes none."""


def limit(
    *,
    min: float | None = None,
    max: float | None = None,
    max_len: int | None = None,
    choices: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    return {"min": min, "max": max, "max_len": max_len, "choices": choices}


def parse(cls: type[T], data: Any, *, coerce: bool = False) -> T:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(f"unknown field {unknown[0]!r} in the request", hint=f"known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UsageError(f"the request lacks the field {name!r}")
            continue
        values[name] = _check(name, hints[name], data[name], f.metadata, coerce)
    return cls(**values)


def _optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _check(name: str, tp: Any, value: Any, meta: Any, coerce: bool) -> Any:
    tp, nullable = _optional(tp)
    if value is None or (coerce and value == "" and nullable):
        if nullable:
            return None
        raise UsageError(f"{name}: must not be null")
    origin = get_origin(tp)
    if origin in (tuple, list):
        if coerce and isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise UsageError(f"{name}: expected a list")
        if len(value) > (meta.get("max_len") or MAX_ITEMS):
            raise UsageError(f"{name}: too many items ({len(value)})")
        (item,) = get_args(tp)[:1]
        return tuple(_scalar(f"{name}[]", item, v, {}, coerce) for v in value)
    if origin is dict:
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            raise UsageError(f"{name}: expected an object of at most {MAX_ITEMS} keys")
        return {_scalar(name, str, k, {}, False): _scalar(name, str, v, {}, False) for k, v in value.items()}
    return _scalar(name, tp, value, meta, coerce)


def _scalar(name: str, tp: Any, value: Any, meta: Any, coerce: bool) -> Any:
    if coerce and isinstance(value, str) and tp is not str:
        value = _from_text(name, tp, value)
    if tp is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{name}: expected true or false")
        return value
    if tp is int or tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{name}: expected a number")
        if tp is int and not isinstance(value, int):
            raise UsageError(f"{name}: expected a whole number")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{name}: must be a finite number")
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise UsageError(f"{name}: {value} is out of range ({low} to {high})")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise UsageError(f"{name}: expected a string")
        if len(value) > (meta.get("max_len") or MAX_STR):
            raise UsageError(f"{name}: longer than {meta.get('max_len') or MAX_STR} characters")
        if "\x00" in value:
            raise UsageError(f"{name}: contains a NUL character")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise UsageError(f"{name}: {value!r} is not one of {', '.join(choices)}")
        return value
    raise TypeError(f"schema field {name}: unsupported type {tp!r}")  # a bug in a schema, not input


def _from_text(name: str, tp: Any, text: str) -> Any:
    if tp is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise UsageError(f"{name}: expected true or false")
    try:
        return tp(text)
    except ValueError:
        raise UsageError(f"{name}: expected a number") from None
