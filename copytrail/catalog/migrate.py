"""Every schema change of the ledger database, in one place: new tables come from `create_all`,
changes to existing tables run here in order, and the version moves last."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, Engine, insert, inspect, select, text

from copytrail.catalog.schema import SCHEMA_VERSION, copies, matches, works
from copytrail.errors import CopytrailError
from copytrail.ledger import tree
from copytrail.ledger.checkpoint import latest_checkpoint
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import subject_rows
from copytrail.ledger.schema import event_subjects, events, meta, metadata

ix_copies_event_seq = next(i for i in copies.indexes if i.name == "ix_copies_event_seq")
ix_matches_audit_work = next(i for i in matches.indexes if i.name == "ix_matches_audit_work")
ix_works_work_id = next(i for i in works.indexes if i.name == "ix_works_work_id")


def migrate(db: Engine) -> None:
    """Bring the database to SCHEMA_VERSION (creates a new one); never drops anything."""
    metadata.create_all(db)  # creates what is missing
    with write_transaction(db) as conn:
        row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
        if row is None:
            conn.execute(insert(meta), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])
        elif int(row.value) > SCHEMA_VERSION:
            raise CopytrailError(
                f"this library has schema {row.value}, newer than this copytrail "
                f"({SCHEMA_VERSION}); upgrade copytrail"
            )
        elif int(row.value) < SCHEMA_VERSION:
            _migrate_columns(conn)
            _store_tree_nodes(conn)
            _index_event_subjects(conn)
            ix_copies_event_seq.create(conn, checkfirst=True)
            ix_matches_audit_work.create(conn, checkfirst=True)
            ix_works_work_id.create(conn, checkfirst=True)
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )


def ensure_current(db: Engine, url: str) -> None:
    """On open: migrate an older library, refuse a newer one, explain an unreadable one."""
    try:
        with read_connection(db) as conn:
            v = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    except Exception as e:
        raise CopytrailError(f"cannot read the ledger at {url}: {e}") from e
    if v is not None and int(v) > SCHEMA_VERSION:
        raise CopytrailError(f"library schema {v} is newer than this copytrail; upgrade it")
    if v is None or int(v) != SCHEMA_VERSION:
        migrate(db)


def _store_tree_nodes(conn: Connection) -> None:
    """Schema 10 keeps the tree's interior nodes: build them up to the latest checkpoint so
    proofs against existing checkpoints work at once."""
    last = latest_checkpoint(conn)
    if last is not None and tree.stored_size(conn) != last.tree_size:
        tree.extend(conn, None, upto=last.tree_size)


def _index_event_subjects(conn: Connection, batch: int = 20_000) -> None:
    """Schema 12 indexes every event's integer subjects: fill the index from the events."""
    if conn.execute(select(event_subjects.c.seq).limit(1)).first() is not None:
        return
    last = 0
    while True:
        rows = conn.execute(
            select(events.c.seq, events.c.subjects)
            .where(events.c.seq > last)
            .order_by(events.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        found = [r for e in rows for r in subject_rows(e.seq, orjson.loads(e.subjects))]
        if found:
            conn.execute(insert(event_subjects), found)
        last = rows[-1].seq


def _migrate_columns(conn: Connection) -> None:
    """Columns added to tables that older libraries already have."""
    have = {c["name"] for c in inspect(conn).get_columns("works")}
    if "text_source_sha256" not in have:  # schema 2 -> 3
        conn.execute(text("ALTER TABLE works ADD COLUMN text_source_sha256 VARCHAR(64)"))
    have = {c["name"] for c in inspect(conn).get_columns("checkpoints")}
    for column in ("note", "timestamp_token"):  # schema 9 -> 10: signed checkpoints
        if column not in have:
            conn.execute(text(f"ALTER TABLE checkpoints ADD COLUMN {column} TEXT"))
    have = {c["name"] for c in inspect(conn).get_columns("matches")}
    if "methods" not in have:  # schema 12 -> 13: `where` answers from recorded matches
        conn.execute(text("ALTER TABLE matches ADD COLUMN methods TEXT"))
