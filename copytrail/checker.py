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

import json
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
from copytrail.ledger.against import check_against, read_held
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import Event
from copytrail.ledger.schema import events
from copytrail.ledger.verify import ProgressFn, VerifyReport, verify_log
from copytrail.store.blobs import BlobStore

BLOB_CHECK_SLICE = 8192
BLOB_CHECK_THREADS = 8  # blob reads wait on the disk or the network as much as on the CPU
BLOB_CHECK_TASK = 512  # blobs re-hashed per executor task


@dataclass(frozen=True)
class BlobCheck:
    """What a worker re-hashing blobs needs: the store, and whether existence is enough."""

    store: BlobStore
    quick: bool = False


def check_blobs(
    job: BlobCheck, items: list[tuple[str, str]]
) -> tuple[int, list[tuple[str, str, str]]]:
    """An executor task: (blobs checked, (digest, referrers, what is wrong) per bad blob) for
    (digest, referrers) items. Threads inside it overlap reads with hashing."""

    def one(sha: str) -> str | None:
        if job.quick:
            return None if job.store.exists(sha, relist=False) else "missing"
        return job.store.check(sha)

    def run(part: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        return [(sha, who, err) for sha, who in part if (err := one(sha))]

    if job.quick or len(items) < 2:
        return len(items), run(items)
    # Each thread takes a contiguous run of items: neighbouring copies share pack blocks, and a
    # thread's block cache then decompresses each block once, not once per thread.
    step = -(-len(items) // BLOB_CHECK_THREADS)
    runs = [items[i : i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return len(items), [p for part in pool.map(run, runs) for p in part]


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


class _Digests:
    """A set of SHA-256 digests at 32 bytes each: sorted numpy arrays, merged as they grow
    (a Python set of hex strings costs ~150 bytes a digest)."""

    def __init__(self) -> None:
        self.sealed = _DigestArray(np.empty(0, dtype="S32"))
        self._pending: set[bytes] = set()

    def add(self, shas: list[str]) -> None:
        self._pending.update(bytes.fromhex(s) for s in shas)
        if len(self._pending) >= 1 << 18:
            self.seal()

    def seal(self) -> None:
        if self._pending:
            new = np.array(sorted(self._pending), dtype="S32")
            self.sealed = _DigestArray(np.unique(np.concatenate([self.sealed.arr, new])))
            self._pending = set()

    def __contains__(self, sha: str) -> bool:
        return sha in self.sealed or bytes.fromhex(sha) in self._pending


class _DigestArray:
    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr

    def __contains__(self, sha: object) -> bool:
        if not isinstance(sha, str) or len(sha) != 64:
            return False
        key = np.array([bytes.fromhex(sha)], dtype="S32")
        i = int(np.searchsorted(self.arr, key[0]))
        return i < len(self.arr) and self.arr[i] == key[0]


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
    (None: here, on threads)."""
    # Streams the copies a batch at a time: memory holds one batch of blobs to check, the
    # digests referenced so far (32 bytes each, for the orphan count) and the deleted copies'
    # blobs, never a record per blob of the library.
    store.refresh()  # once: the lookups below must not list the pack folder per blob
    job = BlobCheck(store, quick)
    referenced = _Digests()
    gone: dict[str, list[int]] = {}
    checked = 0
    present = copies.c.status != "deleted"
    bound, nbytes = conn.execute(
        select(
            func.count(copies.c.sha256) + func.count(copies.c.text_sha256),
            func.coalesce(func.sum(copies.c.size), 0)
            + func.coalesce(func.sum(copies.c.text_size), 0),
        ).where(present)
    ).one()
    if progress:  # an upper bound (shared blobs are checked once); set exactly at the end
        progress("blobs", 0, bound)

    def slices() -> Iterator[dict[str, list[str]]]:
        """Live digests with what refers to them, a slice at a time; deleted copies' digests
        are kept aside for the check that they are gone."""
        live: dict[str, list[str]] = {}
        for row in _iter_copies(conn):
            is_deleted = row.status == "deleted"
            if is_deleted != (row.id in deleted_by_events):
                report.problem(
                    f"copy {row.id}: status {row.status!r} but the events say "
                    f"{'deleted' if row.id in deleted_by_events else 'present'}"
                )
            for sha in {row.sha256, row.text_sha256} - {None}:
                if is_deleted:
                    gone.setdefault(sha, []).append(row.id)
                else:
                    live.setdefault(sha, []).append(f"copy {row.id}")
            if len(live) >= BLOB_CHECK_SLICE:
                yield live
                live = {}
        # Reference texts of works lists, declared boilerplate passages and purpose documents
        # are blobs the library must keep as well.
        q = select(works.c.id, works.c.text_sha256, works.c.text_source_sha256)
        for row in conn.execute(q):
            for sha in {row.text_sha256, row.text_source_sha256} - {None}:
                live.setdefault(sha, []).append(f"work {row.id}")
        for row in conn.execute(select(boilerplate.c.name, boilerplate.c.text_sha256)):
            live.setdefault(row.text_sha256, []).append(f"boilerplate {row.name!r}")
        q = select(purposes.c.id, purposes.c.document_sha256).where(
            purposes.c.document_sha256.is_not(None)
        )
        for row in conn.execute(q):
            live.setdefault(row.document_sha256, []).append(f"purpose {row.id}")
        yield live

    def tasks() -> Iterator[list[tuple[str, str]]]:
        """Each digest once, with the first few referrers for the message, in tasks. One map
        over all of them: starting workers per slice would cost more than the checks."""
        nonlocal checked
        for live in slices():
            names = [sha for sha in live if sha not in referenced]
            referenced.add(names)
            checked += len(names)
            for k in range(0, len(names), BLOB_CHECK_TASK):
                yield [(sha, ", ".join(live[sha][:5])) for sha in names[k : k + BLOB_CHECK_TASK]]

    # Quick checks stay here: they only look names up in the index.
    results = (
        map_inline(check_blobs, tasks(), job)
        if quick or executor is None
        else executor.map(check_blobs, tasks(), job, nbytes)
    )
    for count, problems in results:
        for sha, referrers, err in problems:
            report.problem(f"blob {sha} ({referrers}): {err}")
        if progress:
            progress("blobs", count, None)
    referenced.seal()
    report.counts.update(blobs_referenced=checked)
    if progress:
        progress("blobs", 0, checked)
    leftovers = 0
    for sha, ids in gone.items():
        if sha not in referenced and store.exists(sha, relist=False):
            if unfinished and all(i in unfinished for i in ids):
                leftovers += 1
            else:
                report.problem(f"blob {sha} of deleted copy {ids[0]} is still in the store")
    if leftovers:
        report.notes.append(
            f"{leftovers} blobs of an interrupted deletion are still in the store; run "
            "`copytrail delete` again (any selection) to finish removing them"
        )
    orphans = sum(1 for name in store.iter_names() if name not in referenced and name not in gone)
    temps = sum(1 for _ in store.iter_temporaries())
    if orphans:
        report.notes.append(
            f"{orphans} blobs are named by no copy (an interrupted ingest wrote them before its "
            "record committed; re-running that ingest records them)"
        )
    if temps:
        report.notes.append(f"{temps} temporary files left by interrupted blob writes")
    report.counts.update(orphan_blobs=orphans, temporary_files=temps)
