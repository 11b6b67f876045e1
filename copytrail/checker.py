"""`copytrail verify`: is the record intact, and does the store hold what the record says?

Like `git fsck` or restic's checker, one pass cross-checks the three parts of a library:
1. the log (ledger/verify.py): the event chain and the checkpoints;
2. the catalog against the log: each copy row has the ingested event that created it, with the
   same hashes, path and status; sources and datasets likewise; corpora and their fates, runs,
   holds, works lists, audits and their matches, and API keys row by row (catalog/custody.py);
3. the store against the catalog: every blob a present copy names exists and hashes to its
   name; the blobs of deleted copies are gone unless a present copy shares them.
Blobs no copy names (left by an ingest killed before its transaction committed) are harmless and
reported as a note, as are temporary files from a write killed before its rename.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, func, select

from copytrail.catalog.batches import (
    batch_mismatches,
    copy_event_payload,
    is_batch,
    prior_statuses,
)
from copytrail.catalog.custody import CustodyEvents
from copytrail.catalog.schema import (
    boilerplate,
    copies,
    datasets,
    deletions,
    purposes,
    sources,
    works,
)
from copytrail.engine.base import Executor, map_inline
from copytrail.engine.local import in_local_worker
from copytrail.joins import bounded_duckdb, run_with_arrow
from copytrail.ledger.against import check_against, read_held
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import Event
from copytrail.ledger.schema import events
from copytrail.ledger.verify import MAX_LISTED, ProgressFn, VerifyReport, verify_log
from copytrail.store.blobs import BlobStore
from copytrail.store.packs import DERIVED, IndexScan, Location

BLOB_CHECK_THREADS = 4  # blob reads wait on the disk or the network as much as on the CPU
BLOB_CHECK_TASK = 512  # blobs re-hashed per executor task
REFS_PAGE = 20_000  # copies read from the ledger at a time
# Verify's joins spill past this (or past COPYTRAIL_JOIN_MEMORY when smaller): its tables grow
# with the library (~80 bytes a blob), and spilling them costs it little.
VERIFY_MEMORY = "256MB"
SHA_HEX = re.compile(r"[0-9a-f]{64}")
# (digest, referrers) of a blob to re-hash, and where its packed copy lies: (pack, kind, field,
# inner, block offset, block length, size); None for a loose file.
CheckItem = tuple[str, tuple | None]


@dataclass(frozen=True)
class BlobCheck:
    """What a worker re-hashing blobs needs: the store (its index is never loaded there: each
    item says where its bytes lie)."""

    store: BlobStore


def check_blobs(job: BlobCheck, items: list[CheckItem]) -> tuple[int, list[tuple[str, str]]]:
    """An executor task: (blobs checked, (digest, what is wrong) per bad blob). Items come in
    pack order; threads inside take contiguous runs of them, so each thread's block cache
    decompresses each block once while other threads wait on reads."""

    _steady_malloc()
    # A reader per task: its cache holds the block being read, and never a block read by an
    # earlier check (which would hide damage done since).
    reader = job.store.block_reader()

    def one(item: CheckItem) -> str | None:
        sha, at = item
        if at is None:
            return job.store.check_loose(sha)
        return job.store.check_at(sha, Location(*at), reader)

    def run(part: list[CheckItem]) -> list[tuple[str, str]]:
        return [(item[0], err) for item in part if (err := one(item))]

    if len(items) < 2:
        return len(items), run(items)
    step = -(-len(items) // BLOB_CHECK_THREADS)
    runs = [items[i : i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return len(items), [p for part in pool.map(run, runs) for p in part]


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 << 10
_malloc_fixed = False


def _steady_malloc() -> None:
    """Fix glibc's mmap threshold at its starting value in a process that re-hashes blobs.
    Left dynamic, it rises past each large buffer freed (a decompressed block, a book), so
    later ones come from the heap, which fragments and is not given back: a verify worker grew
    from 110 to 280 MB over two million blobs, and stays at ~100 MB with it fixed. Only here:
    in ingest workers the same setting cost 10-30% (every large buffer a fresh mapping). And
    only in a local pool worker, which ends with the verify: never in a process that goes on to
    other work (a server checking a small library inline, a Ray worker)."""
    global _malloc_fixed
    if _malloc_fixed or not in_local_worker():
        return
    _malloc_fixed = True
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: nothing to fix
        pass


def check_library(
    db: Engine,
    store: BlobStore,
    quick: bool = False,
    progress: ProgressFn | None = None,
    against: list[Path] | None = None,
    tsa_ca: Path | None = None,
    executor: Executor | None = None,
) -> VerifyReport:
    """`against`: checkpoint files (or a witness's folders) held by others; the log must extend
    every one of them."""
    report = VerifyReport()
    held = read_held(against) if against else []
    with read_connection(db) as conn:
        log = verify_log(conn, report, progress, {h.head.size for h in held}, tsa_ca)
        deleted = check_catalog(conn, log, report)
        if held:
            check_against(conn, held, report)
        check_store(
            conn,
            store,
            deleted,
            report,
            quick=quick,
            progress=progress,
            unfinished=unfinished_deletions(conn),
            executor=executor,
        )
    return report


def _iter_copies(conn: Connection, batch: int = 20_000) -> Iterator[Any]:
    last = 0
    while True:
        rows = conn.execute(
            select(copies).where(copies.c.id > last).order_by(copies.c.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def check_catalog(conn: Connection, log: Iterator[Event], report: VerifyReport) -> set[int]:
    """Check 2, over the events the log verifier streams. Returns the ids of copies the events
    say were deleted."""
    src_rows = {r.id: r for r in conn.execute(select(sources)).all()}
    ds_rows = {r.id: r for r in conn.execute(select(datasets)).all()}
    seen_sources: set[int] = set()
    seen_datasets: set[int] = set()
    deleted: set[int] = set()
    copy_iter = _iter_copies(conn)
    pending_copy = next(copy_iter, None)
    custody = CustodyEvents()
    prior = prior_statuses(conn)
    for ev in log:
        custody.see(ev)
        if ev.type == "ingested" and is_batch(ev.subjects):
            first, last = ev.subjects["first_copy_id"], ev.subjects["last_copy_id"]
            while pending_copy is not None and pending_copy.id < first:
                report.problem(f"copy {pending_copy.id}: no ingested event records it")
                pending_copy = next(copy_iter, None)
            batch = []
            while pending_copy is not None and pending_copy.id <= last:
                batch.append(pending_copy)
                pending_copy = next(copy_iter, None)
            for msg in batch_mismatches(batch, ev.subjects, ev.payload, prior):
                report.problem(f"event {ev.seq}: {msg}" if "missing" in msg else msg)
        elif ev.type == "ingested" and "copy_id" in ev.subjects:
            cid = ev.subjects["copy_id"]
            while pending_copy is not None and pending_copy.id < cid:
                report.problem(f"copy {pending_copy.id}: no ingested event records it")
                pending_copy = next(copy_iter, None)
            if pending_copy is None or pending_copy.id != cid:
                report.problem(f"event {ev.seq}: copy {cid} it records is missing from the table")
            else:
                _check_copy(pending_copy, ev, report)
                pending_copy = next(copy_iter, None)
        elif ev.type == "deleted":
            deleted.update(ev.subjects.get("copy_ids", []))
        elif ev.type == "acquired":
            _check_acquired(ev, src_rows, ds_rows, seen_sources, seen_datasets, report)
    while pending_copy is not None:
        report.problem(f"copy {pending_copy.id}: no ingested event records it")
        pending_copy = next(copy_iter, None)
    for sid in set(src_rows) - seen_sources:
        report.problem(f"source {sid}: no acquired event records it")
    for did in set(ds_rows) - seen_datasets:
        report.problem(f"dataset {did}: no acquired event records it")
    custody.check(conn, report)
    return deleted


def _check_copy(row: Any, ev: Event, report: VerifyReport) -> None:
    row_payload = copy_event_payload(row._asdict())
    expect = dict(ev.payload)
    if row.status == "deleted":
        row_payload["status"] = expect.get("status")
    if row_payload != expect or row.dataset_id != ev.subjects.get("dataset_id"):
        diff = sorted(
            k for k in set(row_payload) | set(expect) if row_payload.get(k) != expect.get(k)
        )
        report.problem(
            f"copy {row.id}: table differs from its ingested event {ev.seq} "
            f"in {diff or ['dataset']}"
        )


def _check_acquired(ev, src_rows, ds_rows, seen_sources, seen_datasets, report) -> None:  # type: ignore[no-untyped-def]
    if "source" in ev.payload:
        sid = ev.subjects.get("source_id")
        seen_sources.add(sid)
        row = src_rows.get(sid)
        recorded = ev.payload["source"]
        if row is None:
            report.problem(f"event {ev.seq}: source {sid} it records is missing from the table")
        elif any(getattr(row, k) != v for k, v in recorded.items() if k != "event_seq"):
            report.problem(f"source {sid}: table differs from its acquired event {ev.seq}")
    elif "dataset" in ev.payload:
        did = ev.subjects.get("dataset_id")
        seen_datasets.add(did)
        row = ds_rows.get(did)
        recorded = ev.payload["dataset"]
        if row is None:
            report.problem(f"event {ev.seq}: dataset {did} it records is missing from the table")
        elif (row.name, row.version, row.source_id) != (
            recorded["name"],
            recorded["version"],
            recorded["source_id"],
        ):
            report.problem(f"dataset {did}: table differs from its acquired event {ev.seq}")


def unfinished_deletions(conn: Connection) -> set[int]:
    """Copies of deletions whose certificate was never written (the run was killed after the
    deletion was recorded and before its files were finished)."""
    out: set[int] = set()
    for r in conn.execute(select(deletions.c.certificate, deletions.c.event_seq)):
        if r.certificate and Path(r.certificate).exists():
            continue
        subjects = conn.execute(select(events.c.subjects).where(events.c.seq == r.event_seq))
        ev = subjects.scalar()
        out.update(json.loads(ev).get("copy_ids", []) if ev else [])
    return out


def check_store(
    conn: Connection,
    store: BlobStore,
    deleted_by_events: set[int],
    report: VerifyReport,
    quick: bool = False,
    progress: ProgressFn | None = None,
    unfinished: set[int] | None = None,
    executor: Executor | None = None,
) -> None:
    """Check 3, plus orphan and temporary-file notes. `unfinished`: copies of a deletion that
    was interrupted before its certificate was written; their leftover blobs are a note (the
    next `copytrail delete` removes them), not a problem. `executor`: where blobs are re-hashed
    (None: here, on threads).

    Out of core: the digests the catalog names and the entries of the store's indexes go to
    DuckDB tables (bounded by `COPYTRAIL_JOIN_MEMORY`, spilled past it), and joins answer which
    blobs are missing, which deleted ones remain and which no copy names. The blobs to re-hash
    are handed out in pack order with their locations, so no process holds the store's index
    and each compressed block is read and decompressed once."""
    with bounded_duckdb(VERIFY_MEMORY) as db:
        _load_references(conn, db, deleted_by_events, report, progress)
        scan = _load_store(db, store, report)
        db.execute("CREATE TABLE live AS SELECT DISTINCT sha FROM refs WHERE live")
        # Problems are listed up to MAX_LISTED and counted exactly: a store that lost every
        # blob must not put millions of messages in memory.
        # The count is a window over all missing blobs, taken before the LIMIT.
        listed_missing = db.execute(f"{_MISSING} LIMIT {MAX_LISTED}").fetchall()
        bad = [(sha, "missing") for sha, _ in listed_missing]
        unlisted = (listed_missing[0][1] if listed_missing else 0) - len(bad)
        if not quick:
            damaged, count = _rehash(db, store, scan, progress, executor)
            listed = damaged[: max(0, MAX_LISTED - len(bad))]
            bad += listed
            unlisted += count - len(listed)
        referrers = _referrers(db, [sha for sha, _ in bad])
        for sha, err in bad:
            report.problem(f"blob {sha} ({referrers.get(sha, '')}): {err}")
        report.problem_count += unlisted
        checked = db.execute("SELECT count(*) FROM live").fetchone()[0]
        report.counts.update(blobs_referenced=checked)
        leftovers = 0
        cur = db.execute(_STILL_STORED)
        while rows := cur.fetchmany(REFS_PAGE):
            for sha, ids in rows:
                if unfinished and all(i in unfinished for i in ids):
                    leftovers += 1
                else:
                    report.problem(f"blob {sha} of deleted copy {ids[0]} is still in the store")
        orphans = db.execute(_ORPHANS).fetchone()[0]
    if leftovers:
        report.notes.append(
            f"{leftovers} blobs of an interrupted deletion are still in the store; run "
            "`copytrail delete` again (any selection) to finish removing them"
        )
    temps = sum(1 for _ in store.iter_temporaries())
    if orphans:
        report.notes.append(
            f"{orphans} blobs are named by no copy (an interrupted ingest wrote them before its "
            "record committed; re-running that ingest records them)"
        )
    if temps:
        report.notes.append(f"{temps} temporary files left by interrupted blob writes")
    report.counts.update(orphan_blobs=orphans, temporary_files=temps)


_MISSING = """
    SELECT lower(hex(l.sha)), count(*) OVER () FROM live l
    WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.sha = l.sha)
      AND NOT EXISTS (SELECT 1 FROM loose o WHERE o.sha = l.sha)
    ORDER BY l.sha"""
# Blobs of deleted copies that no present copy shares and that the store still holds.
_STILL_STORED = """
    SELECT lower(hex(r.sha)), list(r.copy_id ORDER BY r.copy_id) FROM refs r
    WHERE NOT r.live
      AND NOT EXISTS (SELECT 1 FROM live l WHERE l.sha = r.sha)
      AND (EXISTS (SELECT 1 FROM stored s WHERE s.sha = r.sha)
           OR EXISTS (SELECT 1 FROM loose o WHERE o.sha = r.sha))
    GROUP BY r.sha ORDER BY min(r.copy_id)"""
_ORPHANS = """
    SELECT count(*) FROM (SELECT sha FROM stored UNION SELECT sha FROM loose) b
    WHERE NOT EXISTS (SELECT 1 FROM refs r WHERE r.sha = b.sha)"""


def _load_references(
    conn: Connection,
    db: Any,
    deleted_by_events: set[int],
    report: VerifyReport,
    progress: ProgressFn | None,
) -> None:
    """Table `refs`: each digest the catalog names, by which copy (or other row), and whether
    that copy is present. Checks each copy's status against the events on the way."""
    import pyarrow as pa

    db.execute("CREATE TABLE refs (sha BLOB, copy_id BIGINT, other VARCHAR, live BOOLEAN)")
    total = conn.execute(select(func.count()).select_from(copies)).scalar() or 0
    if progress:
        progress("copies", 0, total)
    cols = (copies.c.id, copies.c.status, copies.c.sha256, copies.c.text_sha256)
    last = 0
    while True:
        q = select(*cols).where(copies.c.id > last).order_by(copies.c.id).limit(REFS_PAGE)
        rows = conn.execute(q).all()
        if not rows:
            break
        last = rows[-1].id
        shas: list[str] = []
        ids: list[int] = []
        lives: list[bool] = []
        for cid, status, sha, text_sha in rows:
            is_deleted = status == "deleted"
            if is_deleted != (cid in deleted_by_events):
                report.problem(
                    f"copy {cid}: status {status!r} but the events say "
                    f"{'deleted' if cid in deleted_by_events else 'present'}"
                )
            for digest in (sha, text_sha) if text_sha != sha else (sha,):
                if digest is None:
                    continue
                if not SHA_HEX.fullmatch(digest):
                    report.problem(f"copy {cid}: {digest[:80]!r} is not a SHA-256 digest")
                    continue
                shas.append(digest)
                ids.append(cid)
                lives.append(not is_deleted)
        page = pa.table({"sha": shas, "copy_id": ids, "live": lives})
        run_with_arrow(db, "INSERT INTO refs SELECT unhex(sha), copy_id, NULL, live FROM {}", page)
        if progress:
            progress("copies", len(rows), None)
    # Reference texts of works lists, declared boilerplate passages and purpose documents are
    # blobs the library must keep as well.
    other: list[tuple[str, str]] = []
    for row in conn.execute(select(works.c.id, works.c.text_sha256, works.c.text_source_sha256)):
        for sha in {row.text_sha256, row.text_source_sha256} - {None}:
            other.append((sha, f"work {row.id}"))
    for row in conn.execute(select(boilerplate.c.name, boilerplate.c.text_sha256)):
        other.append((row.text_sha256, f"boilerplate {row.name!r}"))
    q = select(purposes.c.id, purposes.c.document_sha256).where(
        purposes.c.document_sha256.is_not(None)
    )
    for row in conn.execute(q):
        other.append((row.document_sha256, f"purpose {row.id}"))
    valid = []
    for sha, who in other:
        if SHA_HEX.fullmatch(sha or ""):
            valid.append((sha, who))
        else:
            report.problem(f"{who}: {str(sha)[:80]!r} is not a SHA-256 digest")
    if valid:
        page = pa.table({"sha": [s for s, _ in valid], "other": [w for _, w in valid]})
        run_with_arrow(db, "INSERT INTO refs SELECT unhex(sha), NULL, other, true FROM {}", page)


def _load_store(db: Any, store: BlobStore, report: VerifyReport) -> IndexScan:
    """Tables `stored` (every packed entry and where it lies; `pack` numbers the returned
    scan's names) and `loose` (every loose blob), read a chunk at a time."""
    import pyarrow as pa

    db.execute(
        "CREATE TABLE stored (sha BLOB, pack UINTEGER, kind UTINYINT, field UTINYINT, "
        "inner_off UINTEGER, block_off UBIGINT, block_len UINTEGER, size UBIGINT)"
    )
    scan = store.index_scan()
    for entries, numbers in scan.chunks():
        digests = np.ascontiguousarray(entries["sha"]).tobytes()  # 32 bytes each, zeros kept
        sha = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(32), len(entries), [None, pa.py_buffer(digests)]
        )
        columns = {k: entries[k] for k in ("kind", "field", "inner", "block_off", "block_len")}
        chunk = pa.table({"sha": sha, "pack": numbers, **columns, "size": entries["size"]})
        run_with_arrow(db, "INSERT INTO stored SELECT * FROM {}", chunk)
    for name in scan.unreadable:
        report.problem(f"pack {name}: its index cannot be read, so its blobs count as missing")
    db.execute("CREATE TABLE loose (sha BLOB)")
    # A library from before packs may hold millions of loose blobs: listed a page at a time.
    names = (n for n in store.iter_loose() if SHA_HEX.fullmatch(n))
    while page := list(itertools.islice(names, REFS_PAGE)):
        run_with_arrow(db, "INSERT INTO loose SELECT unhex(sha) FROM {}", pa.table({"sha": page}))
    return scan


def _rehash(
    db: Any,
    store: BlobStore,
    scan: IndexScan,
    progress: ProgressFn | None,
    executor: Executor | None,
) -> tuple[list[tuple[str, str]], int]:
    """Re-hash every live blob's stored copies (each packed copy, and the loose file where one
    exists and looking costs nothing or nothing is packed). Returns (digest, what is wrong) for
    the first MAX_LISTED bad ones, and how many are bad.
    They are read in pack order, a task of neighbours at a time."""
    todo = f"""
        SELECT s.sha, s.pack, s.kind, s.field, s.inner_off, s.block_off, s.block_len, s.size,
               false AS loose
        FROM stored s SEMI JOIN live l ON l.sha = s.sha
        UNION ALL
        SELECT o.sha, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true
        FROM loose o SEMI JOIN live l ON l.sha = o.sha
        WHERE {str(store.is_local).lower()}
           OR NOT EXISTS (SELECT 1 FROM stored s WHERE s.sha = o.sha)"""
    count, nbytes = db.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM ({todo})").fetchone()
    if progress:
        progress("blobs", 0, count)

    def item(r: tuple) -> CheckItem:
        sha, pack, kind, fld, inner, off, length, size, is_loose = r
        if is_loose:
            return sha.hex(), None
        name, names = scan.names[pack], scan.fields[pack]
        # A field number the index does not name (damage) reads the default field, so the
        # blob fails its hash check instead of stopping verify.
        field_name = names[fld] if kind == DERIVED and fld < len(names) else None
        return sha.hex(), (name, kind, field_name, inner, off, length, size)

    def tasks() -> Iterator[list[CheckItem]]:
        cur = db.execute(f"{todo} ORDER BY loose, pack, block_off, inner_off")
        while rows := cur.fetchmany(BLOB_CHECK_TASK):
            yield [item(r) for r in rows]

    job = BlobCheck(store)
    results = (
        map_inline(check_blobs, tasks(), job)
        if executor is None
        else executor.map(check_blobs, tasks(), job, int(nbytes))
    )
    bad: list[tuple[str, str]] = []
    count = 0
    for done, problems in results:
        count += len(problems)
        bad += problems[: max(0, MAX_LISTED - len(bad))]
        if progress:
            progress("blobs", done, None)
    return bad, count


def _referrers(db: Any, shas: list[str]) -> dict[str, str]:
    """The first few rows naming each digest, for the problem messages."""
    if not shas:
        return {}
    import pyarrow as pa

    rows = run_with_arrow(
        db,
        """SELECT lower(hex(r.sha)),
                  list(coalesce('copy ' || r.copy_id, r.other)
                       ORDER BY r.copy_id NULLS LAST, r.other)[1:5]
           FROM refs r SEMI JOIN {} w ON r.sha = unhex(w.sha)
           WHERE r.live GROUP BY r.sha""",
        pa.table({"sha": sorted(set(shas))}),
    )
    return {sha: ", ".join(who) for sha, who in rows}
