"""Files of records to import (works lists, purchase exports, scan lists): CSV with a header row
or JSON Lines, read into (line number, row) pairs so every refused row can be reported by its
line, and the report every import returns."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from copytrail.errors import InvalidInput


@dataclass
class RowReport:
    """What an import did with a file's rows; subclasses add their own counts."""

    rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # line, key, reason per bad row

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def read_rows(
    path: Path, required: tuple[str, ...], expected: tuple[str, ...]
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header row) or JSON Lines file. A CSV must have the
    `required` columns; a bad JSON line becomes a row with an `__error__`."""
    data = path.read_bytes()
    text = data.decode("utf-8-sig", errors="replace")
    first = text.lstrip()[:1]
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or first == "{":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                rows.append((n, {"__error__": f"invalid JSON: {e}"}))
                continue
            rows.append((n, obj if isinstance(obj, dict) else {"__error__": "not a JSON object"}))
        return rows
    reader = csv.DictReader(io.StringIO(text))
    missing = set(required) - {f.strip() for f in reader.fieldnames or []}
    if missing:
        raise InvalidInput(
            f"{path} has no {', '.join(sorted(missing))} column; expected columns: "
            f"{', '.join(expected)}"
        )
    for row in reader:
        rows.append((reader.line_num, {k.strip(): v for k, v in row.items() if k}))
    return rows
