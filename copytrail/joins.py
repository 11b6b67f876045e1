"""Out-of-core joins: a DuckDB connection bounded in memory.

The joins of a large library (fingerprints against the works list, a build's fates, verify's
blobs against the store's indexes) hold more rows than memory should. Past
`COPYTRAIL_JOIN_MEMORY` (default 3GB) DuckDB spills its tables and hash tables to a temporary
folder (removed after), instead of taking most of the machine's memory, as DuckDB's own default
(80% of it) would.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from copytrail.errors import InvalidInput

DEFAULT_JOIN_MEMORY = "3GB"
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
UNITS = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def join_memory() -> str:
    """DuckDB's memory limit for joins, e.g. '3GB' (`COPYTRAIL_JOIN_MEMORY`)."""
    value = os.environ.get("COPYTRAIL_JOIN_MEMORY", DEFAULT_JOIN_MEMORY).strip()
    if not SIZE.fullmatch(value):
        raise InvalidInput(
            f"COPYTRAIL_JOIN_MEMORY={value!r} is not a size; give one such as 3GB or 800MB"
        )
    return value


def size_bytes(value: str) -> float:
    """Bytes of a size such as '3GB' or '512MiB'."""
    m = SIZE.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"not a size: {value!r}")
    unit = m.group(2).lower()
    scale = UNITS[unit[0]] * ((1.024 ** " kmgt".index(unit[0])) if "i" in unit else 1)
    return float(m.group(1)) * scale


@contextmanager
def bounded_duckdb(cap: str | None = None) -> Iterator[Any]:
    """A DuckDB connection limited to `join_memory()`, or to `cap` when that is smaller,
    spilling to a temporary folder that is removed on exit."""
    import duckdb  # imported on use: most commands never join

    limit = join_memory()
    if cap is not None and size_bytes(cap) < size_bytes(limit):
        limit = cap
    spill = tempfile.mkdtemp(prefix="copytrail-joins-")
    db = duckdb.connect()
    try:
        db.execute(f"SET memory_limit = '{limit}'")
        db.execute(f"SET temp_directory = '{spill}'")
        yield db
    finally:
        db.close()
        shutil.rmtree(spill, ignore_errors=True)


def run_with_arrow(db: Any, sql: str, table: Any, name: str = "arrow_batch") -> list[tuple]:
    """Run `sql` on a DuckDB connection with `{}` standing for the Arrow `table`, registered
    under `name` only while it runs; its rows."""
    db.register(name, table)
    try:
        return db.execute(sql.format(name)).fetchall()
    finally:
        db.unregister(name)
