"""Read side for people browsing the library (the console): find a work or a copy by title,
author or ISBN, and list audits, deletions and a dataset's composition. Every query is bounded
by a limit and uses an index where the lookup is exact (ISBNs, ids)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, select

from copytrail.catalog.queries import COPY_FROM, dataset_id
from copytrail.catalog.records import dataset_label
from copytrail.catalog.schema import (
    audits,
    copies,
    copy_isbns,
    datasets,
    deletions,
    matches,
    sources,
    work_isbns,
    works,
    works_lists,
)
from copytrail.errors import InvalidInput
from copytrail.ingest.isbn import normalize_isbn
from copytrail.ledger.db import read_connection
from copytrail.store.blobs import BlobStore

MAX_QUERY = 300
EXCERPT_CHARS = 600  # per side of a matched span: enough to read, far from the whole text
BY = ("title", "author", "isbn")


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find(db: Engine, query: str, by: str = "title", limit: int = 50) -> dict[str, Any]:
    """Works (of every list) and copies whose title, author or ISBN matches."""
    q = query.strip()
    if not q or len(q) > MAX_QUERY:
        raise InvalidInput(f"give 1 to {MAX_QUERY} characters to look for")
    if by not in BY:
        raise InvalidInput(f"find by one of: {', '.join(BY)} (or paste a passage)")
    with read_connection(db) as conn:
        wq = select(works, works_lists.c.name.label("list")).join(works_lists)
        cq = select(copies.c.id, copies.c.title, copies.c.authors, copies.c.path,
                    copies.c.status, datasets.c.name.label("dataset_name"),
                    datasets.c.version.label("dataset_version")).select_from(COPY_FROM)  # fmt: skip
        if by == "isbn":
            isbn = normalize_isbn(q)
            if isbn is None:
                raise InvalidInput(f"{q!r} is not a valid ISBN-10 or ISBN-13")
            by_w = select(work_isbns.c.work_pk).where(work_isbns.c.isbn13 == isbn)
            by_c = select(copy_isbns.c.copy_id).where(copy_isbns.c.isbn13 == isbn)
            wq = wq.where(works.c.id.in_(by_w))
            cq = cq.where(copies.c.id.in_(by_c))
        else:
            col_w = works.c.title if by == "title" else works.c.authors
            col_c = copies.c.title if by == "title" else copies.c.authors
            wq = wq.where(func.lower(col_w).like(_like(q.lower()), escape="\\"))
            cq = cq.where(func.lower(col_c).like(_like(q.lower()), escape="\\"))
        found_works = [
            {
                "list": r.list,
                "work_id": r.work_id,
                "title": r.title,
                "authors": json.loads(r.authors) if r.authors else [],
                "isbns": json.loads(r.isbns) if r.isbns else [],
            }
            for r in conn.execute(wq.order_by(works.c.id).limit(limit))
        ]
        found_copies = [
            {
                "id": r.id,
                "title": r.title,
                "authors": json.loads(r.authors) if r.authors else [],
                "path": r.path,
                "status": r.status,
                "dataset": dataset_label(r.dataset_name, r.dataset_version),
            }
            for r in conn.execute(cq.order_by(copies.c.id).limit(limit))
        ]
    return {"query": q, "by": by, "works": found_works, "copies": found_copies}


def list_audits(db: Engine, limit: int = 200) -> list[dict[str, Any]]:
    with read_connection(db) as conn:
        rows = conn.execute(
            select(audits, works_lists.c.name.label("works_list"))
            .join(works_lists, works_lists.c.id == audits.c.list_id)
            .order_by(audits.c.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "works_list": r.works_list,
            "datasets": json.loads(r.datasets),
            "params": json.loads(r.params),
            "out_dir": r.out_dir,
            "time": r.time,
            "actor": r.actor,
            "event_seq": r.event_seq,
        }
        for r in rows
    ]


def list_deletions(db: Engine, limit: int = 200) -> list[dict[str, Any]]:
    with read_connection(db) as conn:
        rows = conn.execute(select(deletions).order_by(deletions.c.id.desc()).limit(limit)).all()
    return [r._asdict() for r in rows]


def dataset_overview(db: Engine, ref: str) -> dict[str, Any]:
    """A dataset's source and the make-up of its copies (by status, media type, language)."""
    with read_connection(db) as conn:
        did = dataset_id(conn, ref)
        d = conn.execute(
            select(datasets, sources.c.name.label("source"), sources.c.kind, sources.c.license,
                   sources.c.provided_by, sources.c.acquired, sources.c.url)
            .join(sources, sources.c.id == datasets.c.source_id)
            .where(datasets.c.id == did)
        ).first()  # fmt: skip

        def by(col: Any) -> list[dict[str, Any]]:
            q = (
                select(col.label("key"), func.count().label("copies"),
                       func.coalesce(func.sum(copies.c.size), 0).label("bytes"))
                .where(copies.c.dataset_id == did)
                .group_by(col)
                .order_by(func.count().desc())
            )  # fmt: skip
            rows = conn.execute(q)
            return [{"key": r.key or "", "copies": r.copies, "bytes": r.bytes} for r in rows]

        return {
            "dataset": dataset_label(d.name, d.version),
            "source": d.source,
            "source_kind": d.kind,
            "license": d.license,
            "provided_by": d.provided_by,
            "acquired": d.acquired,
            "url": d.url,
            "created": d.created,
            "event_seq": d.event_seq,
            "by_status": by(copies.c.status),
            "by_media_type": by(copies.c.media_type),
            "by_language": by(copies.c.language),
        }


def copies_of_works(db: Engine, list_name: str, work_ids: list[str] | None) -> list[dict]:
    """Every copy an audit matched to the works of a list (or to the given works)."""
    with read_connection(db) as conn:
        q = (
            select(works.c.work_id, works.c.title, matches.c.copy_id, matches.c.method,
                   matches.c.coverage, matches.c.audit_id)
            .join(works_lists, works_lists.c.id == works.c.list_id)
            .join(matches, matches.c.work_pk == works.c.id)
            .where(works_lists.c.name == list_name)
            .order_by(matches.c.copy_id, matches.c.audit_id)
        )  # fmt: skip
        if work_ids:
            q = q.where(works.c.work_id.in_(work_ids))
        return [r._asdict() for r in conn.execute(q)]


def excerpts(
    store: BlobStore,
    work_text_sha256: str | None,
    found: list[dict[str, Any]],
    copy_texts: dict[int, str | None],
    per_match: int = 50,
) -> list[dict[str, Any]]:
    """The audit's matched spans cut from the work's reference text and the copy's text (while
    both are in the store), each side at most EXCERPT_CHARS."""
    work_text = stored_text(store, work_text_sha256)
    cache: dict[str, str | None] = {}
    out = []
    for m in found:
        sha = copy_texts.get(m["copy_id"])
        if sha and sha not in cache:
            cache[sha] = stored_text(store, sha)
        copy_text = cache.get(sha) if sha else None
        spans = (
            m["spans"] if isinstance(m.get("spans"), list) else json.loads(m.get("spans") or "[]")
        )
        for s in spans[:per_match]:
            out.append(
                {
                    "audit_id": m["audit_id"],
                    "copy_id": m["copy_id"],
                    "words": s.get("words"),
                    "work_span": [s["work_start"], s["work_end"]],
                    "copy_span": [s["copy_start"], s["copy_end"]],
                    "work_excerpt": _cut(work_text, s["work_start"], s["work_end"]),
                    "copy_excerpt": _cut(copy_text, s["copy_start"], s["copy_end"]),
                }
            )
    return out


def stored_text(store: BlobStore, sha: str | None) -> str | None:
    """A text blob, or None when it is not (or no longer) in the store."""
    if not sha:
        return None
    try:
        return store.get(sha).decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def _cut(text: str | None, start: int, end: int) -> str | None:
    if text is None:
        return None
    piece = text[start:end]
    if len(piece) <= EXCERPT_CHARS:
        return piece
    half = EXCERPT_CHARS // 2
    return piece[:half] + " […] " + piece[-half:]


def work_evidence(db: Engine, store: BlobStore, work_id: str, list_name: str | None) -> dict:
    """A work with every match of every audit: the copy's dataset, source, kind, provider and
    acquisition date, the spans, and the passages side by side."""
    from copytrail.audit.works import find_work

    with read_connection(db) as conn:
        w = find_work(conn, work_id, list_name)
        rows = conn.execute(
            select(matches, audits.c.time.label("audit_time"), copies.c.text_sha256,
                   copies.c.status, copies.c.path, copies.c.title.label("copy_title"),
                   datasets.c.name.label("dataset_name"),
                   datasets.c.version.label("dataset_version"),
                   sources.c.name.label("source"), sources.c.kind.label("source_kind"),
                   sources.c.provided_by, sources.c.acquired)
            .join(audits, audits.c.id == matches.c.audit_id)
            .join(copies, copies.c.id == matches.c.copy_id)
            .join(datasets, datasets.c.id == copies.c.dataset_id)
            .join(sources, sources.c.id == datasets.c.source_id)
            .where(matches.c.work_pk == w["id"])
            .order_by(matches.c.audit_id.desc(), matches.c.copy_id)
        ).all()  # fmt: skip
    found = []
    for r in rows:
        d = r._asdict()
        d["dataset"] = dataset_label(d.pop("dataset_name"), d.pop("dataset_version"))
        d["spans"] = json.loads(d["spans"]) if d.get("spans") else []
        found.append(d)
    texts = {m["copy_id"]: m["text_sha256"] for m in found if m["status"] != "deleted"}
    return {
        **w,
        "matches": found,
        "excerpts": excerpts(store, w.get("text_sha256"), found, texts, 5),
    }
