"""`where`: every copy of one work, answered from the audits already recorded, plus a live match
of only the copies those audits did not see.

An audit records every match it finds (with its spans) and the last copy number it covered.
Copies are numbered in the order they are recorded and never change afterwards (deletion only
marks them), so for a dataset the newest eligible audit covered, the copies up to its mark are
answered by the recorded rows (less any deleted since), and only the later ones are matched now.
A dataset no eligible audit covered is matched now in full. An audit is eligible when nothing
that shapes the answer has changed since: the same works list unchanged since (no import into
it after the audit), the same shortest excerpt, the same fingerprint parameters, no boilerplate
passage declared after it, and the default boilerplate settings (no extra files, no frequency
threshold given by hand). A library with no eligible audit is matched live in full, as is
every call with `live=True`.

Answering from the record makes `where` cost the rows of one work rather than a pass over
every fingerprint of the library: at a million copies it is an indexed read, not a join of
tens of millions of hashes and a new alignment of every candidate.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, union_all

from copytrail.audit.match import Auditor, Match, report_row
from copytrail.catalog.records import dataset_label
from copytrail.catalog.schema import (
    audits,
    boilerplate,
    copies,
    datasets,
    matches,
    sources,
    works,
)
from copytrail.context import Context
from copytrail.fingerprint.hashing import PARAMS_VERSION
from copytrail.ledger.db import read_connection
from copytrail.ledger.schema import event_subjects, events


def eligible(params: dict[str, Any], min_words: int) -> bool:
    """Whether an audit run with `params` answers a `where` asking for `min_words`."""
    return (
        params.get("min_words") == min_words
        and params.get("fingerprints") == PARAMS_VERSION
        and isinstance(params.get("copies_through"), int)
        and not params.get("boilerplate_files")
        and params.get("boilerplate_df_given") is None
    )


def _list_changed_after(conn: Connection, list_id: int) -> int:
    """The newest event that changed the works list (an import into it), or 0."""
    q = (
        select(func.max(event_subjects.c.seq))
        .join(events, events.c.seq == event_subjects.c.seq)
        .where(
            event_subjects.c.name == "works_list_id",
            event_subjects.c.value == list_id,
            events.c.type == "acquired",
        )
    )
    return conn.execute(q).scalar() or 0


Cover = dict[int, tuple[int, int, int]]  # dataset id -> (audit id, last copy seen, its df)


def basis(conn: Connection, list_id: int, min_words: int, all_ids: list[int]) -> Cover:
    """dataset id -> (audit id, last copy id it covered, its boilerplate frequency threshold),
    from the newest eligible audit covering each dataset. Datasets missing from the answer
    have no usable audit."""
    floor = max(
        _list_changed_after(conn, list_id),
        conn.execute(select(func.max(boilerplate.c.event_seq))).scalar() or 0,
    )
    out: Cover = {}
    q = (
        select(audits.c.id, audits.c.params)
        .where(audits.c.list_id == list_id, audits.c.event_seq > floor)
        .order_by(audits.c.id.desc())
    )
    for a in conn.execute(q):
        params = orjson.loads(a.params)
        if not eligible(params, min_words):
            continue
        covered = params.get("dataset_ids") or all_ids
        for d in covered:
            out.setdefault(d, (a.id, params["copies_through"], params.get("boilerplate_df")))
        if len(out) == len(all_ids):
            break
    return out


def dataset_contexts(conn: Connection) -> dict[int, dict[str, Any]]:
    """dataset id -> what a report row says of a copy's dataset and source (read once: a
    library has few datasets, a work many copies)."""
    q = select(
        datasets.c.id,
        datasets.c.name,
        datasets.c.version,
        sources.c.name.label("source"),
        sources.c.kind,
    ).join(sources, sources.c.id == datasets.c.source_id)
    return {
        r.id: {
            "dataset": dataset_label(r.name, r.version),
            "source": r.source,
            "source_kind": r.kind,
        }
        for r in conn.execute(q)
    }


def recorded(
    conn: Connection, work: dict[str, Any], cover: Cover, where_from: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The matches recorded for the work by the covering audits, of copies still held, as
    report rows (`where_from`: `dataset_contexts`)."""
    by_audit: dict[tuple[int, int], list[int]] = defaultdict(list)
    for d, (audit_id, through, _df) in cover.items():
        by_audit[(audit_id, through)].append(d)
    rows = []
    for (audit_id, through), ds in by_audit.items():
        q = (
            select(
                copies.c.id,
                copies.c.dataset_id,
                copies.c.status,
                copies.c.sha256,
                copies.c.text_sha256,
                copies.c.path,
                matches.c.method,
                matches.c.methods,
                matches.c.score,
                matches.c.coverage,
                matches.c.longest_span_words,
                matches.c.spans,
            )
            .join(matches, matches.c.copy_id == copies.c.id)
            .where(
                matches.c.audit_id == audit_id,
                matches.c.work_pk == work["id"],
                matches.c.copy_id <= through,
                copies.c.dataset_id.in_(ds),
                copies.c.status != "deleted",
            )
        )
        # Rows unpacked as tuples straight into `report_row`: at thousands of copies per work,
        # objects and lookups per row are the cost.
        for (
            cid,
            d,
            status,
            sha,
            text_sha,
            path,
            method,
            methods,
            score,
            cov,
            longest,
            spans,
        ) in conn.execute(q):
            context = {"status": status, "copy_sha256": sha, "text_sha256": text_sha, "path": path}
            rows.append(
                report_row(
                    work,
                    cid,
                    context | where_from[d],
                    method,
                    # Stored in rank order, as the audit reported them.
                    orjson.loads(methods) if methods else [method],
                    score,
                    cov,
                    longest or 0,
                    orjson.loads(spans) if spans else [],
                )
            )
    return rows


def unmatched_copies(cover: Cover, all_ids: list[int]) -> Any:
    """The copies no covering audit saw: recorded after the audit that covered their dataset,
    or in a dataset no audit covered. Each part is read from an index, a range of copy ids or
    a whole uncovered dataset, never by scanning every copy (given as one OR, SQLite chose a
    scan of the table); `dataset_id + 0` keeps the planner off the dataset index for the
    ranges, through which it would read every copy of each covered dataset."""
    uncovered = [d for d in all_ids if d not in cover]
    parts = [
        select(copies.c.id).where(copies.c.id > through, copies.c.dataset_id + 0 == d)
        for d, (_audit, through, _df) in cover.items()
    ]
    if uncovered:
        parts.append(select(copies.c.id).where(copies.c.dataset_id.in_(uncovered)))
    return copies.c.id.in_(union_all(*parts))


def where_matches(
    ctx: Context, work: dict[str, Any], min_words: int, live: bool
) -> tuple[list[dict[str, Any]], list[Match], dict[str, Any]]:
    """The work's recorded matches (report rows), the matches found now, and how they were
    found (`basis`)."""
    found: list[Match] = []
    with read_connection(ctx.db) as conn:
        where_from = dataset_contexts(conn)
        cover = {} if live else basis(conn, work["list_id"], min_words, list(where_from))
        rows = recorded(conn, work, cover, where_from) if cover else []
        rest = unmatched_copies(cover, list(where_from)) if cover else None
        pending = (
            rest is None
            or conn.execute(
                select(copies.c.id).where(rest, copies.c.status != "deleted").limit(1)
            ).first()
        )
        siblings = None
        if pending:
            q = select(works.c.text_sha256).where(
                works.c.list_id == work["list_id"], works.c.text_sha256.is_not(None)
            )
            siblings = list(conn.execute(q).scalars())
    info = {
        "live": not cover,
        "audits": sorted({a for a, _t, _df in cover.values()}),
        "copies_matched_now": 0,
    }
    if pending:
        # Copies after an audit are judged by its library-frequency threshold: the narrowed
        # fingerprint views cannot count a hash over the whole library.
        dfs = [df for _a, _t, df in cover.values() if df]
        auditor = Auditor(
            ctx,
            [work],
            None,
            min_words=min_words,
            boilerplate_df=min(dfs) if dfs else None,
            df_work_texts=siblings,
            copy_filter=rest,
        )
        found = auditor.run()
        info["copies_matched_now"] = auditor.stats.get("copies_in_scope", 0)
    return rows, found, info
