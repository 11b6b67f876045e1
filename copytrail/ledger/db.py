"""Database engines: SQLite in WAL mode by default, any SQLAlchemy URL (postgresql://) by choice.

Every write runs in a transaction that first takes the ledger's single write lock, so the event
chain is extended by one writer at a time: BEGIN IMMEDIATE on SQLite, an advisory transaction lock
on PostgreSQL. Reads never take it (WAL readers see the last committed state).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, text

# Arbitrary constant naming the copytrail write lock among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x636F7079  # "copy"
# How long a writer waits for another writer before giving up (two ingests at once).
SQLITE_BUSY_TIMEOUT_S = 600


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None}
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock now, so two writers queue instead of failing later
            # with "database is locked" when a deferred transaction tries to upgrade.
            mode = "IMMEDIATE" if conn.get_execution_options().get("copytrail_write") else ""
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the ledger write lock; commits on success, rolls back on error."""
    with engine.connect() as conn:
        conn = conn.execution_options(copytrail_write=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            yield conn


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows that name the same columns: COPY on PostgreSQL through psycopg (the
    server parses no statement per row; ingest commits thousands of copies a batch), sqlite3's
    own executemany on SQLite, SQLAlchemy's elsewhere. Same transaction either way."""
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(table.c[c].name for c in columns)  # only the table's own columns
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] for c in columns])
        return
    if conn.dialect.name == "sqlite" and not _converts(conn, table, columns):
        # Straight to sqlite3 when no column's type converts its values: SQLAlchemy's
        # executemany builds a parameter dict per row, as long again as the insert itself.
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.executemany(
                f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})",
                [tuple(r[c] for c in columns) for r in rows]
                if len(columns) == 1
                else list(map(itemgetter(*columns), rows)),
            )
        finally:
            cur.close()
        return
    conn.execute(insert(table), rows)


def _converts(conn: Connection, table: Table, columns: list[str]) -> bool:
    """Whether any of `columns` has a type that converts values on their way to the driver."""
    dialect = conn.dialect
    return any(
        table.c[c].type.dialect_impl(dialect).bind_processor(dialect) is not None for c in columns
    )


class Statistics:
    """Keeps PostgreSQL's planner statistics of tables that grow fast. Before autovacuum's
    first ANALYZE, the planner takes a table it just saw filled by COPY for a few dozen rows and
    looks copies up through the wrong index, scanning a whole dataset per lookup. Call `grew`
    after each commit; it analyzes the tables when they have doubled (so a log of n rows is
    analyzed about log2(n) times). Nothing to do on SQLite, whose planner needs no statistics
    for these lookups."""

    def __init__(self, engine: Engine, tables: list[Table], first: int = 5_000) -> None:
        self.engine, self.tables = engine, tables
        self.active = engine.dialect.name == "postgresql"
        self.added, self.next_at = 0, first

    def grew(self, rows: int) -> None:
        self.added += rows
        if not self.active or self.added < self.next_at:
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for t in self.tables:
                conn.execute(text(f"ANALYZE {t.name}"))
        self.next_at = self.added * 2
