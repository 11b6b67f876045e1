"""Writes that change what the library holds: each one appends its event in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select

from copytrail.canonical import canonical_json
from copytrail.catalog.batches import batch_payload, copy_event_payload, copy_leaf
from copytrail.catalog.schema import copies, copy_isbns, datasets, sources
from copytrail.errors import Conflict, InvalidInput, NotFound
from copytrail.ledger.db import insert_rows
from copytrail.ledger.events import EventWriter, utc_now

SOURCE_KINDS = (
    "purchased-scan",
    "licensed",
    "public-domain",
    "web-crawl",
    "shadow-library",
    "third-party",
    "user-upload",
    "unknown",
)


def next_id(conn: Connection, id_column: Any) -> int:
    """The next id of a table whose ids are given by the ledger (dense, in event order). Call it
    inside the write transaction that inserts the row: the write lock keeps it unique."""
    return (conn.execute(select(func.max(id_column))).scalar() or 0) + 1


def checked_iso(value: str | None, what: str) -> str | None:
    """`value` if it is an ISO 8601 date or date-time (None passes): dates enter the hash-chained
    log only in a form every reader can compare."""
    if value is None:
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as e:
        raise InvalidInput(f"{what} {value!r} is not an ISO date or time, e.g. 2025-03-01") from e
    return value


def parse_dataset_ref(ref: str) -> tuple[str, str]:
    """'libgen-fiction@2021-06' -> ('libgen-fiction', '2021-06'); 'books' -> ('books', '')."""
    name, _, version = ref.partition("@")
    name, version = name.strip(), version.strip()
    if not name:
        raise InvalidInput(f"dataset {ref!r} has no name: write NAME or NAME@VERSION")
    return name, version


def dataset_label(name: str, version: str) -> str:
    return f"{name}@{version}" if version else name


def add_source(conn: Connection, ev: EventWriter, fields: dict[str, Any]) -> dict[str, Any]:
    kind = fields["kind"]
    checked_iso(fields.get("acquired"), "acquired date")
    if not isinstance(fields.get("name"), str) or not fields["name"].strip():
        raise InvalidInput("a source needs a name, e.g. `copytrail source add gutenberg ...`")
    if kind not in SOURCE_KINDS:
        raise InvalidInput(
            f"unknown source kind {kind!r}; choose one of: {', '.join(SOURCE_KINDS)}"
        )
    if conn.execute(select(sources.c.id).where(sources.c.name == fields["name"])).first():
        raise Conflict(
            f"source {fields['name']!r} exists already; see it with `copytrail ls sources`"
        )
    new_id = next_id(conn, sources.c.id)
    row = {**fields, "id": new_id, "created": utc_now()}
    seq = ev.append("acquired", {"source_id": new_id}, {"source": _strip_none(row)})
    ev.flush()
    conn.execute(insert(sources), [{**row, "event_seq": seq}])
    return {**row, "event_seq": seq}


def source_by_name(conn: Connection, name: str) -> Any:
    row = conn.execute(select(sources).where(sources.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"no source named {name!r}; add it first with "
            f"`copytrail source add {name} --kind KIND` (see `copytrail ls sources`)"
        )
    return row


def get_or_create_dataset(
    conn: Connection, ev: EventWriter, ref: str, source_name: str
) -> tuple[Any, bool]:
    name, version = parse_dataset_ref(ref)
    src = source_by_name(conn, source_name)
    row = conn.execute(
        select(datasets).where(and_(datasets.c.name == name, datasets.c.version == version))
    ).first()
    if row is not None:
        if row.source_id != src.id:
            other = conn.execute(
                select(sources.c.name).where(sources.c.id == row.source_id)
            ).scalar()
            raise Conflict(
                f"dataset {dataset_label(name, version)!r} belongs to source {other!r}, not "
                f"{source_name!r}; use another dataset name or version"
            )
        return row, False
    new_id = next_id(conn, datasets.c.id)
    fields = {
        "id": new_id,
        "name": name,
        "version": version,
        "source_id": src.id,
        "created": utc_now(),
    }
    seq = ev.append(
        "acquired",
        {"dataset_id": new_id, "source_id": src.id},
        {"dataset": {**fields, "label": dataset_label(name, version)}},
    )
    ev.flush()
    conn.execute(insert(datasets), [{**fields, "event_seq": seq}])
    return conn.execute(select(datasets).where(datasets.c.id == new_id)).first(), True


def record_copies(
    conn: Connection, ev: EventWriter, dataset_id: int, records: Sequence[dict[str, Any]]
) -> tuple[list[int], int]:
    """Insert the records that are new to the dataset. Returns (new copy ids, count existing).

    Identity inside a dataset is the SHA-256 of the bytes; refused items, which have no bytes,
    are identified by their path. This is what makes a re-run after a kill add only what is missing.
    """
    shas = {r["sha256"] for r in records if r["sha256"]}
    refused_paths = {r["path"] for r in records if not r["sha256"]}
    existing: set[str] = set()
    for chunk in _chunks(sorted(shas), 500):
        existing.update(
            conn.execute(
                select(copies.c.sha256).where(
                    and_(copies.c.dataset_id == dataset_id, copies.c.sha256.in_(chunk))
                )
            ).scalars()
        )
    existing_paths: set[str] = set()
    for chunk in _chunks(sorted(refused_paths), 500):
        existing_paths.update(
            conn.execute(
                select(copies.c.path).where(
                    and_(
                        copies.c.dataset_id == dataset_id,
                        copies.c.sha256.is_(None),
                        copies.c.path.in_(chunk),
                    )
                )
            ).scalars()
        )
    cid_next = next_id(conn, copies.c.id)
    now = utc_now()
    rows, isbn_rows, new_ids, leaves = [], [], [], []
    skipped = 0
    for rec in records:
        key_seen = rec["sha256"] in existing if rec["sha256"] else rec["path"] in existing_paths
        if key_seen:
            skipped += 1
            continue
        if rec["sha256"]:
            existing.add(rec["sha256"])
        else:
            existing_paths.add(rec["path"])
        cid = cid_next
        cid_next += 1
        leaves.append(copy_leaf(cid, dataset_id, copy_event_payload(rec)))
        isbns = rec.get("isbns") or []
        rows.append(
            {
                "id": cid,
                "dataset_id": dataset_id,
                "sha256": rec["sha256"],
                "size": rec["size"],
                "media_type": rec["media_type"],
                "path": rec["path"],
                "status": rec["status"],
                "reason": rec.get("reason"),
                "text_sha256": rec.get("text_sha256"),
                "text_size": rec.get("text_size"),
                "title": rec.get("title"),
                "authors": _json_or_none(rec.get("authors")),
                "isbns": _json_or_none([i for i, _ in isbns]),
                "language": rec.get("language"),
                "words": rec.get("words"),
                "replacements": rec.get("replacements"),
                "extra": _json_or_none(rec.get("extra")),
                "created": now,
            }
        )
        isbn_rows.extend({"copy_id": cid, "isbn13": i, "origin": o} for i, o in isbns)
        new_ids.append(cid)
    if rows:  # one event commits to the whole batch (catalog/batches.py)
        subjects = {
            "dataset_id": dataset_id,
            "first_copy_id": new_ids[0],
            "last_copy_id": new_ids[-1],
        }
        seq = ev.append("ingested", subjects, batch_payload(leaves))
        for row in rows:
            row["event_seq"] = seq
    ev.flush()
    insert_rows(conn, copies, rows)
    insert_rows(conn, copy_isbns, isbn_rows)
    return new_ids, skipped


def _json_or_none(v: Any) -> str | None:
    if v in (None, [], {}):
        return None
    return canonical_json(v).decode()


def _chunks(seq: Sequence, n: int):  # type: ignore[no-untyped-def]
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _strip_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
