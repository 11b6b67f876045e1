"""Audits of works lists: import a list, find its works in the library, write the reports and
record them (`audit`), look one work up live (`where`) or in the recorded audits (`work`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from copytrail.audit.match import METHOD_RANK, Auditor, Match, report_row
from copytrail.audit.report import write_reports
from copytrail.audit.where import where_matches
from copytrail.audit.works import ImportResult, find_work, import_works, list_id_by_name, work_rows
from copytrail.canonical import canonical_json
from copytrail.catalog.digest import MATCH_COLUMNS, rows_digest, sort_key
from copytrail.catalog.queries import copy_context, dataset_ids
from copytrail.catalog.records import dataset_label, next_id
from copytrail.catalog.schema import audits, copies, datasets, matches
from copytrail.context import Context
from copytrail.errors import NotFound
from copytrail.fingerprint.hashing import PARAMS_VERSION
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now


def import_list(ctx: Context, file: str | os.PathLike, list_name: str) -> ImportResult:
    path = Path(file)
    if not path.is_file():
        raise NotFound(f"no works file at {path}")
    with write_transaction(ctx.db) as conn:
        return import_works(conn, EventWriter(conn, ctx.actor), ctx.store, path, list_name)


def list_works(ctx: Context, list_name: str) -> list[dict[str, Any]]:
    with read_connection(ctx.db) as conn:
        return work_rows(conn, list_id_by_name(conn, list_name))


def match_dicts(
    ctx: Context, found: list[Match], works_by_pk: dict[int, dict]
) -> list[dict[str, Any]]:
    """Matches as report rows: the work, the copy with its dataset and source, the evidence."""
    with read_connection(ctx.db) as conn:
        context = copy_context(conn, sorted({m.copy_id for m in found}))
    return [
        report_row(
            works_by_pk[m.work_pk],
            m.copy_id,
            context[m.copy_id],
            m.method,
            sorted(m.methods, key=METHOD_RANK.index),
            m.score,
            m.coverage,
            m.longest_span_words,
            m.spans,
        )
        for m in found
    ]


def audit(
    ctx: Context,
    list_name: str,
    out: str | os.PathLike,
    datasets: list[str] | None = None,
    min_words: int = 200,
    boilerplate_df: int | None = None,
    boilerplate: list[str] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Find every work of a list in the library; write the reports; record the audit."""
    works = list_works(ctx, list_name)
    auditor = Auditor(
        ctx,
        works,
        dataset_ids(ctx.db, datasets),
        min_words=min_words,
        boilerplate_df=boilerplate_df,
        progress=progress,
        boilerplate_files=boilerplate,
    )
    found = auditor.run()
    rows = match_dicts(ctx, found, {w["id"]: w for w in works})
    params = {
        "min_words": min_words,
        "boilerplate_df": auditor.stats.get("boilerplate_df"),
        "fingerprints": PARAMS_VERSION,
        # What `where` needs to answer from this audit instead of matching again.
        "boilerplate_df_given": boilerplate_df,
        "boilerplate_files": sorted(Path(f).name for f in boilerplate or []),
        "copies_through": auditor.stats["copies_through"],
        "dataset_ids": auditor.dataset_ids,
    }
    out_dir = str(Path(out).resolve())
    # Under the write lock, so the audit id and event number printed in the reports are the
    # ones the ledger gets; a kill before the commit leaves files but no record of them.
    with write_transaction(ctx.db) as conn:
        list_id = list_id_by_name(conn, list_name)
        audit_id = next_id(conn, audits.c.id)
        ev = EventWriter(conn, ctx.actor)
        header = {
            "works_list": list_name,
            "datasets": datasets or [],
            "min_words": min_words,
            "time": utc_now(),
            "actor": ctx.actor,
            "audit_id": audit_id,
            "event_seq": ev.next_seq,
            "stats": auditor.stats,
        }
        hashes, summary, _rows = write_reports(Path(out), works, rows, header, ctx.store)
        match_rows = [
            {
                "audit_id": audit_id,
                "work_pk": m["work_pk"],
                "copy_id": m["copy_id"],
                "method": m["method"],
                "methods": canonical_json(m["methods"]).decode(),
                "score": m["score"],
                "coverage": m["coverage"],
                "longest_span_words": m["longest_span_words"],
                "spans": canonical_json(m["spans"]).decode(),
            }
            for m in rows
        ]
        match_rows.sort(key=sort_key("matches"))
        seq = ev.append(
            "matched",
            {"works_list_id": list_id, "audit_id": audit_id},
            {
                "works_list": list_name,
                "datasets": datasets or [],
                "params": params,
                "works": len(works),
                "works_found": summary["works_found"],
                "matches": len(rows),
                "matches_sha256": hashes["matches.jsonl"],
                "rows_sha256": rows_digest(match_rows, MATCH_COLUMNS),
            },
        )
        ev.append("produced", {"audit_id": audit_id}, {"out_dir": out_dir, "files": hashes})
        ev.flush()
        conn.execute(
            insert(audits),
            [
                {
                    "id": audit_id,
                    "list_id": list_id,
                    "datasets": canonical_json(datasets or []).decode(),
                    "params": canonical_json(params).decode(),
                    "out_dir": out_dir,
                    "time": header["time"],
                    "actor": ctx.actor,
                    "event_seq": seq,
                }
            ],
        )
        if match_rows:
            conn.execute(insert(matches), match_rows)
    return {**summary, "audit_id": audit_id, "event_seq": seq, "files": hashes, "out_dir": out_dir}


def where(
    ctx: Context,
    work_id: str,
    list_name: str | None = None,
    min_words: int = 200,
    live: bool = False,
) -> dict[str, Any]:
    """Every copy of one work, in every dataset, with the evidence: from the recorded audits
    for the copies they saw, matched now for the rest (all of them with `live`)."""
    with read_connection(ctx.db) as conn:
        work = find_work(conn, work_id, list_name)
    rows, found, basis = where_matches(ctx, work, min_words, live)
    rows += match_dicts(ctx, found, {work["id"]: work})
    return {
        "work": work,
        "copies": sorted(rows, key=lambda r: r["copy_id"]),
        "basis": basis,
    }


def work(ctx: Context, work_id: str, list_name: str | None = None) -> dict[str, Any]:
    """One work with the matches audits recorded for it (no new matching: see `where`)."""
    with read_connection(ctx.db) as conn:
        w = find_work(conn, work_id, list_name)
        q = (
            select(
                matches.c.audit_id,
                matches.c.copy_id,
                matches.c.method,
                matches.c.score,
                matches.c.coverage,
                matches.c.longest_span_words,
                datasets.c.name.label("dataset"),
                datasets.c.version,
                audits.c.time.label("audit_time"),
            )
            .select_from(
                matches.join(copies, copies.c.id == matches.c.copy_id)
                .join(datasets, datasets.c.id == copies.c.dataset_id)
                .join(audits, audits.c.id == matches.c.audit_id)
            )
            .where(matches.c.work_pk == w["id"])
            .order_by(matches.c.audit_id, matches.c.copy_id)
        )
        found = []
        for r in conn.execute(q):
            d = r._asdict()
            d["dataset"] = dataset_label(d["dataset"], d.pop("version"))
            found.append(d)
    return {**w, "matches": found}
