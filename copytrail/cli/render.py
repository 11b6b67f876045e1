"""Output helpers shared by every command: JSON for machines, rich tables for people."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Piped output gets a wide console so tables stay readable in logs and CI.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)


# C0 and C1 controls (but newline and tab), DEL, and the bidirectional overrides that can make a
# file name read backwards. Shown as \xNN so a reader sees that they are there.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """A value as text that cannot drive the terminal: control characters made visible."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None else str(value))


def safe(value: Any) -> str:
    """A value to put inside a rich markup string: cleaned and with its markup escaped, so a
    name like `[/oops].txt` prints as itself instead of breaking the output."""
    return escape(clean(value))


# SQLAlchemy row keys are str subclasses, which orjson accepts only with OPT_NON_STR_KEYS.
_OPTS = orjson.OPT_NON_STR_KEYS


def emit_json(value: Any) -> None:
    data = orjson.dumps(value, option=_OPTS | orjson.OPT_INDENT_2, default=str)
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


def emit_json_lines(values: Iterable[Any]) -> None:
    """A JSON array written item by item, so listing a million copies does not build one string."""
    w = sys.stdout.buffer.write
    w(b"[")
    for i, v in enumerate(values):
        w((b",\n" if i else b"\n") + orjson.dumps(v, option=_OPTS, default=str))
    w(b"\n]\n")
    sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    # The title may hold names from the data: plain text, like the cells.
    t = Table(title=_cell(title, 200) if title else None, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold", justify="right" if c in NUMERIC else "left")
    for r in rows:
        t.add_row(*[_cell(v) for v in r])
    out.print(t)


def _cell(v: Any, width: int = 70) -> Text:
    """Plain text, never parsed as markup."""
    s = clean(v)
    return Text(s if len(s) <= width else s[: width - 1] + "…")


NUMERIC = {"id", "copies", "bytes", "words", "size", "unreadable", "events", "seq", "tree size"}


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
