"""Canonical JSON and hashing: one place that decides which bytes a record or an event is."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # Values Parquet can hold that JSON cannot: bytes, decimals, sets, numpy scalars.
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return str(value)


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted, UTF-8 JSON. Floats use the shortest round-trip form."""
    return orjson.dumps(value, option=_OPTS, default=_default)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_json(text: str | None) -> Any:
    """A JSON column's value; None for an empty column."""
    return orjson.loads(text) if text else None
