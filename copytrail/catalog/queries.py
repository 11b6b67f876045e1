"""The read side of the catalog: sources, datasets, copies, one copy, stats, events.

Every query that needs a copy with its dataset and source starts from `copy_rows`, so the
three-table join is written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, case, func, or_, select

from copytrail.canonical import parse_json
from copytrail.catalog.records import dataset_label, parse_dataset_ref
from copytrail.catalog.schema import (
    copies,
    copy_isbns,
    datasets,
    purposes,
    sources,
    works,
    works_lists,
)
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger import checkpoint as cpmod
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import iter_events, row_to_event, seqs_about
from copytrail.ledger.schema import events
from copytrail.store.blobs import BlobStore

# copy ⨝ dataset ⨝ source: where a copy came from.
COPY_FROM = copies.join(datasets, datasets.c.id == copies.c.dataset_id).join(
    sources, sources.c.id == datasets.c.source_id
)
DATASET_NAME = datasets.c.name.label("dataset_name")
DATASET_VERSION = datasets.c.version.label("dataset_version")
PAGE = 5000


def copy_rows(*columns: Any) -> Select:
    """SELECT columns FROM copy ⨝ dataset ⨝ source (any column of the three may be named)."""
    return select(*columns).select_from(COPY_FROM)


def labelled(row: Any) -> dict[str, Any]:
    """A row with `dataset_name` and `dataset_version` as a dict with one `dataset` label."""
    d = row._asdict()
    d["dataset"] = dataset_label(d.pop("dataset_name"), d.pop("dataset_version"))
    return d


def full_copy_query() -> Select:
    """Every column of a copy, its dataset's name and version, its source's name and kind."""
    return copy_rows(
        copies,
        DATASET_NAME,
        DATASET_VERSION,
        sources.c.name.label("source"),
        sources.c.kind.label("source_kind"),
    )


def copy_dict(row: Any) -> dict[str, Any]:
    d = labelled(row)
    for k in ("authors", "isbns", "extra"):
        d[k] = parse_json(d.get(k)) or ([] if k != "extra" else {})
    return d


# ---- datasets --------------------------------------------------------------------------------
def dataset_id(conn: Connection, ref: str) -> int:
    name, version = parse_dataset_ref(ref)
    row = conn.execute(
        select(datasets.c.id).where(and_(datasets.c.name == name, datasets.c.version == version))
    ).first()
    if row is None:
        raise NotFound(f"no dataset {ref!r}; see `copytrail ls datasets`")
    return row.id


def dataset_ids(db: Engine, refs: list[str] | None) -> list[int] | None:
    """Ids of the named datasets; None (every dataset) when none are named."""
    if not refs:
        return None
    with read_connection(db) as conn:
        return [dataset_id(conn, r) for r in refs]


def list_sources(db: Engine) -> list[dict[str, Any]]:
    with read_connection(db) as conn:
        return [r._asdict() for r in conn.execute(select(sources).order_by(sources.c.id))]


def list_datasets(db: Engine) -> list[dict[str, Any]]:
    q = (
        select(
            datasets,
            sources.c.name.label("source"),
            sources.c.kind.label("source_kind"),
            func.count(copies.c.id).label("copies"),
            func.coalesce(func.sum(copies.c.size), 0).label("bytes"),
        )
        .join(sources, sources.c.id == datasets.c.source_id)
        .outerjoin(copies, copies.c.dataset_id == datasets.c.id)
        .group_by(datasets.c.id, sources.c.name, sources.c.kind)
        .order_by(datasets.c.id)
    )
    with read_connection(db) as conn:
        out = []
        for r in conn.execute(q):
            d = r._asdict()
            d["label"] = dataset_label(d["name"], d["version"])
            out.append(d)
        return out


# ---- copies ----------------------------------------------------------------------------------
def iter_copies(
    db: Engine,
    dataset: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[dict[str, Any]]:
    """Copies in id order, streamed in pages so millions of rows never sit in memory."""
    with read_connection(db) as conn:
        ds_id = dataset_id(conn, dataset) if dataset else None
    last, remaining, skip = 0, limit, offset
    while remaining is None or remaining > 0:
        page = PAGE if remaining is None else min(PAGE, remaining + skip)
        q = full_copy_query().where(copies.c.id > last)
        if ds_id is not None:
            q = q.where(copies.c.dataset_id == ds_id)
        if status:
            q = q.where(copies.c.status == status)
        with read_connection(db) as conn:
            rows = conn.execute(q.order_by(copies.c.id).limit(page)).all()
        if not rows:
            return
        last = rows[-1].id
        for r in rows:
            if skip:
                skip -= 1
                continue
            yield copy_dict(r)
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    return


def _hex_prefix(column: Any, prefix: str) -> Any:
    """`column` starts with the lowercase hex `prefix`, as a range an index answers (LIKE
    'p%' scans every copy: SQLite's LIKE is case-insensitive, so no index serves it). Every
    hex digit sorts below 'g'."""
    return and_(column >= prefix, column < prefix + "g")


def find_copy(conn: Connection, ref: str | int) -> dict[str, Any]:
    """A copy by id or by a SHA-256 prefix (of its bytes or of its text), without its history."""
    ref_s = str(ref).strip().lower()
    # ASCII only: str.isdigit accepts '²' and '１', which int() then reads as other numbers.
    if not ref_s.isascii():
        raise InvalidInput("a copy is named by its id or a SHA-256 prefix (ASCII digits, hex)")
    if ref_s.isdigit() and len(ref_s) < 12:
        rows = conn.execute(full_copy_query().where(copies.c.id == int(ref_s))).all()
    else:
        if len(ref_s) < 6 or any(c not in "0123456789abcdef" for c in ref_s):
            raise InvalidInput(
                f"{ref!r} is neither a copy id nor a SHA-256 prefix of 6+ hex digits"
            )
        rows = conn.execute(
            full_copy_query()
            .where(
                or_(_hex_prefix(copies.c.sha256, ref_s), _hex_prefix(copies.c.text_sha256, ref_s))
            )
            .limit(20)
        ).all()
    if not rows:
        raise NotFound(f"no copy matches {ref!r}; list copies with `copytrail ls copies`")
    if len(rows) > 1:
        ids = ", ".join(str(r.id) for r in rows)
        raise InvalidInput(
            f"{ref!r} matches several copies ({ids}); give a copy id or a longer prefix"
        )
    return copy_dict(rows[0])


def copy_detail(db: Engine, ref: str | int) -> dict[str, Any]:
    """One copy with its ISBN origins, its events and the copies sharing its bytes."""
    with read_connection(db) as conn:
        d = find_copy(conn, ref)
        d["isbn_origins"] = [
            r._asdict()
            for r in conn.execute(
                select(copy_isbns.c.isbn13, copy_isbns.c.origin).where(
                    copy_isbns.c.copy_id == d["id"]
                )
            )
        ]
        seqs = set(seqs_about(conn, ("copy_id", "copy_ids"), d["id"])) | {d["event_seq"]}
        evs = conn.execute(
            select(events).where(events.c.seq.in_(sorted(seqs))).order_by(events.c.seq)
        ).all()
        d["events"] = [row_to_event(e).as_dict() for e in evs]
        d["shared_with"] = (
            [
                r.id
                for r in conn.execute(
                    select(copies.c.id).where(
                        and_(copies.c.sha256 == d["sha256"], copies.c.id != d["id"])
                    )
                )
            ]
            if d["sha256"]
            else []
        )
    return d


def copy_text(db: Engine, store: BlobStore, ref: str | int) -> str:
    """The extracted text of a copy."""
    with read_connection(db) as conn:
        c = find_copy(conn, ref)
    if c["status"] == "deleted":
        raise NotFound(f"copy {c['id']} was deleted; its text is gone (see `copytrail show`)")
    if not c.get("text_sha256"):
        raise NotFound(f"copy {c['id']} has no extracted text ({c['status']}: {c['reason']})")
    try:
        data = store.get(c["text_sha256"])
    except FileNotFoundError as e:
        raise NotFound(
            f"the text of copy {c['id']} is missing from the store; run `copytrail verify`"
        ) from e
    return data.decode("utf-8")


def copy_context(conn: Connection, copy_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Dataset, source and hashes of each named copy (evidence in reports and certificates)."""
    out: dict[int, dict[str, Any]] = {}
    for i in range(0, len(copy_ids), 500):
        q = copy_rows(
            copies.c.id,
            copies.c.sha256,
            copies.c.text_sha256,
            copies.c.path,
            copies.c.status,
            DATASET_NAME,
            DATASET_VERSION,
            sources.c.name.label("source"),
            sources.c.kind,
        ).where(copies.c.id.in_(copy_ids[i : i + 500]))
        for r in conn.execute(q):
            out[r.id] = {
                "status": r.status,
                "copy_sha256": r.sha256,
                "text_sha256": r.text_sha256,
                "path": r.path,
                "dataset": dataset_label(r.dataset_name, r.dataset_version),
                "source": r.source,
                "source_kind": r.kind,
            }
    return out


# ---- summaries -------------------------------------------------------------------------------
def stats(db: Engine) -> dict[str, Any]:
    def grouped(conn: Connection, key_cols: list, label: Any) -> list[dict[str, Any]]:
        q = (
            copy_rows(
                *key_cols,
                func.count(copies.c.id).label("copies"),
                func.coalesce(func.sum(copies.c.size), 0).label("bytes"),
                func.coalesce(func.sum(copies.c.words), 0).label("words"),
                func.sum(case((copies.c.status != "ok", 1), else_=0)).label("not_ok"),
            )
            .where(copies.c.status != "deleted")
            .group_by(*key_cols)
            .order_by(*key_cols)
        )
        out = []
        for r in conn.execute(q):
            d = r._asdict()
            d["unreadable"] = int(d.pop("not_ok") or 0)
            out.append(label(d))
        return out

    with read_connection(db) as conn:
        by_dataset = grouped(
            conn,
            [datasets.c.name, datasets.c.version, sources.c.kind],
            lambda d: {
                "dataset": dataset_label(d.pop("name"), d.pop("version")),
                "source_kind": d.pop("kind"),
                **d,
            },
        )
        by_kind = grouped(conn, [sources.c.kind], lambda d: {"source_kind": d.pop("kind"), **d})
        totals = conn.execute(
            select(
                func.count(copies.c.id),
                func.coalesce(func.sum(copies.c.size), 0),
                func.coalesce(func.sum(copies.c.words), 0),
                func.count(func.distinct(copies.c.sha256)),
            ).where(copies.c.status != "deleted")
        ).one()
        by_status = {
            r.status: r.n
            for r in conn.execute(
                select(copies.c.status, func.count().label("n")).group_by(copies.c.status)
            )
        }
        n_sources = conn.execute(select(func.count()).select_from(sources)).scalar_one()
        n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
        last_cp = cpmod.latest_checkpoint(conn)
    return {
        "copies": totals[0],
        "bytes": int(totals[1]),
        "words": int(totals[2]),
        "distinct_originals": totals[3],
        "by_status": by_status,
        "sources": n_sources,
        "datasets": len(by_dataset),
        "events": n_events,
        "latest_checkpoint": (
            {"id": last_cp.id, "tree_size": last_cp.tree_size, "root_hash": last_cp.root_hash}
            if last_cp
            else None
        ),
        "by_dataset": by_dataset,
        "by_source_kind": by_kind,
    }


def list_events(db: Engine, start: int = 1, limit: int | None = None) -> Iterator[dict[str, Any]]:
    with read_connection(db) as conn:
        for i, ev in enumerate(iter_events(conn, start)):
            if limit is not None and i >= limit:
                return
            yield ev.as_dict()


def list_works_lists(db: Engine) -> list[dict[str, Any]]:
    q = (
        select(
            works_lists.c.id,
            works_lists.c.name,
            works_lists.c.created,
            func.count(works.c.id).label("works"),
        )
        .outerjoin(works, works.c.list_id == works_lists.c.id)
        .group_by(works_lists.c.id)
        .order_by(works_lists.c.id)
    )
    with read_connection(db) as conn:
        return [r._asdict() for r in conn.execute(q)]


def purpose_of_datasets(conn: Connection, now: str) -> dict[int, str]:
    """dataset id -> the purpose in force at `now`: its own declaration, else its source's."""
    latest: dict[tuple[str, int], str] = {}
    q = (
        select(purposes)
        .where(purposes.c.effective <= now)
        .order_by(purposes.c.effective, purposes.c.id)
    )
    for r in conn.execute(q):
        latest[(r.scope, r.ref_id)] = r.purpose
    out = {}
    for d in conn.execute(select(datasets.c.id, datasets.c.source_id)):
        out[d.id] = (
            latest.get(("dataset", d.id)) or latest.get(("source", d.source_id)) or ("undeclared")
        )
    return out
