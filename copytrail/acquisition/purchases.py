"""Purchase records: the print books (and ebooks) bought from vendors, imported from an order
export (CSV or JSON Lines). Bad rows are reported with their line; good rows are kept; a re-import
updates lines it has seen (by order id and ISBN, or order id and title/author) and never adds them
twice. Each import is one `acquired` event holding the file's and the rows' SHA-256."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from copytrail.canonical import canonical_json
from copytrail.catalog.records import checked_iso, next_id, source_by_name
from copytrail.catalog.rowfile import RowReport, read_rows
from copytrail.catalog.schema import purchases
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ingest.isbn import normalize_isbn
from copytrail.ledger.db import write_transaction
from copytrail.ledger.events import EventWriter, utc_now

FIELDS = (
    "order_id",
    "vendor",
    "date",
    "isbn",
    "title",
    "author",
    "quantity",
    "format",
    "price",
    "currency",
)
FORMATS = ("print", "ebook")
COMPARED = (
    "vendor",
    "date",
    "isbn13",
    "title",
    "author",
    "quantity",
    "format",
    "price",
    "currency",
)
_SPACE = re.compile(r"\s+")


@dataclass(kw_only=True)
class PurchaseImport(RowReport):
    source: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    event_seq: int | None = None


def _text(row: dict[str, Any], *names: str) -> str | None:
    for n in names:
        v = row.get(n)
        if v not in (None, "") and str(v).strip():
            return _SPACE.sub(" ", str(v)).strip()
    return None


def item_key(order_id: str, isbn13: str | None, title: str | None, author: str | None) -> str:
    if isbn13:
        return f"{order_id}|isbn:{isbn13}"
    return f"{order_id}|t:{(title or '').casefold()}|a:{(author or '').casefold()}"[:300]


def validate(row: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A clean purchase line, or why the row is refused."""
    if "__error__" in row:
        return None, row["__error__"]
    order_id = _text(row, "order_id", "order")
    if not order_id:
        return None, "no order_id"
    date = _text(row, "date", "order_date")
    if not date:
        return None, "no date"
    try:
        checked_iso(date, "date")
    except InvalidInput as e:
        return None, str(e)
    raw_isbn = _text(row, "isbn", "isbn13", "isbn10")
    isbn13 = normalize_isbn(raw_isbn) if raw_isbn else None
    if raw_isbn and not isbn13:
        return None, f"isbn {raw_isbn!r} is not a valid ISBN-10 or ISBN-13"
    title, author = _text(row, "title"), _text(row, "author", "authors")
    if not isbn13 and not (title and author):
        return None, "neither an ISBN nor a title and author: the book cannot be identified"
    quantity_raw = _text(row, "quantity", "qty") or "1"
    try:
        quantity = int(float(quantity_raw))
        if quantity < 1 or quantity != float(quantity_raw):
            raise ValueError
    except ValueError:
        return None, f"quantity {quantity_raw!r} is not a whole number of 1 or more"
    fmt = (_text(row, "format") or "print").lower()
    if fmt not in FORMATS:
        return None, f"format {fmt!r} is not one of {', '.join(FORMATS)}"
    price_raw = _text(row, "price")
    try:
        price = round(float(price_raw), 2) if price_raw else None
    except ValueError:
        return None, f"price {price_raw!r} is not a number"
    currency = (_text(row, "currency") or "").upper() or None
    if currency and not re.fullmatch(r"[A-Z]{3}", currency):
        return None, f"currency {currency!r} is not a three-letter code such as USD"
    return {
        "item_key": item_key(order_id, isbn13, title, author),
        "order_id": order_id[:200],
        "vendor": _text(row, "vendor", "seller"),
        "date": date,
        "isbn13": isbn13,
        "title": title,
        "author": author,
        "quantity": quantity,
        "format": fmt,
        "price": price,
        "currency": currency,
    }, None


def import_purchases(ctx: Context, file: str | Path, source: str) -> PurchaseImport:
    path = Path(file)
    if not path.is_file():
        raise NotFound(f"no purchase file at {path}")
    rows = read_rows(path, required=("order_id",), expected=FIELDS)
    result = PurchaseImport(source=source)
    clean: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for line, row in rows:
        result.rows += 1
        rec, err = validate(row)
        if err is None and rec["item_key"] in seen:
            err = "the same order line (order id and book) appears twice in this file"
        if err is not None:
            result.errors.append({"line": line, "order_id": row.get("order_id"), "reason": err})
            continue
        seen.add(rec["item_key"])
        clean.append((line, rec))
    file_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with write_transaction(ctx.db) as conn:
        src = source_by_name(conn, source)
        existing = {
            r.item_key: r
            for r in conn.execute(select(purchases).where(purchases.c.source_id == src.id))
        }
        ev = EventWriter(conn, ctx.actor)
        new_rows, changed = [], []
        for _line, rec in clean:
            old = existing.get(rec["item_key"])
            if old is None:
                new_rows.append(rec)
            elif any(getattr(old, k) != rec[k] for k in COMPARED):
                changed.append((old.id, rec))
            else:
                result.unchanged += 1
        result.imported, result.updated = len(new_rows), len(changed)
        seq = ev.append(
            "acquired",
            {"source_id": src.id},
            {
                "purchases": {
                    "file": path.name,
                    "file_sha256": file_sha,
                    "rows_sha256": hashlib.sha256(
                        canonical_json([r for _, r in clean])
                    ).hexdigest(),
                    "rows": result.rows,
                    "imported": result.imported,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "errors": len(result.errors),
                }
            },
        )
        ev.flush()
        now = utc_now()
        line_of = {rec["item_key"]: line for line, rec in clean}
        next_pk = next_id(conn, purchases.c.id)
        if new_rows:
            conn.execute(
                insert(purchases),
                [
                    {
                        **rec,
                        "id": next_pk + i,
                        "source_id": src.id,
                        "file_sha256": file_sha,
                        "line": line_of[rec["item_key"]],
                        "updated": now,
                        "event_seq": seq,
                    }
                    for i, rec in enumerate(new_rows)
                ],
            )
        for pk, rec in changed:
            conn.execute(
                update(purchases)
                .where(purchases.c.id == pk)
                .values(
                    **rec,
                    file_sha256=file_sha,
                    line=line_of[rec["item_key"]],
                    updated=now,
                    event_seq=seq,
                )
            )
    result.event_seq = seq
    return result
