"""Merkle checkpoints over the event log and inclusion proofs for single events.

Leaf i (0-based) of the tree is H(0x00 || bytes of event seq i+1's hash). A checkpoint stores the
tree size and root; it also keeps the compact range (the O(log n) stack of perfect subtree roots),
so the next checkpoint hashes only the events added since.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select

from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger import merkle
from copytrail.ledger.events import utc_now
from copytrail.ledger.schema import checkpoints, events

_BATCH = 20_000


def iter_leaf_hashes(conn: Connection, start_seq: int = 1, end_seq: int | None = None):  # type: ignore[no-untyped-def]
    seq = start_seq
    while end_seq is None or seq <= end_seq:
        q = select(events.c.seq, events.c.hash).where(events.c.seq >= seq)
        if end_seq is not None:
            q = q.where(events.c.seq <= end_seq)
        rows = conn.execute(q.order_by(events.c.seq).limit(_BATCH)).all()
        if not rows:
            return
        for r in rows:
            yield merkle.leaf_hash(bytes.fromhex(r.hash))
        seq = rows[-1].seq + 1


def latest_checkpoint(conn: Connection) -> Any:
    return conn.execute(select(checkpoints).order_by(checkpoints.c.id.desc()).limit(1)).first()


def make_checkpoint(conn: Connection, actor: str) -> dict[str, Any]:
    """Runs under the write lock so no event lands between reading the tail and recording."""
    last = latest_checkpoint(conn)
    cr = merkle.CompactRange()
    start = 1
    if last is not None and last.compact_range:
        state = orjson.loads(last.compact_range)
        cr._stack = [(s, bytes.fromhex(h)) for s, h in state["stack"]]
        cr.size = state["size"]
        start = cr.size + 1
    for leaf in iter_leaf_hashes(conn, start):
        cr.append_leaf_hash(leaf)
    if last is not None and cr.size == last.tree_size:
        return _checkpoint_dict(last) | {"new": False}
    row = {
        "id": (last.id + 1) if last else 1,
        "tree_size": cr.size,
        "root_hash": cr.root().hex(),
        "time": utc_now(),
        "actor": actor,
        "compact_range": orjson.dumps(
            {"size": cr.size, "stack": [[s, h.hex()] for s, h in cr._stack]}
        ).decode(),
    }
    conn.execute(insert(checkpoints), [row])
    return _checkpoint_dict(row) | {"new": True}


def _checkpoint_dict(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {k: get(k) for k in ("id", "tree_size", "root_hash", "time", "actor")}


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The [lo, hi) leaf ranges whose roots form the audit path of `index`, leaf-side first."""
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    ranges.reverse()
    return ranges


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
    ranges = inclusion_ranges(index, size)
    # One streaming pass over the leaves computes every path node: O(log n) memory.
    builders = [merkle.CompactRange() for _ in ranges]
    owner = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    pos = 0
    for leaf_no, leaf in enumerate(iter_leaf_hashes(conn, 1, size)):
        while pos < len(owner) and ranges[owner[pos]][1] <= leaf_no:
            pos += 1
        if pos < len(owner) and ranges[owner[pos]][0] <= leaf_no < ranges[owner[pos]][1]:
            builders[owner[pos]].append_leaf_hash(leaf)
    path = [b.root() for b in builders]
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
        "path": [p.hex() for p in path],
        "leaf_hash": leaf.hex(),
        "verified": merkle.verify_inclusion(index, size, leaf, path, root),
        "how_to_verify": (
            "leaf = SHA-256(0x00 || event_hash bytes); fold the path per RFC 9162 section 2.1.3.2 "
            "and compare with root_hash; `python copytrail/ledger/merkle.py proof.json` does it"
        ),
    }
