"""`verify --against`: does this log extend the checkpoints someone else kept?

A log whose database was rewritten can be made self-consistent (every hash and checkpoint
recomputed), so `verify` alone cannot see it. A checkpoint held outside the operator's reach (by
a witness, a court, the other side's expert) pins the tree: the root recomputed from today's
events at that size must equal the held root, and the stored tree must prove it extends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from copytrail.errors import InvalidInput
from copytrail.ledger import checkpoint, merkle, note, signing, tree
from copytrail.ledger.verify import VerifyReport

MAX_HELD = 100_000


@dataclass(frozen=True)
class Held:
    source: str
    head: note.Checkpoint
    note: note.Note


def read_held(paths: list[Path]) -> list[Held]:
    """Checkpoint notes from files, or from every *.note / `checkpoint` file under folders (a
    witness's state folder keeps its whole history that way)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and _is_note_name(f))
        elif p.is_file():
            files.append(p)
        else:
            raise InvalidInput(f"{p}: no such checkpoint file or folder")
    if not files:
        raise InvalidInput("no checkpoint notes found in " + ", ".join(map(str, paths)))
    held = []
    for f in files[:MAX_HELD]:
        try:
            with open(f, "rb") as fh:
                n = note.parse_note(fh.read(note.MAX_NOTE_BYTES + 1))
            held.append(Held(str(f), note.parse_checkpoint(n.text), n))
        except (note.NoteError, UnicodeDecodeError) as e:
            raise InvalidInput(f"{f}: not a signed checkpoint: {e}") from None
    return held


def _is_note_name(f: Path) -> bool:
    return f.suffix == ".note" or f.name == "checkpoint"


def check_against(conn: Connection, held: list[Held], report: VerifyReport) -> None:
    """After `verify_log` ran with roots_at = the held sizes: compare, and prove consistency
    from each agreeing held head to the latest checkpoint."""
    logs = signing.log_verifiers(conn)
    origins = {v.name for v in logs}
    total = tree.event_count(conn)
    latest = checkpoint.latest_checkpoint(conn)
    agree: list[int] = []
    diverge: list[int] = []
    findings: list[dict[str, Any]] = []
    for h in sorted(held, key=lambda h: h.head.size):
        size, root = h.head.size, h.head.root.hex()
        finding: dict[str, Any] = {"source": h.source, "tree_size": size, "root": root}
        findings.append(finding)
        if h.head.origin not in origins:
            finding["result"] = "another log"
            report.problem(
                f"{h.source}: a checkpoint of log {h.head.origin!r}, not of this log "
                f"({', '.join(sorted(origins)) or 'which has no signing key'})"
            )
            continue
        try:
            signed = h.note.signed_by(logs)
        except note.NoteError as e:
            signed, finding["signature_error"] = {}, str(e)
        if not signed:
            finding["result"] = "not signed by this log"
            report.problem(f"{h.source}: tree size {size} is not signed by any key of this log")
            continue
        if size > total:
            finding["result"] = "truncated"
            diverge.append(size)
            report.problem(
                f"{h.source}: the held checkpoint covers {size} events but the log has only "
                f"{total}: events {total + 1}..{size} were removed (truncated or rolled back)"
            )
            continue
        if report.roots.get(size) != root:
            finding["result"] = "diverged"
            diverge.append(size)
            report.problem(
                f"{h.source}: at tree size {size} the log's root is "
                f"{(report.roots.get(size) or '?')[:16]}... but the held checkpoint says "
                f"{root[:16]}...: events 1..{size} were rewritten since it was signed"
            )
            continue
        finding["result"] = "consistent"
        agree.append(size)
        if latest is not None and 0 < size <= latest.tree_size:
            proof = checkpoint.consistency(conn, size, latest.tree_size)
            ok = merkle.verify_consistency(
                size,
                latest.tree_size,
                h.head.root,
                bytes.fromhex(latest.root_hash),
                [bytes.fromhex(p) for p in proof["path"]],
            )
            finding["consistency_proof"] = proof
            if not ok:
                finding["result"] = "proof failed"
                report.problem(
                    f"{h.source}: the stored tree cannot prove size {latest.tree_size} extends "
                    f"size {size} (damaged tree nodes)"
                )
    report.against = {
        "held": len(held),
        "consistent": len(agree),
        "largest_consistent_size": max(agree) if agree else None,
        "first_divergent_size": min(diverge) if diverge else None,
        "checkpoints": findings,
    }
    if diverge:
        lo = max((s for s in agree if s < min(diverge)), default=0)
        report.problem(
            f"the log diverges from the held checkpoints at tree size {min(diverge)}"
            + (f" (it still agrees at size {lo})" if lo else "")
        )
