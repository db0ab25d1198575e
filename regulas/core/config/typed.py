"""Check a config section against a dataclass and build a typed object from it.

A dataclass field describes a key: its type (``int``, ``float``, ``str``, ``bool``,
``Literal[...]``, ``X | None``, ``list[X]``, ``dict[str, Any]``) and, through
``field(metadata=...)``, whether the value names a file or folder that must exist
(``{"path": "file"}`` / ``{"path": "dir"}``). Every failure raises one
:class:`~regulas.core.errors.ConfigError` that names the full key, the value given and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from regulas.core.errors import ConfigError, did_you_mean

T = TypeVar("T")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"a list of {_describe(inner)}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any value"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(value: Any, tp: Any) -> bool:
    origin = get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return isinstance(value, list) and all(_matches(v, inner) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return False


def build(cls: type[T], data: Any, prefix: str, *, source: str | None = None) -> T:
    """Validate ``data`` (plain Python, already resolved) against dataclass ``cls``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys, got {data!r}", key=prefix or None, source=source
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        hint = did_you_mean(unknown[0], fields, prefix=f"{prefix}." if prefix else "")
        raise ConfigError(
            f"unknown key (given: {data[unknown[0]]!r}); " + (f"{hint} " if hint else "")
            + f"allowed keys here: {', '.join(sorted(fields))}",
            key=key,
            source=source,
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"required key is absent; expected {_describe(hints[name])}", key=key, source=source)
            continue
        value = data[name]
        tp = hints[name]
        nested = _dataclass_in(tp)
        if nested is not None and isinstance(value, dict):
            kwargs[name] = build(nested, value, key, source=source)
            continue
        if isinstance(value, int) and not isinstance(value, bool) and _accepts_float_only(tp):
            value = float(value)
        if not _matches(value, tp):
            choices = _literal_strings(tp)
            hint = did_you_mean(value, choices) if choices else ""
            raise ConfigError(
                f"{'not allowed' if choices and isinstance(value, str) else 'wrong type'} (given: {value!r}); "
                + (f"{hint} " if hint else "")
                + f"expected {_describe(tp)}",
                key=key,
                source=source,
            )
        _check_path(value, f.metadata.get("path"), key, source)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(prefix, source)
    return obj


def _literal_strings(tp: Any) -> list[str]:
    """The string values a ``Literal`` (also inside a union) allows."""
    if get_origin(tp) is Literal:
        return [a for a in get_args(tp) if isinstance(a, str)]
    if get_origin(tp) in (Union, types.UnionType):
        return [s for a in get_args(tp) for s in _literal_strings(a)]
    return []


def _open_mapping(tp: Any) -> bool:
    """Whether a value of type ``tp`` may hold keys nobody declared (``Any``, ``dict``)."""
    if tp is Any or tp is dict or get_origin(tp) is dict:
        return True
    return get_origin(tp) in (Union, types.UnionType) and any(_open_mapping(a) for a in get_args(tp))


def accepts_key(cls: type, key: str) -> bool:
    """Whether dataclass ``cls`` (a config section) has or may hold the dotted ``key``
    below it: a declared field, or any key inside a field typed ``dict``/``Any``."""
    name, _, rest = key.partition(".")
    index = name.find("[")
    if index >= 0:
        name, rest = name[:index], name[index:] + (f".{rest}" if rest else "")
    hints = typing.get_type_hints(cls)
    if name not in hints:
        return False
    if not rest:
        return True
    tp = hints[name]
    nested = _dataclass_in(tp)
    if nested is not None and not rest.startswith("["):
        return accepts_key(nested, rest)
    if rest.startswith("[") and get_origin(tp) in (list, Union, types.UnionType):
        return True  # an item of a list (its items are checked when the section is built)
    return _open_mapping(tp)


def _dataclass_in(tp: Any) -> type | None:
    candidates = [tp, *get_args(tp)] if get_origin(tp) in (Union, types.UnionType) else [tp]
    for c in candidates:
        if dataclasses.is_dataclass(c) and isinstance(c, type):
            return c
    return None


def _accepts_float_only(tp: Any) -> bool:
    args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    return float in args and int not in args


def _check_path(value: Any, kind: str | None, key: str, source: str | None) -> None:
    if kind is None or value is None:
        return
    path = Path(str(value)).expanduser()
    ok = path.is_file() if kind == "file" else path.is_dir()
    if not ok:
        what = "file" if kind == "file" else "folder"
        raise ConfigError(
            f"{what} not found (given: {str(value)!r}, resolved to {path.resolve()}); expected an existing {what}",
            key=key,
            source=source,
        )


def positive(value: float | int | None, key: str, source: str | None, *, allow_zero: bool = False) -> None:
    """Shared range check for counts and durations."""
    if value is None:
        return
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"out of range (given: {value!r}); expected a value {bound}", key=key, source=source)
