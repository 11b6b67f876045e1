"""Declared purposes of sources and datasets ("for the sole purpose of developing LLMs", or a
general library kept forever), each with the document that declares it (a licence agreement, an
invoice, an internal approval) stored as a blob, and the date from which it holds. A change is a
new declaration: every one is a `declared` event, and the latest in force is the current one."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from copytrail.catalog.queries import dataset_id
from copytrail.catalog.records import checked_iso, dataset_label, next_id, source_by_name
from copytrail.catalog.schema import datasets, purposes, sources
from copytrail.context import Context
from copytrail.errors import InvalidInput
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now

PURPOSES = ("model-training", "evaluation", "research-library", "legal-hold", "other")
SCOPES = ("source", "dataset")
MAX_DOCUMENT_BYTES = 256 << 20


def _ref_id(conn: Connection, scope: str, ref: str) -> int:
    if scope == "source":
        return source_by_name(conn, ref).id
    if scope == "dataset":
        return dataset_id(conn, ref)
    raise InvalidInput(f"a purpose is declared for a source or a dataset, not {scope!r}")


def declare_purpose(
    ctx: Context,
    scope: str,
    ref: str,
    purpose: str,
    text: str | None = None,
    document: str | Path | None = None,
    effective: str | None = None,
) -> dict[str, Any]:
    if purpose not in PURPOSES:
        raise InvalidInput(f"unknown purpose {purpose!r}; choose one of: {', '.join(PURPOSES)}")
    if purpose == "other" and not (text or "").strip():
        raise InvalidInput("purpose 'other' needs --text saying what it is")
    checked_iso(effective, "effective date")
    doc_sha = doc_name = None
    if document is not None:
        path = Path(document)
        try:
            if path.stat().st_size > MAX_DOCUMENT_BYTES:
                raise InvalidInput(f"{path} is over {MAX_DOCUMENT_BYTES} bytes")
            data = path.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read the document {path}: {e.strerror}") from e
        doc_sha, _ = ctx.store.put(data, hashlib.sha256(data).hexdigest())
        doc_name = path.name
    now = utc_now()
    with write_transaction(ctx.db) as conn:
        ref_id = _ref_id(conn, scope, ref)
        pid = next_id(conn, purposes.c.id)
        row = {
            "id": pid,
            "scope": scope,
            "ref_id": ref_id,
            "purpose": purpose,
            "text": (text or "").strip() or None,
            "document_sha256": doc_sha,
            "document_name": doc_name,
            "effective": effective or now,
            "created": now,
            "actor": ctx.actor,
        }
        ev = EventWriter(conn, ctx.actor)
        seq = ev.append(
            "declared",
            {f"{scope}_id": ref_id, "purpose_id": pid},
            {"purpose": {k: v for k, v in row.items() if v is not None and k != "id"}},
        )
        ev.flush()
        conn.execute(purposes.insert(), [{**row, "event_seq": seq}])
    return {**row, "ref": ref, "event_seq": seq}


def list_purposes(ctx: Context, history: bool = False) -> list[dict[str, Any]]:
    """The purpose in force for each source and dataset (every declaration with `history`)."""
    with read_connection(ctx.db) as conn:
        names = {
            ("source", r.id): r.name for r in conn.execute(select(sources.c.id, sources.c.name))
        } | {
            ("dataset", r.id): dataset_label(r.name, r.version)
            for r in conn.execute(select(datasets.c.id, datasets.c.name, datasets.c.version))
        }
        rows = [
            r._asdict()
            for r in conn.execute(select(purposes).order_by(purposes.c.effective, purposes.c.id))
        ]
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        r["ref"] = names.get((r["scope"], r["ref_id"]))
        out.setdefault((r["scope"], r["ref_id"]), []).append(r)
    if history:
        return rows
    return [declared[-1] for declared in out.values()]
