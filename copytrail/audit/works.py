"""Works lists: import from CSV or JSON Lines with row-level validation, upsert by work_id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from copytrail.canonical import canonical_json
from copytrail.catalog.digest import WORK_COLUMNS, table_digest
from copytrail.catalog.records import next_id
from copytrail.catalog.rowfile import RowReport, read_rows
from copytrail.catalog.schema import work_isbns, works, works_lists
from copytrail.errors import InvalidInput, NotFound
from copytrail.ingest.document import process_document
from copytrail.ingest.isbn import normalize_isbn
from copytrail.ledger.events import EventWriter, utc_now
from copytrail.store.blobs import BlobStore

FIELDS = ("work_id", "title", "authors", "isbn", "asin", "text")


@dataclass(kw_only=True)
class ImportResult(RowReport):
    list: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0


def _split(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in str(value).split(";") if p.strip()]


def validate(
    row: dict[str, Any], base: Path, store: BlobStore
) -> tuple[dict[str, Any] | None, str | None]:
    """A clean work record, or the reason the row is refused."""
    if "__error__" in row:
        return None, row["__error__"]
    work_id = str(row.get("work_id") or "").strip()
    if not work_id:
        return None, "missing work_id"
    isbns = []
    for raw in _split(row.get("isbn") or row.get("isbns")):
        n = normalize_isbn(raw)
        if n is None:
            return None, f"ISBN {raw!r} is not a valid ISBN-10 or ISBN-13 (checksum or length)"
        if n not in isbns:
            isbns.append(n)
    asin = str(row.get("asin") or "").strip().upper() or None
    if asin and (len(asin) != 10 or not asin.isalnum()):
        return None, f"ASIN {asin!r} is not 10 letters and digits"
    rec = {
        "work_id": work_id,
        "title": (str(row.get("title") or "").strip() or None),
        "authors": _split(row.get("authors") or row.get("author")),
        "isbns": isbns,
        "asin": asin,
        "text_sha256": None,
        "text_source_sha256": None,
        "text_path": None,
    }
    text_ref = str(row.get("text") or "").strip()
    if text_ref:
        p = (base / text_ref).resolve()
        try:
            data = p.read_bytes()
        except OSError as e:
            return None, f"reference text {text_ref!r} cannot be read: {e.strerror or e}"
        doc = process_document(store, text_ref, data)
        if doc["status"] != "ok":
            return None, f"reference text {text_ref!r} is unreadable: {doc['reason']}"
        rec["text_sha256"] = doc["text_sha256"]
        rec["text_source_sha256"] = doc["sha256"]
        rec["text_path"] = text_ref
    return rec, None


def import_works(
    conn: Connection, ev: EventWriter, store: BlobStore, path: Path, list_name: str
) -> ImportResult:
    result = ImportResult(list=list_name)
    rows = read_rows(path, required=("work_id",), expected=FIELDS)
    base = path.parent
    lst = conn.execute(select(works_lists).where(works_lists.c.name == list_name)).first()
    if lst is None:
        list_id = next_id(conn, works_lists.c.id)
        conn.execute(
            insert(works_lists), [{"id": list_id, "name": list_name, "created": utc_now()}]
        )
    else:
        list_id = lst.id
    existing = {r.work_id: r for r in conn.execute(select(works).where(works.c.list_id == list_id))}
    next_pk = next_id(conn, works.c.id)
    seen: set[str] = set()
    clean_rows = []
    for line, row in rows:
        result.rows += 1
        rec, err = validate(row, base, store)
        if err is None and rec["work_id"] in seen:
            err = f"work_id {rec['work_id']!r} appears twice in this file"
        if err:
            result.errors.append({"line": line, "work_id": row.get("work_id"), "reason": err})
            continue
        seen.add(rec["work_id"])
        clean_rows.append(rec)
        values = {
            "title": rec["title"],
            "authors": canonical_json(rec["authors"]).decode() if rec["authors"] else None,
            "isbns": canonical_json(rec["isbns"]).decode() if rec["isbns"] else None,
            "asin": rec["asin"],
            "text_sha256": rec["text_sha256"],
            "text_source_sha256": rec["text_source_sha256"],
            "text_path": rec["text_path"],
        }
        old = existing.get(rec["work_id"])
        if old is not None:
            if all(getattr(old, k) == v for k, v in values.items()):
                result.unchanged += 1
                continue
            conn.execute(
                update(works).where(works.c.id == old.id).values(**values, updated=utc_now())
            )
            conn.execute(delete(work_isbns).where(work_isbns.c.work_pk == old.id))
            pk = old.id
            result.updated += 1
        else:
            pk = next_pk
            next_pk += 1
            conn.execute(
                insert(works),
                [
                    {
                        "id": pk,
                        "list_id": list_id,
                        "work_id": rec["work_id"],
                        **values,
                        "updated": utc_now(),
                    }
                ],
            )
            result.imported += 1
        if rec["isbns"]:
            conn.execute(insert(work_isbns), [{"work_pk": pk, "isbn13": i} for i in rec["isbns"]])
    ev.append(
        "acquired",
        {"works_list_id": list_id},
        {
            "works_list": list_name,
            "file": path.name,
            "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "rows_sha256": hashlib.sha256(canonical_json(clean_rows)).hexdigest(),
            # The list as the table now holds it (every import merges into it): `verify`
            # recomputes this from the works rows.
            "works_sha256": table_digest(conn, works, WORK_COLUMNS, list_id=list_id),
            "imported": result.imported,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "errors": len(result.errors),
        },
    )
    ev.flush()
    return result


def list_id_by_name(conn: Connection, name: str) -> int:
    row = conn.execute(select(works_lists.c.id).where(works_lists.c.name == name)).first()
    if row is None:
        names = [r.name for r in conn.execute(select(works_lists.c.name))]
        hint = f" (lists: {', '.join(names)})" if names else ""
        raise InvalidInput(
            f"no works list {name!r}{hint}; import one with "
            f"`copytrail works import FILE --list {name}`"
        )
    return row.id


def work_rows(conn: Connection, list_id: int, work_id: str | None = None) -> list[dict[str, Any]]:
    q = select(works).where(works.c.list_id == list_id)
    if work_id is not None:
        q = q.where(works.c.work_id == work_id)
    out = []
    for r in conn.execute(q.order_by(works.c.id)):
        d = r._asdict()
        d["authors"] = orjson.loads(d["authors"]) if d["authors"] else []
        d["isbns"] = orjson.loads(d["isbns"]) if d["isbns"] else []
        out.append(d)
    return out


def find_work(conn: Connection, work_id: str, list_name: str | None) -> dict[str, Any]:
    q = select(works, works_lists.c.name.label("list")).join(works_lists)
    q = q.where(works.c.work_id == work_id)
    if list_name:
        q = q.where(works_lists.c.name == list_name)
    rows = conn.execute(q).all()
    if not rows:
        raise NotFound(
            f"no work {work_id!r}"
            + (f" in list {list_name!r}" if list_name else "")
            + "; see `copytrail works ls --list NAME`"
        )
    if len(rows) > 1:
        lists = ", ".join(r.list for r in rows)
        raise InvalidInput(f"work {work_id!r} is in several lists ({lists}); add --list NAME")
    return work_rows(conn, rows[0].list_id, work_id)[0] | {"list": rows[0].list}
