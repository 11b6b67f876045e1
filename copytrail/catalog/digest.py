"""Digests of catalog rows, so an event can commit to many rows at once (an audit's matches, a
corpus's fates, a works list) and `verify` can check the table row by row against it.

    digest = SHA-256 over canonical_json([column values...]) + "\\n", row after row, in key order

The writer computes it from the rows it inserts; the checker recomputes it from the table."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, select

from copytrail.canonical import canonical_json

MATCH_COLUMNS = (
    "work_pk", "copy_id", "method", "score", "coverage", "longest_span_words", "spans"
)  # fmt: skip
DOC_COLUMNS = (
    "copy_id", "fate", "rule", "detail", "kept_copy_id", "shard", "token_start", "token_end"
)  # fmt: skip
READ_COLUMNS = ("shard", "token_start", "token_end", "times")
WORK_COLUMNS = (
    "id", "work_id", "title", "authors", "isbns", "asin", "text_sha256", "text_source_sha256"
)  # fmt: skip
_BATCH = 20_000


def rows_digest(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(rows_bytes(rows, columns))
    return h.hexdigest()


def rows_bytes(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """What `rows_digest` hashes for these rows: a digest may be fed a batch at a time."""
    return b"".join(canonical_json([r[c] for c in columns]) + b"\n" for r in rows)


# The key each table's rows are digested in: integer columns (and a method name of plain ASCII
# letters), so SQLite and PostgreSQL, whatever their collation, sort them the same way.
KEYS = {
    "matches": ("work_pk", "copy_id", "method"),
    "corpus_docs": ("copy_id",),
    "works": ("id",),
    "run_reads": ("shard", "token_start"),
}


def sort_key(table_name: str) -> Any:
    keys = KEYS[table_name]
    return lambda r: tuple(r[c] for c in keys)


def table_digest(conn: Connection, table: Table, columns: Sequence[str], **where: Any) -> str:
    """The digest of the rows of `table` matching `where`, read back in the writer's order
    (streamed: an audit may hold millions of matches)."""
    q = select(*(table.c[c] for c in columns)).where(*(table.c[k] == v for k, v in where.items()))
    q = q.order_by(*(table.c[k] for k in KEYS[table.name]))
    # Per statement: `conn.execution_options` would change the connection itself, and the writes
    # after this read would then run through a server-side cursor on PostgreSQL.
    rows = conn.execute(q, execution_options={"yield_per": _BATCH})
    return rows_digest((r._mapping for r in rows), columns)


def key_check(key_sha256: str) -> str:
    """What an API key's `access` event records of it: a hash of the stored hash, which cannot
    authenticate anyone but shows whether the stored hash was swapped."""
    return hashlib.sha256(b"copytrail key check\n" + key_sha256.encode()).hexdigest()
