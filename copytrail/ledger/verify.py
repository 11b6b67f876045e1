"""`copytrail verify`: is the record intact and does the store hold what the record says?

1. The event chain: every event hashes to its stored hash and links to the one before; no gaps.
2. Every checkpoint's root equals the Merkle root recomputed over its first tree_size events.
3. The tables agree with the events: each copy row has the ingested event that created it, with
   the same hashes, path and status; sources and datasets likewise.
4. Every blob a present copy names exists and hashes to its name; the blobs of deleted copies are
   gone unless a present copy shares them.
Blobs no copy names (left by an ingest killed before its transaction committed) are harmless and
reported as a note, as are temporary files from a write killed before its rename.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from copytrail.ledger import merkle
from copytrail.ledger.events import GENESIS_HASH, iter_events, recompute_hash
from copytrail.ledger.records import copy_event_payload
from copytrail.ledger.schema import checkpoints, copies, datasets, sources, works
from copytrail.store.blobs import BlobStore

MAX_LISTED = 200  # problems listed one by one; the count is always exact

ProgressFn = Callable[[str, int, int | None], None]  # (phase, advance, total)


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, msg: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(msg)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem_count": self.problem_count,
            "problems": self.problems,
            "notes": self.notes,
            "counts": self.counts,
        }


def _row_payload(row: Any) -> dict[str, Any]:
    return copy_event_payload(row._asdict())


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


def verify_ledger(
    conn: Connection, report: VerifyReport, progress: ProgressFn | None = None
) -> set[int]:
    """Checks 1-3. Returns the ids of copies the events say were deleted."""
    cps = conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size)).all()
    cp_at: dict[int, list[Any]] = {}
    for cp in cps:
        cp_at.setdefault(cp.tree_size, []).append(cp)
    src_rows = {r.id: r for r in conn.execute(select(sources)).all()}
    ds_rows = {r.id: r for r in conn.execute(select(datasets)).all()}
    seen_sources: set[int] = set()
    seen_datasets: set[int] = set()
    deleted: set[int] = set()

    copy_iter = _iter_copies(conn)
    pending_copy = next(copy_iter, None)
    cr = merkle.CompactRange()
    prev_hash, expected_seq, n = GENESIS_HASH, 1, 0
    for ev in iter_events(conn):
        n += 1
        if ev.seq != expected_seq:
            report.problem(f"event {ev.seq}: expected event {expected_seq} (events missing)")
        expected_seq = ev.seq + 1
        if ev.prev_hash != prev_hash:
            report.problem(f"event {ev.seq}: prev_hash does not match the hash of the event before")
        if recompute_hash(ev) != ev.hash:
            report.problem(f"event {ev.seq}: content does not hash to its stored hash (edited)")
        prev_hash = ev.hash
        cr.append_leaf_hash(merkle.leaf_hash(bytes.fromhex(ev.hash)))
        for cp in cp_at.get(cr.size, []):
            if cr.root().hex() != cp.root_hash:
                report.problem(
                    f"checkpoint {cp.id} (tree size {cp.tree_size}): root {cp.root_hash[:16]}... "
                    f"differs from the recomputed {cr.root().hex()[:16]}..."
                )
        if ev.type == "ingested" and "copy_id" in ev.subjects:
            cid = ev.subjects["copy_id"]
            while pending_copy is not None and pending_copy.id < cid:
                report.problem(f"copy {pending_copy.id}: no ingested event records it")
                pending_copy = next(copy_iter, None)
            if pending_copy is None or pending_copy.id != cid:
                report.problem(f"event {ev.seq}: copy {cid} it records is missing from the table")
            else:
                row_payload = _row_payload(pending_copy)
                expect = dict(ev.payload)
                if pending_copy.status == "deleted":
                    row_payload["status"] = expect.get("status")
                if row_payload != expect or pending_copy.dataset_id != ev.subjects.get(
                    "dataset_id"
                ):
                    diff = sorted(
                        k
                        for k in set(row_payload) | set(expect)
                        if row_payload.get(k) != expect.get(k)
                    )
                    report.problem(
                        f"copy {cid}: table differs from its ingested event {ev.seq} "
                        f"in {diff or ['dataset']}"
                    )
                pending_copy = next(copy_iter, None)
        elif ev.type == "deleted":
            deleted.update(ev.subjects.get("copy_ids", []))
        elif ev.type == "acquired":
            _check_acquired(ev, src_rows, ds_rows, seen_sources, seen_datasets, report)
        if progress and n % 5000 == 0:
            progress("events", 5000, None)
    while pending_copy is not None:
        report.problem(f"copy {pending_copy.id}: no ingested event records it")
        pending_copy = next(copy_iter, None)
    for cp in cps:
        if cp.tree_size > cr.size:
            report.problem(f"checkpoint {cp.id} covers {cp.tree_size} events; only {cr.size} exist")
    for sid in set(src_rows) - seen_sources:
        report.problem(f"source {sid}: no acquired event records it")
    for did in set(ds_rows) - seen_datasets:
        report.problem(f"dataset {did}: no acquired event records it")
    report.counts.update(events=n, checkpoints=len(cps))
    if not cps:
        report.notes.append("no checkpoint yet: run `copytrail checkpoint` to publish a tree head")
    elif cps[-1].tree_size < cr.size:
        report.notes.append(
            f"{cr.size - cps[-1].tree_size} events after the latest checkpoint "
            f"(tree size {cps[-1].tree_size}); run `copytrail checkpoint` to cover them"
        )
    return deleted


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


def verify_blobs(
    conn: Connection,
    store: BlobStore,
    deleted_by_events: set[int],
    report: VerifyReport,
    quick: bool = False,
    workers: int = 8,
    progress: ProgressFn | None = None,
    unfinished: set[int] | None = None,
) -> None:
    """Check 4, plus orphan and temporary-file notes. `unfinished`: copies of a deletion that
    was interrupted before its certificate was written; their leftover blobs are a note (the
    next `copytrail delete` removes them), not a problem."""
    live: dict[str, list[int]] = {}
    gone: dict[str, list[int]] = {}
    for row in _iter_copies(conn):
        is_deleted = row.status == "deleted"
        if is_deleted != (row.id in deleted_by_events):
            report.problem(
                f"copy {row.id}: status {row.status!r} but the events say "
                f"{'deleted' if row.id in deleted_by_events else 'present'}"
            )
        target = gone if is_deleted else live
        for sha in {row.sha256, row.text_sha256} - {None}:
            target.setdefault(sha, []).append(row.id)
    # Reference texts of works lists are blobs the library must keep as well.
    for row in conn.execute(select(works.c.id, works.c.text_sha256, works.c.text_source_sha256)):
        for sha in {row.text_sha256, row.text_source_sha256} - {None}:
            live.setdefault(sha, []).append(-row.id)
    report.counts.update(blobs_referenced=len(live))
    if progress:
        progress("blobs", 0, len(live))

    def check(sha: str) -> tuple[str, str | None]:
        if quick:
            return sha, None if store.exists(sha) else "missing"
        return sha, store.check(sha)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for sha, err in pool.map(check, live, chunksize=64):
            if err:
                owners = [f"copy {i}" if i > 0 else f"work {-i}" for i in live[sha][:5]]
                report.problem(f"blob {sha} ({', '.join(owners)}): {err}")
            if progress:
                progress("blobs", 1, None)
    leftovers = 0
    for sha, ids in gone.items():
        if sha not in live and store.exists(sha):
            if unfinished and all(i in unfinished for i in ids):
                leftovers += 1
            else:
                report.problem(f"blob {sha} of deleted copy {ids[0]} is still in the store")
    if leftovers:
        report.notes.append(
            f"{leftovers} blobs of an interrupted deletion are still in the store; run "
            "`copytrail delete` again (any selection) to finish removing them"
        )
    referenced = set(live) | set(gone)
    orphans = sum(1 for name in store.iter_names() if name not in referenced)
    temps = sum(1 for _ in store.iter_temporaries())
    if orphans:
        report.notes.append(
            f"{orphans} blobs are named by no copy (an interrupted ingest wrote them before its "
            "record committed; re-running that ingest records them)"
        )
    if temps:
        report.notes.append(f"{temps} temporary files left by interrupted blob writes")
    report.counts.update(orphan_blobs=orphans, temporary_files=temps)


def parse_json(text: str | None) -> Any:
    return orjson.loads(text) if text else None
