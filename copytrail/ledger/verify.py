"""Verification of the log alone: every event hashes to its stored hash and links to the one
before with no gaps, and every checkpoint's root equals the Merkle root recomputed over its first
tree_size events. It knows nothing of copies; copytrail/checker.py cross-checks the catalog and
the store against the events this verifier streams out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from copytrail.ledger import merkle
from copytrail.ledger.events import GENESIS_HASH, Event, iter_events, recompute_hash
from copytrail.ledger.schema import checkpoints

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


def verify_log(
    conn: Connection, report: VerifyReport, progress: ProgressFn | None = None
) -> Iterator[Event]:
    """Check the chain and the checkpoints while streaming every event to the caller, so one
    pass over the log serves every cross-check."""
    cps = conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size)).all()
    cp_at: dict[int, list[Any]] = {}
    for cp in cps:
        cp_at.setdefault(cp.tree_size, []).append(cp)
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
        yield ev
        if progress and n % 5000 == 0:
            progress("events", 5000, None)
    for cp in cps:
        if cp.tree_size > cr.size:
            report.problem(f"checkpoint {cp.id} covers {cp.tree_size} events; only {cr.size} exist")
    report.counts.update(events=n, checkpoints=len(cps))
    if not cps:
        report.notes.append("no checkpoint yet: run `copytrail checkpoint` to publish a tree head")
    elif cps[-1].tree_size < cr.size:
        report.notes.append(
            f"{cr.size - cps[-1].tree_size} events after the latest checkpoint "
            f"(tree size {cps[-1].tree_size}); run `copytrail checkpoint` to cover them"
        )
