"""What a worker does with one planned task. Runs in worker processes (or inline)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from copytrail.ingest import formats
from copytrail.ingest.document import (
    CopyRecord,
    process_document,
    process_record,
    refused_record,
    unreadable_record,
)
from copytrail.store.blobs import BlobStore


def run_task(store: BlobStore, task: dict[str, Any]) -> tuple[list[CopyRecord], int]:
    """(copy records, bytes of input this task accounts for)."""
    return _dispatch(task, store), task.get("progress", 0)


def _read(fs_path: str) -> bytes:
    with open(fs_path, "rb") as f:
        return f.read()


def _dispatch(task: dict[str, Any], store: BlobStore) -> list[CopyRecord]:
    op = task["op"]
    if op == "file":
        try:
            data = _read(task["fs_path"])
        except OSError as e:
            return [
                refused_record(
                    task["path"], 0, "application/octet-stream", f"could not read the file: {e}"
                )
            ]
        return [process_document(store, task["path"], data, task["kind"])]
    if op == "docs":
        return [process_document(store, p, d, k, **extra) for p, d, k, extra in task["items"]]
    if op == "records":
        return [_record_from_line(store, task, n, line) for n, line in task["lines"]]
    if op == "parquet":
        return _parquet_rows(store, task)
    if op == "refused":
        media = formats.MEDIA_TYPES[formats.kind_from_name(task["path"])]
        return [
            refused_record(
                task["path"], task["size"], media, task["reason"], **task.get("extra", {})
            )
        ]
    if op in ("unreadable_file", "unreadable_data"):
        data = task["data"] if op == "unreadable_data" else _read(task["fs_path"])
        media = formats.MEDIA_TYPES.get(task["kind"], "application/octet-stream")
        return [
            unreadable_record(
                store, task["path"], data, media, task["reason"], **task.get("extra", {})
            )
        ]
    if op == "noop":
        return []
    raise ValueError(f"unknown task {op!r}")


def _record_from_line(store: BlobStore, task: dict, line_no: int, line: bytes) -> CopyRecord:
    path = f"{task['path']}#L{line_no}"
    extra = {"container": task["container"], "line": line_no}
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:  # the stdlib accepts what orjson refuses on purpose (lone surrogates, NaN)
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            return unreadable_record(
                store,
                path,
                line.rstrip(b"\r\n"),
                "application/json",
                f"invalid JSON: {e}"[:300],
                **extra,
            )
    return process_record(store, path, record, task["text_field"], **extra)


def _parquet_rows(store: BlobStore, task: dict) -> list[CopyRecord]:
    import io

    import pyarrow.parquet as pq

    source = task["fs_path"] or io.BytesIO(task["data"])
    table = pq.ParquetFile(source).read_row_group(task["row_group"])
    out = []
    for i, row in enumerate(table.to_pylist()):
        n = task["first_row"] + i
        out.append(
            process_record(
                store,
                f"{task['path']}#row={n}",
                row,
                task["text_field"],
                container=task["container"],
                row=n,
            )
        )
    return out
