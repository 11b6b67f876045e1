"""Plain text and Markdown."""

from __future__ import annotations

from copytrail.ingest.decode import decode_bytes, looks_binary
from copytrail.ingest.readers import Extraction, Unreadable


def read_text(data: bytes, media_type: str = "text/plain") -> Extraction:
    if looks_binary(data[:8192]) and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("binary data, not text (NUL or control bytes in the first 8 KiB)")
    d = decode_bytes(data)
    return Extraction(
        text=d.text,
        media_type=media_type,
        replacements=d.replacements,
        extra={"encoding": d.encoding},
    )
