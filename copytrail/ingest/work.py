"""What a worker does with one planned task. Runs in worker processes (or inline)."""

from __future__ import annotations

from dataclasses import dataclass
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
from copytrail.ingest.limits import Limits
from copytrail.ingest.readers import hf
from copytrail.store.blobs import BlobStore
from copytrail.store.derive import parse_record


@dataclass(frozen=True)
class IngestContext:
    """What ingest workers share: the blob store and the limits of this run."""

    store: BlobStore
    limits: Limits


def run_task(ctx: IngestContext, task: dict[str, Any]) -> tuple[list[CopyRecord], int]:
    """(copy records, bytes of input this task accounts for). The task's blobs go to one pack,
    sealed before the records are returned, so no record names a blob that is not stored."""
    with ctx.store.packing():
        records = _dispatch(task, ctx)
    try:  # orjson refuses exactly what the database would: lone surrogates
        orjson.dumps(records)
    except TypeError:
        records = [utf8_safe(r) for r in records]
    return records, task.get("progress", 0)


def utf8_safe(value: Any) -> Any:
    """The value with every string made valid UTF-8: a lone surrogate (from a JSON escape or an
    undecodable file name) becomes a visible backslash escape instead of failing the database
    write of the whole batch."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {utf8_safe(k): utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(utf8_safe(v) for v in value)
    return value


def read_bounded(fs_path: str, limit: int) -> bytes:
    """At most limit + 1 bytes: the size the filesystem reports is not trusted (/dev/zero says
    0, a file may grow while it is read)."""
    with open(fs_path, "rb") as f:
        return f.read(limit + 1)


def _isolated(
    make: Any, path: str, data: bytes, media: str, store: BlobStore, many: bool = False
) -> Any:
    """One item: a failure nobody foresaw makes it unreadable, never the whole batch. `many`:
    `make` gives a list of records (one file of a group), and so does the failure."""
    try:
        return make()
    except Exception as e:
        reason = f"could not be processed: {type(e).__name__}"
        rec = unreadable_record(store, path, data, media, reason)
        return [rec] if many else rec


def _dispatch(task: dict[str, Any], ctx: IngestContext) -> list[CopyRecord]:
    store, limits = ctx.store, ctx.limits
    op = task["op"]
    if op == "files":
        return [
            r
            for t in task["files"]
            for r in _isolated(
                lambda t=t: _dispatch(t, ctx), t["path"], b"", "application/octet-stream", store,
                many=True,
            )
        ]
    if op == "file":
        try:
            data = read_bounded(task["fs_path"], limits.max_file_bytes)
        except OSError as e:
            return [
                refused_record(
                    task["path"], 0, "application/octet-stream", f"could not read the file: {e}"
                )
            ]
        if len(data) > limits.max_file_bytes:
            return [
                refused_record(
                    task["path"],
                    len(data),
                    "application/octet-stream",
                    f"file grew past the {limits.max_file_bytes}-byte limit while being read "
                    "(raise --max-file-bytes)",
                )
            ]
        return [process_document(store, task["path"], data, task["kind"], limits=limits)]
    if op == "docs":
        return [
            _isolated(
                lambda p=p, d=d, k=k, extra=extra: process_document(
                    store, p, d, k, limits=limits, **extra
                ),
                p,
                d,
                "application/octet-stream",
                store,
            )
            for p, d, k, extra in task["items"]
        ]
    if op == "records":
        return [_line_record(store, task, n, line) for n, line in task["lines"]]
    if op == "jsonl_range":
        return _jsonl_range(store, task, limits)
    if op == "parquet":
        return _parquet_rows(store, task)
    if op == "arrow":
        return _table_rows(store, task, hf.read_batches(task), task["first_row"])
    if op == "refused":
        media = formats.MEDIA_TYPES[formats.kind_from_name(task["path"])]
        return [
            refused_record(
                task["path"], task["size"], media, task["reason"], **task.get("extra", {})
            )
        ]
    if op in ("unreadable_file", "unreadable_data", "refused_file", "refused_data"):
        data = (
            task["data"]
            if op.endswith("_data")
            else read_bounded(task["fs_path"], limits.max_file_bytes)
        )
        media = formats.MEDIA_TYPES.get(task["kind"], "application/octet-stream")
        rec = unreadable_record(
            store, task["path"], data, media, task["reason"], **task.get("extra", {})
        )
        # Refused: a limit fired. The bytes are kept all the same, as evidence.
        return [{**rec, "status": "refused"} if op.startswith("refused") else rec]
    if op == "noop":
        return []
    raise ValueError(f"unknown task {op!r}")


def _jsonl_range(store: BlobStore, task: dict, limits: Limits) -> list[CopyRecord]:
    """The records of one byte range of a JSON Lines file, read here in the worker."""
    with open(task["fs_path"], "rb") as f:
        f.seek(task["start"])
        data = f.read(task["end"] - task["start"])
    out = []
    limit = limits.max_record_bytes
    for n, line in enumerate(data.split(b"\n"), task["first_line"]):
        if not line.strip():
            continue
        if len(line) > limit:
            out.append(
                refused_record(
                    f"{task['path']}#L{n}",
                    len(line),
                    "application/json",
                    f"record is over the {limit}-byte limit (--max-record-bytes)",
                    container=task["container"],
                )
            )
            continue
        out.append(_line_record(store, task, n, line))
    return out


def _line_record(store: BlobStore, task: dict, n: int, line: bytes) -> CopyRecord:
    """Line `n` of a JSON Lines file, isolated: a failure makes it unreadable, not the task."""
    return _isolated(
        lambda: _record_from_line(store, task, n, line),
        f"{task['path']}#L{n}",
        line.rstrip(b"\r\n"),
        "application/json",
        store,
    )


def _record_from_line(store: BlobStore, task: dict, line_no: int, line: bytes) -> CopyRecord:
    """One JSON Lines record. Its original is the line's exact bytes (without the line break),
    so records that parse alike (1e999 and -1e999, a 60-digit integer and its float, a repeated
    key) stay distinct copies with their own hashes."""
    path = f"{task['path']}#L{line_no}"
    extra = {"container": task["container"], "line": line_no}
    original = line.rstrip(b"\r\n")
    try:
        record = parse_record(original)
    except ValueError as e:
        return unreadable_record(
            store, path, original, "application/json", f"invalid JSON: {e}"[:300], **extra
        )
    return process_record(
        store, path, record, task["text_field"], original=original, text_derivable=True, **extra
    )


def _parquet_rows(store: BlobStore, task: dict) -> list[CopyRecord]:
    import io

    import pyarrow.parquet as pq

    source = task["fs_path"] or io.BytesIO(task["data"])
    table = pq.ParquetFile(source).read_row_group(task["row_group"])
    return _table_rows(store, task, table.to_pylist(), task["first_row"])


def _table_rows(store: BlobStore, task: dict, rows: list, first_row: int) -> list[CopyRecord]:
    """Rows of a Parquet row group or of Arrow record batches, one record each; a Hugging Face
    dataset's split and config (when the files say them) go with every record."""
    facts = task.get("hf") or {}
    out = []
    for i, row in enumerate(rows):
        n = first_row + i
        out.append(
            process_record(
                store,
                f"{task['path']}#row={n}",
                row,
                task["text_field"],
                container=task["container"],
                row=n,
                **facts,
            )
        )
    return out
