"""Legal holds. A hold covers a dataset, a source, or a work (the copies audits matched to it);
while it is active, a deletion touching anything it covers is refused and nothing is deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, insert, select, update

from copytrail.catalog.queries import copy_rows, dataset_id
from copytrail.catalog.records import next_id, parse_dataset_ref
from copytrail.catalog.schema import copies, datasets, holds, matches, sources, works, works_lists
from copytrail.context import Context
from copytrail.errors import Conflict, InvalidInput, NotFound
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now

SCOPES = ("dataset", "source", "work")


def _check_ref(conn: Any, scope: str, ref: str) -> str:
    if scope == "dataset":
        dataset_id(conn, ref)
        return ref
    if scope == "source":
        if conn.execute(select(sources.c.id).where(sources.c.name == ref)).first() is None:
            raise NotFound(f"no source {ref!r}; see `copytrail ls sources`")
        return ref
    list_name, _, work_id = ref.rpartition(":")
    from copytrail.audit.works import find_work

    w = find_work(conn, work_id, list_name or None)
    return f"{w['list']}:{w['work_id']}"


def add_hold(ctx: Context, matter: str, scope: str, ref: str) -> dict[str, Any]:
    if not matter.strip():
        raise InvalidInput("say which matter the hold is for: --matter 'Doe v. Acme, 24-cv-1'")
    if scope not in SCOPES:
        raise InvalidInput(f"a hold covers one of: {', '.join(SCOPES)}")
    with write_transaction(ctx.db) as conn:
        ref = _check_ref(conn, scope, ref)
        hold_id = next_id(conn, holds.c.id)
        ev = EventWriter(conn, ctx.actor)
        seq = ev.append(
            "held", {"hold_id": hold_id}, {"action": "add", "matter": matter, scope: ref}
        )
        ev.flush()
        row = {
            "id": hold_id,
            "matter": matter,
            "scope": scope,
            "ref": ref,
            "created": utc_now(),
            "actor": ctx.actor,
            "released": None,
            "released_by": None,
            "event_seq": seq,
        }
        conn.execute(insert(holds), [row])
    return row


def release_hold(ctx: Context, hold_id: int) -> dict[str, Any]:
    with write_transaction(ctx.db) as conn:
        row = conn.execute(select(holds).where(holds.c.id == hold_id)).first()
        if row is None:
            raise NotFound(f"no hold #{hold_id}; see `copytrail hold ls`")
        if row.released:
            raise Conflict(f"hold #{hold_id} was released at {row.released}")
        ev = EventWriter(conn, ctx.actor)
        ev.append("held", {"hold_id": hold_id}, {"action": "release", "matter": row.matter})
        ev.flush()
        conn.execute(
            update(holds)
            .where(holds.c.id == hold_id)
            .values(released=utc_now(), released_by=ctx.actor)
        )
        return conn.execute(select(holds).where(holds.c.id == hold_id)).first()._asdict()


def list_holds(ctx: Context, active_only: bool = False) -> list[dict[str, Any]]:
    with read_connection(ctx.db) as conn:
        q = select(holds).order_by(holds.c.id)
        if active_only:
            q = q.where(holds.c.released.is_(None))
        return [r._asdict() for r in conn.execute(q)]


def held_copies(conn: Any, copy_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """copy id -> the active holds covering it, for the given copies."""
    out: dict[int, list[dict[str, Any]]] = {}
    active = [r._asdict() for r in conn.execute(select(holds).where(holds.c.released.is_(None)))]
    if not active or not copy_ids:
        return out
    wanted = set(copy_ids)
    for h in active:
        if h["scope"] == "dataset":
            name, version = parse_dataset_ref(h["ref"])
            q = (
                select(copies.c.id)
                .join(datasets, datasets.c.id == copies.c.dataset_id)
                .where(and_(datasets.c.name == name, datasets.c.version == version))
            )
        elif h["scope"] == "source":
            q = copy_rows(copies.c.id).where(sources.c.name == h["ref"])
        else:
            list_name, _, work_id = h["ref"].rpartition(":")
            q = (
                select(matches.c.copy_id)
                .join(works, works.c.id == matches.c.work_pk)
                .join(works_lists, works_lists.c.id == works.c.list_id)
                .where(
                    and_(
                        works.c.work_id == work_id,
                        works_lists.c.name == list_name,
                        matches.c.method != "metadata",
                    )
                )
            )
        for (cid,) in conn.execute(q):
            if cid in wanted:
                out.setdefault(cid, []).append(h)
    return out
