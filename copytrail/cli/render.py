"""Output helpers shared by every command: JSON for machines, rich tables for people."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

# Piped output gets a wide console so tables stay readable in logs and CI.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)


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
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold", justify="right" if c in NUMERIC else "left")
    for r in rows:
        t.add_row(*[_cell(v) for v in r])
    out.print(t)


def _cell(v: Any, width: int = 70) -> str:
    s = "" if v is None else str(v)
    return s if len(s) <= width else s[: width - 1] + "…"


NUMERIC = {"id", "copies", "bytes", "words", "size", "unreadable", "events", "seq", "tree size"}


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
