"""Frozen dataclasses from plain mappings (YAML, JSON, --set), rejecting unknown keys and wrong types.

nanoGPT's strictness without its `exec`: the dataclass is the source of truth, a config file only
mirrors it, and every mistake is one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from typing import Any, Mapping

from earthgen_cli.errors import EarthgenError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise EarthgenError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, where, prefix=f"{key}.")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise EarthgenError(f"{where}: {key} must be a list, got {type(value).__name__}")
        item = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, v, where, f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise EarthgenError(f"{where}: {key} must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, where, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise EarthgenError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
        return {str(k): _convert(args[1], v, where, f"{key}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise EarthgenError(f"{where}: {key} is {value!r}; expected one of {choices}") from None
    if tp is float and isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string; every user writes it so
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # nan passes every `x <= 0` check: refuse it here, once
            raise EarthgenError(f"{where}: {key} must be a finite number, got {value!r}")
        return float(value)
    if tp is Any or (isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        return value
    raise EarthgenError(f"{where}: {key} must be {_type_name(tp)}, got {value!r}")


_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def from_mapping(cls: type, data: Mapping[str, Any], where: str, prefix: str = "") -> Any:
    """Build dataclass `cls` from `data`; missing keys take the defaults, unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise EarthgenError(
            f"{where}: unknown key {prefix}{unknown[0]}; expected one of {', '.join(sorted(fields))}"
        )
    kwargs = {name: _convert(hints[name], data[name], where, prefix + name) for name in fields if name in data}
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise EarthgenError(f"{where}: missing key {prefix}{missing[0]}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise EarthgenError(f"{where}: {exc}") from None


def to_mapping(obj: Any) -> Any:
    """Dataclass -> JSON/YAML-ready plain values (enums as their values, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj
