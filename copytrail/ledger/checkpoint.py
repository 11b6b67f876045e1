"""Merkle checkpoints over the event log and inclusion proofs for single events.

Leaf i (0-based) of the tree is H(0x00 || bytes of event seq i+1's hash). A checkpoint stores the
tree size and root, the signed note when the log has a signing key, and the compact range (the
O(log n) stack of perfect subtree roots), so the next checkpoint hashes only the events added
since. Proofs read the stored interior nodes (tree.py).
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger import merkle, note, tree
from copytrail.ledger.events import utc_now
from copytrail.ledger.note import Signer
from copytrail.ledger.schema import checkpoints, events


def latest_checkpoint(conn: Connection) -> Any:
    return conn.execute(select(checkpoints).order_by(checkpoints.c.id.desc()).limit(1)).first()


def make_checkpoint(conn: Connection, actor: str, signer: Signer | None = None) -> dict[str, Any]:
    """Runs under the write lock so no event lands between reading the tail and recording.
    With a signer, the tree head is also a signed C2SP checkpoint note."""
    last = latest_checkpoint(conn)
    cr = tree.extend(conn, (last.tree_size, last.compact_range) if last is not None else None)
    if last is not None and cr.size == last.tree_size:
        if signer is not None and not _signed_by(last.note, signer):
            signed = _sign(signer, last.tree_size, bytes.fromhex(last.root_hash))
            conn.execute(update(checkpoints).where(checkpoints.c.id == last.id).values(note=signed))
            return _checkpoint_dict(last) | {"note": signed, "new": False, "signed_now": True}
        return _checkpoint_dict(last) | {"new": False}
    row = {
        "id": (last.id + 1) if last else 1,
        "tree_size": cr.size,
        "root_hash": cr.root().hex(),
        "time": utc_now(),
        "actor": actor,
        "compact_range": tree.compact_state(cr),
        "note": _sign(signer, cr.size, cr.root()) if signer is not None else None,
        "timestamp_token": None,
    }
    conn.execute(insert(checkpoints), [row])
    return _checkpoint_dict(row) | {"new": True}


def _sign(signer: Signer, size: int, root: bytes) -> str:
    text = note.Checkpoint(signer.name, size, root).text()
    return text.decode() + "\n" + signer.sign_line(text)


def _signed_by(note_text: str | None, signer: Signer) -> bool:
    if not note_text:
        return False
    try:
        return signer.verifier.vkey in note.parse_note(note_text).signed_by([signer.verifier])
    except note.NoteError:
        return False


def _checkpoint_dict(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    keys = ("id", "tree_size", "root_hash", "time", "actor", "note", "timestamp_token")
    return {k: get(k) for k in keys}


def prove(conn: Connection, seq: int, checkpoint_id: int | None = None) -> dict[str, Any]:
    ev = conn.execute(select(events).where(events.c.seq == seq)).first()
    if ev is None:
        total = conn.execute(select(func.max(events.c.seq))).scalar() or 0
        raise NotFound(f"no event {seq}; events run from 1 to {total}")
    q = select(checkpoints)
    if checkpoint_id is not None:
        q = q.where(checkpoints.c.id == checkpoint_id)
    else:
        q = q.where(checkpoints.c.tree_size >= seq).order_by(checkpoints.c.id.desc()).limit(1)
    cp = conn.execute(q).first()
    if cp is None or cp.tree_size < seq:
        raise InvalidInput(
            f"event {seq} is not yet under a checkpoint; run `copytrail checkpoint` and try again"
        )
    index, size = seq - 1, cp.tree_size
    path = tree.inclusion_path(conn, index, size)
    leaf = merkle.leaf_hash(bytes.fromhex(ev.hash))
    root = bytes.fromhex(cp.root_hash)
    return {
        "event_seq": seq,
        "event_hash": ev.hash,
        "leaf_index": index,
        "tree_size": size,
        "root_hash": cp.root_hash,
        "checkpoint_id": cp.id,
        "checkpoint_time": cp.time,
        "checkpoint_note": cp.note,
        "path": [p.hex() for p in path],
        "leaf_hash": leaf.hex(),
        "verified": merkle.verify_inclusion(index, size, leaf, path, root),
        "how_to_verify": (
            "leaf = SHA-256(0x00 || event_hash bytes); fold the path per RFC 9162 section 2.1.3.2 "
            "and compare with root_hash; `python copytrail/ledger/merkle.py proof.json` does it"
        ),
    }


def consistency(conn: Connection, old_size: int, new_size: int | None = None) -> dict[str, Any]:
    """A proof (RFC 9162 section 2.1.4) that the tree of `new_size` events (default: the latest
    checkpoint) extends the tree of `old_size` events, from the stored nodes."""
    last = latest_checkpoint(conn)
    if last is None:
        raise InvalidInput("no checkpoint yet: run `copytrail checkpoint` first")
    new_size = last.tree_size if new_size is None else new_size
    if not 0 < old_size <= new_size:
        raise InvalidInput(
            f"a consistency proof goes from a smaller tree to a larger one (1 <= OLD <= NEW), "
            f"not {old_size} -> {new_size}"
        )
    if new_size > last.tree_size:
        raise InvalidInput(
            f"the latest checkpoint covers {last.tree_size} events, not {new_size}; run "
            "`copytrail checkpoint` first"
        )
    old_root, new_root = tree.root_at(conn, old_size), tree.root_at(conn, new_size)
    path = tree.consistency_path(conn, old_size, new_size)
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "path": [p.hex() for p in path],
        "verified": merkle.verify_consistency(old_size, new_size, old_root, new_root, path),
        "how_to_verify": (
            "fold the path per RFC 9162 section 2.1.4.2 from old_root; it must give both old_root "
            "and new_root; merkle.verify_consistency in copytrail/ledger/merkle.py does it"
        ),
    }


def checkpoint_by_id(conn: Connection, checkpoint_id: int) -> Any:
    return conn.execute(select(checkpoints).where(checkpoints.c.id == checkpoint_id)).first()


def add_cosignatures(conn: Connection, cosigned: str, witnesses: list[note.Verifier]) -> dict:
    """Keep a witness's cosignature on the checkpoint it signed: the note's text must be one of
    ours, and each given witness key must have signed it."""
    n = note.parse_note(cosigned)
    cp = note.parse_checkpoint(n.text)
    rows = conn.execute(
        select(checkpoints).where(
            checkpoints.c.tree_size == cp.size, checkpoints.c.note.is_not(None)
        )
    ).all()
    mine = next((r for r in rows if note.parse_note(r.note).text == n.text), None)
    if mine is None:
        raise InvalidInput(
            f"this log signed no checkpoint of size {cp.size} with root "
            f"{cp.root.hex()[:16]}...; the witness signed another log's head"
        )
    signed = n.signed_by(witnesses)
    if not signed:
        raise InvalidInput("none of the given witness keys cosigned this checkpoint")
    lines = "".join(
        note.DASH + name + " " + base64.b64encode(k + s).decode() + "\n"
        for name, k, s in n.signatures
        if any(w.name == name and w.key_id == k for w in witnesses)
    )
    merged = note.add_signatures(note.parse_note(mine.note), lines).render()
    conn.execute(update(checkpoints).where(checkpoints.c.id == mine.id).values(note=merged))
    return {"checkpoint_id": mine.id, "tree_size": cp.size, "cosigned_by": sorted(signed)}


def set_timestamp(conn: Connection, checkpoint_id: int, token_b64: str) -> None:
    conn.execute(
        update(checkpoints)
        .where(checkpoints.c.id == checkpoint_id)
        .values(timestamp_token=token_b64)
    )
