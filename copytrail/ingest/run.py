"""An ingest run: plan the inputs, fan the tasks out to workers, record results in batches.

Each batch of records is committed in one write transaction (copies + their events). A kill loses
at most the uncommitted batch; its blobs are already stored, and a re-run records it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from copytrail.engine.local import map_with_store
from copytrail.ingest.limits import Limits
from copytrail.ingest.plan import Planner, discover
from copytrail.ingest.work import run_task
from copytrail.progress import NoProgress, Progress

if TYPE_CHECKING:
    from copytrail.library import Library

FLUSH_RECORDS = 2000
FLUSH_SECONDS = 1.0
SMALL_INPUT_BYTES = 16 << 20


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(
    lib: Library,
    paths: list[str],
    source: str,
    dataset: str,
    workers: int | None = None,
    text_field: str = "text",
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    progress = progress or NoProgress()
    limits = limits or Limits()
    inputs = discover(paths)
    ds = lib.ensure_dataset(dataset, source)
    summary = IngestSummary(
        dataset=ds["label"],
        source=source,
        files=len(inputs),
        bytes=sum(i.size for i in inputs),
        run_id=uuid.uuid4().hex,
    )
    store = lib.store
    if workers is None and summary.bytes < SMALL_INPUT_BYTES and len(inputs) < 64:
        workers = 1  # starting worker processes would cost more than the work itself
    planner = Planner(limits, text_field)
    pending: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    t0 = time.monotonic()

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            added, existing = lib.record_copies(ds["id"], pending)
            summary.copies_added += added
            summary.copies_existing += existing
            pending = []
        last_flush = time.monotonic()

    progress.start(summary.bytes, summary.files)
    try:
        for records, nbytes in map_with_store(run_task, planner.tasks(inputs), store, workers):
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
    finally:
        progress.finish()
    summary.seconds = round(time.monotonic() - t0, 3)
    summary.containers = planner.stats.containers
    lib.record_ingest_run(ds["id"], summary)
    return summary
