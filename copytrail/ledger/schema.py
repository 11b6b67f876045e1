"""The log's tables (SQLAlchemy Core): the hash-chained events, the Merkle checkpoints over them,
the tree's stored interior nodes and the schema marker. They know nothing of copies or works:
the catalog's tables, defined on the same `metadata` in copytrail/catalog/schema.py, are
indexes of the events."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# A 64-bit key that SQLite stores as the row id. SQLite makes a primary key the row id only when
# its declared type is exactly INTEGER (already 64-bit there); declared BIGINT it keeps the id
# twice, in the row and in a separate unique index: 14 MB and one more B-tree to update per row
# at a million copies. PostgreSQL keeps BIGINT. Libraries made before keep their tables.
ROW_KEY = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", ROW_KEY, primary_key=True, autoincrement=False),  # 1, 2, 3, ... no gaps
    Column("type", String(32), nullable=False),
    Column("time", String(40), nullable=False),  # ISO 8601 UTC
    Column("actor", String(200), nullable=False),
    Column("subjects", Text, nullable=False),  # canonical JSON object
    Column("payload", Text, nullable=False),  # canonical JSON object
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)
Index("ix_events_type", events.c.type)

# Every integer subject of every event (`copy_id`: 7, each of `copy_ids`, `corpus_id`, ...), so
# "the events about copy 7" is an index lookup, not a scan of the events' JSON.
event_subjects = Table(
    "event_subjects",
    metadata,
    Column("name", String(32), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
)
Index("ix_event_subjects", event_subjects.c.name, event_subjects.c.value, event_subjects.c.seq)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("time", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("compact_range", Text),  # JSON: the O(log n) state to extend the tree from here
    Column("note", Text),  # the C2SP signed note (tlog-checkpoint), with any cosignatures
    Column("timestamp_token", Text),  # base64 DER RFC 3161 token over the note text
)
Index("ix_checkpoints_tree_size", checkpoints.c.tree_size)

# Interior nodes of the Merkle tree over the events: the root of each perfect, aligned subtree
# of 2**level leaves starting at leaf idx * 2**level, for level >= tree.STORED_LEVEL (the levels
# below are a handful of leaves, hashed from the events when needed). Inclusion and consistency
# proofs read O(log n) rows from here instead of rehashing every leaf.
tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)
