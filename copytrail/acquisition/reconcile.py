"""Reconciliation of a source's purchases with its scans: per book, print copies bought, scans
made, print copies destroyed, kept or resold, and the findings that matter when the line between
lawful and unlawful copies runs through how each copy was made:

- scan without purchase: a scanned copy no purchase line accounts for;
- more scans than copies bought: one print book scanned into several digital copies;
- print copy kept (or resold) after scanning: the scan is a second copy, not a format change;
- purchased, never scanned: a book bought and not (yet) digitised.

A book is its ISBN-13 when the purchase line has one, else its title and author. Written as JSON,
CSV and HTML, and recorded as a `matched` event holding the files' SHA-256.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from copytrail.catalog.records import source_by_name
from copytrail.catalog.schema import copies, copy_isbns, datasets, purchases, scans
from copytrail.context import Context
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import append_event, utc_now

FLAGS = (
    "scan without purchase",
    "more scans than copies bought",
    "print copy kept after scanning",
    "print copy resold after scanning",
    "purchased, never scanned",
)
COLUMNS = (
    "book",
    "isbn13",
    "title",
    "author",
    "bought_print",
    "bought_ebook",
    "scans",
    "destroyed",
    "kept",
    "resold",
    "fate_unknown",
    "flags",
)


def _book(isbn13: str | None, title: str | None, author: str | None) -> str:
    if isbn13:
        return isbn13
    return f"{(title or '?').casefold()} / {(author or '?').casefold()}"


def reconcile(ctx: Context, source: str, out: str | os.PathLike | None = None) -> dict[str, Any]:
    with read_connection(ctx.db) as conn:
        src = source_by_name(conn, source)
        books: dict[str, dict[str, Any]] = {}

        def book(isbn13: str | None, title: str | None, author: str | None) -> dict[str, Any]:
            key = _book(isbn13, title, author)
            return books.setdefault(
                key,
                {"book": key, "isbn13": isbn13, "title": title, "author": author}
                | {c: 0 for c in COLUMNS[4:11]},
            )

        key_of: dict[int, dict[str, Any]] = {}
        for p in conn.execute(select(purchases).where(purchases.c.source_id == src.id)):
            b = book(p.isbn13, p.title, p.author)
            b["bought_print" if p.format == "print" else "bought_ebook"] += p.quantity
            key_of[p.id] = b
        unmatched = defaultdict(int)
        q = (
            select(scans, copies.c.title, copies.c.authors)
            .join(copies, copies.c.id == scans.c.copy_id)
            .join(datasets, datasets.c.id == copies.c.dataset_id)
            .where(datasets.c.source_id == src.id)
            .where(copies.c.status != "deleted")
        )
        for s in conn.execute(q):
            if s.purchase_id in key_of:
                b = key_of[s.purchase_id]
            else:
                isbn = conn.execute(
                    select(copy_isbns.c.isbn13).where(copy_isbns.c.copy_id == s.copy_id).limit(1)
                ).scalar()
                authors = orjson.loads(s.authors) if s.authors else []
                b = book(isbn, s.title, authors[0] if authors else None)
                unmatched[b["book"]] += 1
            b["scans"] += 1
            fate = {"unknown": "fate_unknown"}.get(s.print_fate or "unknown", s.print_fate)
            b[fate] += 1
    rows = []
    for b in sorted(books.values(), key=lambda b: b["book"]):
        flags = []
        if unmatched.get(b["book"]):
            flags.append(FLAGS[0])
        if b["bought_print"] and b["scans"] > b["bought_print"]:
            flags.append(FLAGS[1])
        if b["kept"]:
            flags.append(FLAGS[2])
        if b["resold"]:
            flags.append(FLAGS[3])
        if b["bought_print"] and not b["scans"]:
            flags.append(FLAGS[4])
        rows.append({**b, "flags": flags})
    totals = {c: sum(r[c] for r in rows) for c in COLUMNS[4:11]}
    findings = {f: sum(f in r["flags"] for r in rows) for f in FLAGS}
    report = {
        "source": source,
        "time": utc_now(),
        "books": len(rows),
        "totals": totals,
        "findings": findings,
        "rows": rows,
    }
    files = _write(Path(out), report) if out else {}
    seq = append_event(
        ctx.db,
        ctx.actor,
        "matched",
        {"source_id": src.id},
        {
            "reconciliation": {
                "books": len(rows),
                "totals": totals,
                "findings": findings,
                "files": files,
            }
        },
    )
    return {**report, "files": files, "event_seq": seq}


def _write(out: Path, report: dict[str, Any]) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in report["rows"]:
        w.writerow({**{c: r.get(c) for c in COLUMNS}, "flags": "; ".join(r["flags"])})
    bodies = {
        "reconciliation.json": orjson.dumps(report, option=orjson.OPT_INDENT_2),
        "reconciliation.csv": buf.getvalue().encode(),
        "reconciliation.html": _html(report).encode(),
    }
    hashes = {}
    for name, body in bodies.items():
        tmp = out / f".tmp-{name}"
        tmp.write_bytes(body)
        os.replace(tmp, out / name)
        hashes[name] = hashlib.sha256(body).hexdigest()
    return hashes


def _html(report: dict[str, Any]) -> str:
    def cell(v: Any) -> str:
        return html.escape("; ".join(v) if isinstance(v, list) else "" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr class="{"flag" if r["flags"] else ""}">'
        + "".join(f"<td>{cell(r.get(c))}</td>" for c in COLUMNS)
        + "</tr>"
        for r in report["rows"]
    )
    findings = "".join(
        f"<li>{html.escape(f)}: <b>{n}</b></li>" for f, n in report["findings"].items()
    )
    totals = ", ".join(f"{html.escape(k)} {v}" for k, v in report["totals"].items())
    return (
        "<!doctype html><meta charset=utf-8><title>Reconciliation: "
        f"{html.escape(report['source'])}</title>"
        "<style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}tr.flag{background:#fde2e2}</style>"
        f"<h1>Purchases and scans of {html.escape(report['source'])}</h1>"
        f"<p>{report['books']} books; {totals}. Made {html.escape(report['time'])}.</p>"
        f"<h2>Findings</h2><ul id=findings>{findings}</ul>"
        f"<h2>Books</h2><table id=books><tr>{head}</tr>{body}</table>"
    )
