"""Verification of the log alone: every event hashes to its stored hash and links to the one
before with no gaps, and every checkpoint's root equals the Merkle root recomputed over its first
tree_size events. It knows nothing of copies; copytrail/checker.py cross-checks the catalog and
the store against the events this verifier streams out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from copytrail.ledger import merkle, note, signing, timestamp, tree
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
    roots: dict[int, str] = field(default_factory=dict)  # tree size -> root from the events
    against: dict[str, Any] | None = None  # `verify --against`: the held checkpoints' fate

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
            **({"against": self.against} if self.against is not None else {}),
        }


def verify_log(
    conn: Connection,
    report: VerifyReport,
    progress: ProgressFn | None = None,
    roots_at: set[int] | None = None,
    tsa_ca: Path | None = None,
) -> Iterator[Event]:
    """Check the chain, the stored tree nodes and the checkpoints (roots and signatures) while
    streaming every event to the caller, so one pass over the log serves every cross-check.
    The roots of the trees of `roots_at` sizes, recomputed from the events, land in
    report.roots (for `verify --against`)."""
    cps = conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size)).all()
    cp_at: dict[int, list[Any]] = {}
    for cp in cps:
        cp_at.setdefault(cp.tree_size, []).append(cp)
    nodes = tree.NodeCheck(conn, report.problem)
    cr = merkle.CompactRange(on_node=nodes)
    roots_at = roots_at or set()
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
        if cr.size in roots_at:
            report.roots[cr.size] = cr.root().hex()
        for cp in cp_at.get(cr.size, []):
            if cr.root().hex() != cp.root_hash:
                report.problem(
                    f"checkpoint {cp.id} (tree size {cp.tree_size}): root {cp.root_hash[:16]}... "
                    f"differs from the recomputed {cr.root().hex()[:16]}..."
                )
        yield ev
        if progress and n % 5000 == 0:
            progress("events", 5000, None)
    nodes.finish()
    for cp in cps:
        if cp.tree_size > cr.size:
            report.problem(f"checkpoint {cp.id} covers {cp.tree_size} events; only {cr.size} exist")
    check_notes(conn, cps, report, tsa_ca)
    report.counts.update(events=n, checkpoints=len(cps))
    if not cps:
        report.notes.append("no checkpoint yet: run `copytrail checkpoint` to publish a tree head")
    elif cps[-1].tree_size < cr.size:
        report.notes.append(
            f"{cr.size - cps[-1].tree_size} events after the latest checkpoint "
            f"(tree size {cps[-1].tree_size}); run `copytrail checkpoint` to cover them"
        )


def check_notes(
    conn: Connection, cps: list[Any], report: VerifyReport, tsa_ca: Path | None = None
) -> None:
    """Each signed checkpoint states its row's size and root and is signed by a key the log
    announced; cosignatures by witnesses the log trusts must verify too, and so must
    time-stamp tokens (issued by the CA in `tsa_ca` when given)."""
    logs = signing.log_verifiers(conn)
    witnesses = signing.witness_verifiers(conn)
    signed = cosigned = stamped = 0
    last_stamp = ""
    for cp in cps:
        if not cp.note:
            continue
        try:
            n = note.parse_note(cp.note)
            head = note.parse_checkpoint(n.text)
            if (head.size, head.root.hex()) != (cp.tree_size, cp.root_hash):
                report.problem(f"checkpoint {cp.id}: its signed note states another tree head")
                continue
            if not n.signed_by(logs):
                report.problem(f"checkpoint {cp.id}: no key the log announced signed its note")
                continue
            signed += 1
            cosigned += bool(n.signed_by(witnesses))
        except note.NoteError as e:
            report.problem(f"checkpoint {cp.id}: signed note rejected: {e}")
            continue
        if cp.timestamp_token:
            try:
                ts = timestamp.verify_token(timestamp.decode(cp.timestamp_token), n.text, tsa_ca)
                stamped += 1
                last_stamp = f"checkpoint {cp.id} time-stamped {ts['gen_time']} by {ts['tsa']}"
            except (timestamp.TimestampError, ValueError) as e:
                report.problem(f"checkpoint {cp.id}: time-stamp token rejected: {e}")
    report.counts.update(
        signed_checkpoints=signed, cosigned_checkpoints=cosigned, timestamped_checkpoints=stamped
    )
    if last_stamp:
        report.notes.append(
            last_stamp
            + ("" if tsa_ca else " (the TSA certificate was not checked: pass --tsa-ca CA.pem)")
        )
    if cps and not logs:
        report.notes.append(
            "checkpoints are not signed: `copytrail key identity --create` gives the log a key"
        )
