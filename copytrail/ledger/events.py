"""The append-only, hash-chained event log.

An event's hash is SHA-256 over the previous event's hash and the event's canonical JSON:

    hash = SHA-256( prev_hash_hex || canonical_json({seq, type, time, actor, subjects, payload}) )

The first event's prev_hash is 64 zeros. Any edit, insertion, deletion or reordering of a stored
event changes a hash that a later event (or a checkpoint) commits to.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from copytrail.canonical import canonical_json
from copytrail.ledger.db import insert_rows, write_transaction
from copytrail.ledger.schema import event_subjects, events

GENESIS_HASH = "0" * 64

EVENT_TYPES = (
    "acquired",  # a source or dataset was registered
    "ingested",  # a copy was recorded
    "matched",
    "included",
    "excluded",
    "trained",
    "held",
    "deleted",
    "produced",  # an output (report, certificate, audit) was produced
    "access",  # an API key was granted or revoked (who could read what, and when)
    "declared",  # a passage was declared boilerplate, or a purpose for a source or dataset
    "signing",  # the log's signing key was created or rotated, or a witness key was trusted
    "disclosed",  # the text of copies was handed to someone (who, why, through what)
    "probed",  # a model was probed for memorization of works (model hash, parameters, report)
)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_actor() -> str:
    """Who is acting: COPYTRAIL_ACTOR if set, else user@host."""
    env = os.environ.get("COPYTRAIL_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def event_body(
    seq: int, type_: str, time: str, actor: str, subjects: dict[str, Any], payload: dict[str, Any]
) -> bytes:
    return canonical_json(
        {
            "seq": seq,
            "type": type_,
            "time": time,
            "actor": actor,
            "subjects": subjects,
            "payload": payload,
        }
    )


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    time: str
    actor: str
    subjects: dict[str, Any]
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "time": self.time,
            "actor": self.actor,
            "subjects": self.subjects,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def row_to_event(row: Any) -> Event:
    return Event(
        seq=row.seq,
        type=row.type,
        time=row.time,
        actor=row.actor,
        subjects=orjson.loads(row.subjects),
        payload=orjson.loads(row.payload),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class EventWriter:
    """Appends events inside one write transaction (the caller holds the write lock)."""

    def __init__(self, conn: Connection, actor: str) -> None:
        self.conn = conn
        self.actor = actor
        last = conn.execute(
            select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
        ).first()
        self.next_seq = (last.seq + 1) if last else 1
        self.prev_hash = last.hash if last else GENESIS_HASH
        self._pending: list[dict[str, Any]] = []
        self._subjects: list[tuple[int, dict[str, Any]]] = []

    def append(self, type_: str, subjects: dict[str, Any], payload: dict[str, Any]) -> int:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        seq, time = self.next_seq, utc_now()
        body = event_body(seq, type_, time, self.actor, subjects, payload)
        h = chain_hash(self.prev_hash, body)
        self._pending.append(
            {
                "seq": seq,
                "type": type_,
                "time": time,
                "actor": self.actor,
                "subjects": canonical_json(subjects).decode(),
                "payload": canonical_json(payload).decode(),
                "prev_hash": self.prev_hash,
                "hash": h,
            }
        )
        self._subjects.append((seq, subjects))
        self.prev_hash, self.next_seq = h, seq + 1
        return seq

    def flush(self) -> None:
        if self._pending:
            insert_rows(self.conn, events, self._pending)
            rows = [r for seq, subjects in self._subjects for r in subject_rows(seq, subjects)]
            insert_rows(self.conn, event_subjects, rows)
            self._pending, self._subjects = [], []


def subject_rows(seq: int, subjects: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of an event's integer subjects (lists of integers give one row each)."""
    out = []
    for name, value in subjects.items():
        values = value if isinstance(value, list) else [value]
        out += [
            {"name": name[:32], "value": v, "seq": seq}
            for v in values
            if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63
        ]
    return out


def seqs_about(conn: Connection, names: tuple[str, ...], value: int) -> list[int]:
    """Sequence numbers of the events naming `value` under any of the subject `names`."""
    q = (
        select(event_subjects.c.seq)
        .where(event_subjects.c.name.in_(names), event_subjects.c.value == value)
        .distinct()
        .order_by(event_subjects.c.seq)
    )
    return [r.seq for r in conn.execute(q)]


def append_event(
    db: Engine, actor: str, type_: str, subjects: dict[str, Any], payload: dict[str, Any]
) -> int:
    """Record one event that changes no other table (an artifact produced, a run summary) in
    its own write transaction; returns its sequence number."""
    with write_transaction(db) as conn:
        ev = EventWriter(conn, actor)
        seq = ev.append(type_, subjects, payload)
        ev.flush()
    return seq


def iter_events(conn: Connection, start: int = 1, batch: int = 5000) -> Iterator[Event]:
    """All events in order, fetched in batches so millions of events stream in flat memory."""
    seq = start
    while True:
        rows = conn.execute(
            select(events).where(events.c.seq >= seq).order_by(events.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row_to_event(row)
        seq = rows[-1].seq + 1


def event_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(events)).scalar_one()


def recompute_hash(ev: Event) -> str:
    body = event_body(ev.seq, ev.type, ev.time, ev.actor, ev.subjects, ev.payload)
    return chain_hash(ev.prev_hash, body)
