"""Texts the store does not keep because a cheap, deterministic step recovers them from a stored
original: the text field of a JSON record. Ingest and the store call the same function, so the
text a copy was fingerprinted from is the text the store gives back, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import orjson


def parse_record(original: bytes) -> Any:
    """A JSON record as ingest parses it: orjson, or the standard library for what orjson refuses
    on purpose (lone surrogates, NaN). Raises ValueError when neither can."""
    try:
        return orjson.loads(original)
    except orjson.JSONDecodeError:
        try:
            return json.loads(original)
        except RecursionError as e:
            raise ValueError("JSON nests too deeply") from e


def field_value(record: Any, dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def text_bytes(text: str) -> bytes:
    """The stored form of an extracted text (lone surrogates from JSON become U+FFFD)."""
    return text.encode("utf-8", errors="replace")


def json_field_text(original: bytes, dotted: str) -> bytes:
    """The text field `dotted` of the JSON record `original`, as stored text bytes."""
    value = field_value(parse_record(original), dotted)
    if not isinstance(value, str):
        raise ValueError(f"record has no text field {dotted!r}")
    return text_bytes(value)
