"""An ingest run: plan the inputs, fan the tasks out to workers, record results in batches.

Each batch of records is committed in one write transaction (copies + their events). A kill loses
at most the uncommitted batch; its blobs are already stored, and a re-run records it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from copytrail.catalog import records
from copytrail.catalog.schema import copies
from copytrail.context import Context
from copytrail.ingest.limits import Limits
from copytrail.ingest.plan import Planner, discover
from copytrail.ingest.work import IngestContext, run_task
from copytrail.ledger.db import Statistics, write_transaction
from copytrail.ledger.events import EventWriter, append_event
from copytrail.progress import NoProgress, Progress

FLUSH_RECORDS = 2000
FLUSH_SECONDS = 1.0
MERGE_AFTER_PACKS = 16  # packs not yet in the merged index before an ingest rewrites it


@dataclass
class IngestSummary:
    dataset: str
    source: str
    files: int = 0  # files named on the command line or found under named directories
    items: int = 0  # documents and records seen (archive members and records included)
    copies_added: int = 0
    copies_existing: int = 0
    unreadable: int = 0  # items recorded as unreadable or refused (new or seen before)
    bytes: int = 0
    seconds: float = 0.0
    run_id: str = ""
    containers: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)  # first unreadable items
    event_seq: int = 0  # the run's own `ingested` event, once recorded

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(
    ctx: Context,
    paths: list[str],
    source: str,
    dataset: str,
    text_field: str = "text",
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    progress = progress or NoProgress()
    limits = limits or Limits()
    inputs = discover(paths)
    ds = ensure_dataset(ctx, dataset, source)
    summary = IngestSummary(
        dataset=ds["label"],
        source=source,
        files=len(inputs),
        bytes=sum(i.size for i in inputs),
        run_id=uuid.uuid4().hex,
    )
    planner = Planner(limits, text_field)
    stats = Statistics(ctx.db, [copies])
    pending: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    t0 = time.monotonic()

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            added, existing = record_copies(ctx, ds["id"], pending)
            summary.copies_added += added
            summary.copies_existing += existing
            pending = []
            stats.grew(added)
        last_flush = time.monotonic()

    progress.start(summary.bytes, summary.files)
    try:
        tasks = planner.tasks(inputs)
        worker = IngestContext(ctx.store, limits)
        # Recorded in input order: the same inputs get the same copy ids on any engine.
        for records, nbytes in ctx.executor.map(
            run_task, tasks, worker, summary.bytes, ordered=True
        ):
            errors = 0
            for r in records:
                if r["status"] != "ok":
                    errors += 1
                    if len(summary.problems) < 100:
                        summary.problems.append(
                            {"path": r["path"], "status": r["status"], "reason": r["reason"]}
                        )
            summary.items += len(records)
            summary.unreadable += errors
            pending.extend(records)
            if len(pending) >= FLUSH_RECORDS or time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()
            progress.advance(nbytes, len(records), errors)
        flush()
        # Opening a library then reads one merged pack index, not one per pack.
        ctx.store.consolidate(min_unmerged=MERGE_AFTER_PACKS)
    finally:
        progress.finish()
    summary.seconds = round(time.monotonic() - t0, 3)
    summary.containers = planner.stats.containers
    summary.event_seq = record_ingest_run(ctx, ds["id"], summary)
    return summary


def ensure_dataset(ctx: Context, ref: str, source: str) -> dict[str, Any]:
    """The dataset NAME@VERSION of a source, recorded (with its event) if it is new."""
    with write_transaction(ctx.db) as conn:
        ev = EventWriter(conn, ctx.actor)
        row, created = records.get_or_create_dataset(conn, ev, ref, source)
    d = row._asdict()
    return {**d, "label": records.dataset_label(d["name"], d["version"]), "created_now": created}


def record_copies(ctx: Context, dataset_id: int, batch: list[dict[str, Any]]) -> tuple[int, int]:
    """Record worker results in one transaction; returns (added, already present)."""
    with write_transaction(ctx.db) as conn:
        new_ids, existing = records.record_copies(
            conn, EventWriter(conn, ctx.actor), dataset_id, batch
        )
    return len(new_ids), existing


def record_ingest_run(ctx: Context, dataset_id: int, summary: IngestSummary) -> int:
    payload = {k: v for k, v in summary.as_dict().items() if k not in ("problems", "event_seq")}
    subjects = {"dataset_id": dataset_id, "run_id": summary.run_id}
    return append_event(ctx.db, ctx.actor, "ingested", subjects, payload)
