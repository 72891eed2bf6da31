"""Deterministic JSON encoding of whatever an agent hands the recorder.

The fast path is the C encoder with sorted keys. Anything it cannot take (an unknown type, a
non-finite float, mixed key types, a cycle) goes through a slow walk that turns every value into
plain JSON deterministically. Encoding never raises: the last resort is a typed placeholder.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import math
import pathlib
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "dump_plain", "to_jsonable"]

_MAX_DEPTH = 64


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _convert_known(obj: Any) -> Any:
    """One level of conversion for a type JSON does not know; raises TypeError if unknown."""
    if getattr(type(obj), "__pydantic_serializer__", None) is not None:  # a pydantic v2 model
        return obj.model_dump()  # first: SDK answers are; read off the class, not the instance
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    if isinstance(obj, _dt.timedelta):
        return {"$timedelta": obj.total_seconds()}
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, decimal.Decimal | uuid.UUID | pathlib.PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=canonical_json)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, BaseException):
        return {"$error": _type_name(obj), "message": str(obj)}
    return _convert_protocols(obj)


def _convert_protocols(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic v2 models
    if callable(dump) and not isinstance(obj, type):
        return dump()  # python mode: sets stay sets, so they are sorted here
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item) and getattr(obj, "shape", None) == ():
        return item()
    tolist = getattr(obj, "tolist", None)  # numpy arrays
    if callable(tolist) and hasattr(obj, "dtype"):
        return tolist()
    raise TypeError(f"no JSON encoding for {_type_name(obj)}")


def _default(obj: Any) -> Any:
    return _convert_known(obj)


# for values to_jsonable already made plain and ordered (it sorts keys the way the C encoder does)
_PLAIN = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_PLAIN_ASCII = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_SLOW = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), default=_default
)

# The C encoder built once and reused: json.dumps builds one per call, which costs more than
# encoding a small payload. With no circular check a cycle ends in RecursionError, and the slow
# path (which detects cycles) takes over.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_FAST = (
    _c_encoder(None, _default, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    if _c_encoder is not None
    else None
)


def _fast(obj: Any) -> str:
    if _C_FAST is None:
        return _SLOW.encode(obj)
    if isinstance(obj, str):
        return json.encoder.encode_basestring(obj)
    return "".join(_C_FAST(obj, 0))


def to_jsonable(obj: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """Turn ``obj`` into plain JSON values (str keys, finite floats), deterministically."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"$float": repr(float(obj))}
    if _depth >= _MAX_DEPTH or id(obj) in _seen:
        return {"$ref": _type_name(obj)}
    seen = _seen | {id(obj)}
    if isinstance(obj, Mapping):
        return _mapping(obj, _depth, seen)
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, _depth + 1, seen) for v in obj]
    try:
        converted = _convert_known(obj)
    except Exception:
        return {"$object": _type_name(obj)}
    return to_jsonable(converted, _depth + 1, seen)


def _mapping(obj: Mapping[Any, Any], depth: int, seen: frozenset[int]) -> dict[str, Any]:
    """Keys ordered as the C encoder orders them; colliding keys (1 and "1") both kept."""
    items = list(obj.items())
    try:
        items.sort(key=lambda kv: kv[0])
    except TypeError:  # mixed key types: by text, then by type, whatever the insertion order
        items.sort(key=lambda kv: (_key(kv[0]), type(kv[0]).__name__))
    out: dict[str, Any] = {}
    for key, value in items:
        name = _key(key)
        if name in out:
            name = f"{name}|{type(key).__name__}"
        out[name] = to_jsonable(value, depth + 1, seen)
    return out


def dump_plain(value: Any) -> str:
    """Encode plain JSON values in their given key order; always valid UTF-8 text."""
    text = _PLAIN.encode(value)
    return text if _utf8_safe(text) else _PLAIN_ASCII.encode(value)


def _utf8_safe(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it, as JSON allows
        return False
    return True


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return canonical_json(key)


def canonical_json(obj: Any) -> str:
    """Deterministic, compact JSON with sorted keys; never raises."""
    try:
        text = _fast(obj)
        if _utf8_safe(text):
            return text
    except Exception:  # RecursionError too: a cycle, or a structure too deep to walk in C
        pass
    try:
        return dump_plain(to_jsonable(obj))
    except Exception:  # a pathological __eq__/__hash__ or a broken model_dump
        return json.dumps({"$object": _type_name(obj)})
