"""Readers turn one document's bytes into text plus metadata. One module per format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Unreadable(Exception):
    """The bytes are kept as a copy, but no text could be extracted; the message says why."""


class Refused(Unreadable):
    """A limit fired (nesting, amplification, entity expansion): the bytes are kept, the copy
    is recorded as `refused`, and the message names the limit."""


@dataclass
class Extraction:
    text: str
    media_type: str
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    isbns: list[str] = field(default_factory=list)  # from metadata, not yet normalised
    language: str | None = None
    replacements: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
