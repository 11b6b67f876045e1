"""Bytes to text, never failing: UTF-8 when the bytes are mostly UTF-8 (invalid sequences replaced
and counted), a legacy 8-bit encoding when they are clearly not, UTF-16/32 when a BOM says so."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_REPLACEMENT_UTF8 = "\ufffd".encode()
# C0 controls other than tab, newline, vertical tab, form feed and carriage return.
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32)])


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    replacements: int  # invalid byte sequences replaced by U+FFFD


def _count_new_replacements(text: str, data: bytes) -> int:
    # U+FFFD already present in valid input is not a replacement we made.
    return text.count("\ufffd") - data.count(_REPLACEMENT_UTF8)


def decode_bytes(data: bytes, declared: str | None = None) -> Decoded:
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = data.decode(enc, errors="replace")
            return Decoded(text, enc, text.count("\ufffd"))
    if declared:
        try:
            codecs.lookup(declared)
        except LookupError:
            declared = None
    if declared and codecs.lookup(declared).name not in ("utf-8", "ascii"):
        text = data.decode(declared, errors="replace")
        return Decoded(text, codecs.lookup(declared).name, text.count("\ufffd"))
    try:
        return Decoded(data.decode("utf-8"), "utf-8", 0)
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = _count_new_replacements(text, data)
    non_ascii_chars = len(text) - len(text.encode("ascii", errors="ignore"))
    good_multibyte = non_ascii_chars - bad - data.count(_REPLACEMENT_UTF8)
    if bad > good_multibyte:
        # More broken than valid sequences: this is an 8-bit legacy text (Latin-1, cp1252).
        # cp1252 is a superset of the printable Latin-1 range and what such files mostly are.
        try:
            return Decoded(data.decode("cp1252"), "cp1252", 0)
        except UnicodeDecodeError:
            return Decoded(data.decode("latin-1"), "latin-1", 0)
    return Decoded(text, "utf-8", bad)


def looks_binary(head: bytes) -> bool:
    """NUL bytes or many control characters in the first block: not a text file."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls / len(head) > 0.05
