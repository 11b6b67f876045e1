"""Scans: for each scanned copy, the purchase line its print book came from (by ISBN, or by title
and author with rapidfuzz, the evidence kept), when it was scanned, and what became of the print
copy (destroyed, kept, resold, with a date). Recorded from a CSV or JSON Lines file naming the
copies of one dataset; a re-record updates a copy's scan, never adds it twice."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, insert, select

from copytrail.acquisition.purchases import _text
from copytrail.audit.metadata import TitleIndex
from copytrail.canonical import canonical_json
from copytrail.catalog.queries import dataset_id
from copytrail.catalog.records import checked_iso
from copytrail.catalog.rowfile import RowReport, read_rows
from copytrail.catalog.schema import copies, copy_isbns, datasets, purchases, scans
from copytrail.context import Context
from copytrail.errors import NotFound
from copytrail.ingest.isbn import normalize_isbn
from copytrail.ledger.db import write_transaction
from copytrail.ledger.events import EventWriter, utc_now

FIELDS = ("copy", "scan_date", "print_fate", "fate_date", "isbn", "title", "author")
FATES = ("destroyed", "kept", "resold", "unknown")


@dataclass(kw_only=True)
class ScanRecord(RowReport):
    dataset: str
    recorded: int = 0
    matched_isbn: int = 0
    matched_title: int = 0
    unmatched: int = 0
    event_seq: int | None = None


def _copy_of(conn: Any, ds_id: int, ref: str) -> Any:
    """A copy of the dataset by id or by its path in the dataset."""
    q = select(copies.c.id, copies.c.title, copies.c.authors).where(copies.c.dataset_id == ds_id)
    if ref.isascii() and ref.isdigit():
        row = conn.execute(q.where(copies.c.id == int(ref))).first()
        if row is not None:
            return row
    return conn.execute(q.where(copies.c.path == ref)).first()


def record_scans(ctx: Context, file: str | Path, dataset: str) -> ScanRecord:
    path = Path(file)
    if not path.is_file():
        raise NotFound(f"no scan file at {path}")
    rows = read_rows(path, required=("copy",), expected=FIELDS)
    result = ScanRecord(dataset=dataset)
    with write_transaction(ctx.db) as conn:
        ds_id = dataset_id(conn, dataset)
        source_id = conn.execute(
            select(datasets.c.source_id).where(datasets.c.id == ds_id)
        ).scalar_one()
        lines = conn.execute(
            select(purchases)
            .where(and_(purchases.c.source_id == source_id, purchases.c.format == "print"))
            .order_by(purchases.c.date, purchases.c.id)
        ).all()
        by_isbn: dict[str, list[Any]] = defaultdict(list)
        titles = TitleIndex()
        for p in lines:
            if p.isbn13:
                by_isbn[p.isbn13].append(p)
            titles.add(p.id, p.title, [p.author] if p.author else [])
        by_id = {p.id: p for p in lines}
        used: dict[int, int] = dict(
            conn.execute(
                select(scans.c.purchase_id, func.count())
                .where(scans.c.purchase_id.is_not(None))
                .group_by(scans.c.purchase_id)
            ).all()
        )
        clean = []
        for line, row in rows:
            result.rows += 1
            rec, err = _validate(conn, ds_id, row)
            if err is not None:
                result.errors.append({"line": line, "copy": row.get("copy"), "reason": err})
                continue
            clean.append(rec)
        # A re-record replaces a copy's scan: its old purchase line is freed first.
        ids = [r["copy_id"] for r in clean]
        for (pid,) in conn.execute(
            select(scans.c.purchase_id).where(scans.c.copy_id.in_(ids))
        ).all():
            if pid is not None:
                used[pid] -= 1
        ev = EventWriter(conn, ctx.actor)
        rows_out = []
        for rec in clean:
            match = _match(conn, rec, by_isbn, titles, by_id, used)
            if match is None:
                result.unmatched += 1
            elif match["method"] == "isbn":
                result.matched_isbn += 1
            else:
                result.matched_title += 1
            rows_out.append((rec, match))
        seq = ev.append(
            "acquired",
            {"dataset_id": ds_id},
            {
                "scans": {
                    "file": path.name,
                    "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "rows_sha256": hashlib.sha256(
                        canonical_json([{**r, "match": m} for r, m in rows_out])
                    ).hexdigest(),
                    "recorded": len(rows_out),
                    "errors": len(result.errors),
                }
            },
        )
        ev.flush()
        conn.execute(delete(scans).where(scans.c.copy_id.in_(ids)))
        now = utc_now()
        if rows_out:
            conn.execute(
                insert(scans),
                [
                    {
                        "copy_id": rec["copy_id"],
                        "purchase_id": m["purchase_id"] if m else None,
                        "match": orjson.dumps(m).decode() if m else None,
                        "scan_date": rec["scan_date"],
                        "print_fate": rec["print_fate"],
                        "fate_date": rec["fate_date"],
                        "updated": now,
                        "event_seq": seq,
                    }
                    for rec, m in rows_out
                ],
            )
    result.recorded = len(rows_out)
    result.event_seq = seq
    return result


def _validate(conn: Any, ds_id: int, row: dict[str, Any]) -> tuple[dict | None, str | None]:
    if "__error__" in row:
        return None, row["__error__"]
    ref = _text(row, "copy")
    if not ref:
        return None, "no copy (a copy id or the copy's path in the dataset)"
    copy = _copy_of(conn, ds_id, ref)
    if copy is None:
        return None, f"no copy {ref!r} in this dataset"
    scan_date, fate_date = _text(row, "scan_date"), _text(row, "fate_date")
    for what, value in (("scan_date", scan_date), ("fate_date", fate_date)):
        try:
            checked_iso(value, what)
        except Exception as e:
            return None, str(e)
    fate = (_text(row, "print_fate", "fate") or "unknown").lower()
    if fate not in FATES:
        return None, f"print_fate {fate!r} is not one of {', '.join(FATES)}"
    raw_isbn = _text(row, "isbn")
    isbn = normalize_isbn(raw_isbn) if raw_isbn else None
    if raw_isbn and not isbn:
        return None, f"isbn {raw_isbn!r} is not a valid ISBN-10 or ISBN-13"
    authors = orjson.loads(copy.authors) if copy.authors else []
    return {
        "copy_id": copy.id,
        "scan_date": scan_date,
        "print_fate": fate,
        "fate_date": fate_date,
        "isbn": isbn,
        "title": _text(row, "title") or copy.title,
        "authors": [a for a in [_text(row, "author")] if a] or authors,
    }, None


def _match(
    conn: Any,
    rec: dict[str, Any],
    by_isbn: dict[str, list[Any]],
    titles: TitleIndex,
    by_id: dict[int, Any],
    used: dict[int, int],
) -> dict[str, Any] | None:
    """The purchase line a scan came from: by ISBN (given, or found in the copy), else by title
    and author. Of several lines, the earliest with a copy not yet scanned."""
    isbns = (
        [rec["isbn"]]
        if rec["isbn"]
        else [
            r[0]
            for r in conn.execute(
                select(copy_isbns.c.isbn13).where(copy_isbns.c.copy_id == rec["copy_id"])
            )
        ]
    )
    found: list[tuple[Any, dict[str, Any]]] = []
    for isbn in isbns:
        found += [(p, {"method": "isbn", "isbn13": isbn}) for p in by_isbn.get(isbn, [])]
    if not found:
        for pid, score in sorted(titles.matches(rec["title"], rec["authors"]), key=lambda m: -m[1]):
            found.append((by_id[pid], {"method": "title", "score": round(score, 3)}))
    if not found:
        return None
    free = [(p, ev) for p, ev in found if used.get(p.id, 0) < p.quantity]
    p, evidence = (free or found)[0]
    used[p.id] = used.get(p.id, 0) + 1
    return {
        "purchase_id": p.id,
        "order_id": p.order_id,
        **evidence,
        "title": rec["title"],
        "authors": rec["authors"],
    }
