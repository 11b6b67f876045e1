"""The Merkle tree over the event log, kept as stored interior nodes.

Leaf i (0-based) is H(0x00 || bytes of event seq i+1's hash). Every perfect, aligned subtree of
2**level leaves (level >= STORED_LEVEL) is written to `tree_nodes` when a checkpoint extends the
tree, so the root of any subtree an inclusion or consistency proof needs is a fold of at most
log2(n) stored nodes plus a few leaves read by sequence number: a proof reads O(log n) rows, not
every leaf. Nodes are only written up to the latest checkpoint (`meta.tree_nodes_size`), so every
proof is against a checkpointed tree head.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from copytrail.errors import CopytrailError
from copytrail.ledger import merkle
from copytrail.ledger.schema import events, meta, tree_nodes

# Levels 0-3 (subtrees of up to 8 leaves) are not stored: they are rehashed from at most 8 events
# read by primary key, which costs less than storing 15 of every 16 nodes.
STORED_LEVEL = 4
_FLUSH = 10_000
_LEAF_BATCH = 20_000
NODES_SIZE_KEY = "tree_nodes_size"


def iter_leaf_hashes(
    conn: Connection, start_seq: int = 1, end_seq: int | None = None
) -> Iterator[bytes]:
    """Leaf hashes of events start_seq..end_seq in order, fetched in batches."""
    seq = start_seq
    while end_seq is None or seq <= end_seq:
        q = select(events.c.seq, events.c.hash).where(events.c.seq >= seq)
        if end_seq is not None:
            q = q.where(events.c.seq <= end_seq)
        rows = conn.execute(q.order_by(events.c.seq).limit(_LEAF_BATCH)).all()
        if not rows:
            return
        for r in rows:
            yield merkle.leaf_hash(bytes.fromhex(r.hash))
        seq = rows[-1].seq + 1


def event_count(conn: Connection) -> int:
    return conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one()


def stored_size(conn: Connection) -> int:
    """How many leaves the stored nodes cover (0 for a library made before they existed)."""
    v = conn.execute(select(meta.c.value).where(meta.c.key == NODES_SIZE_KEY)).scalar()
    return int(v) if v else 0


class NodeWriter:
    """Collects completed nodes of the stored levels and inserts them in batches."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._rows: list[dict[str, Any]] = []

    def __call__(self, level: int, idx: int, h: bytes) -> None:
        if level >= STORED_LEVEL:
            self._rows.append({"level": level, "idx": idx, "hash": h.hex()})
            if len(self._rows) >= _FLUSH:
                self.flush()

    def flush(self) -> None:
        if self._rows:
            self.conn.execute(insert(tree_nodes), self._rows)
            self._rows = []


def compact_state(cr: merkle.CompactRange) -> str:
    return orjson.dumps({"size": cr.size, "stack": [[s, h.hex()] for s, h in cr._stack]}).decode()


def load_compact(state: str | None) -> merkle.CompactRange:
    cr = merkle.CompactRange()
    if state:
        d = orjson.loads(state)
        cr._stack = [(s, bytes.fromhex(h)) for s, h in d["stack"]]
        cr.size = d["size"]
    return cr


def extend(
    conn: Connection, resume: tuple[int, str | None] | None, upto: int | None = None
) -> merkle.CompactRange:
    """Grow the stored tree to every event (or to event `upto`), under the write lock. `resume`
    is (tree size, compact range) of the latest checkpoint; when the stored nodes end elsewhere
    (a library from before they existed) they are rebuilt from the first event."""
    have = stored_size(conn)
    if resume is not None and resume[1] and resume[0] == have:
        cr = load_compact(resume[1])
    else:
        conn.execute(delete(tree_nodes))
        cr = merkle.CompactRange()
    writer = NodeWriter(conn)
    cr.on_node = writer
    for leaf in iter_leaf_hashes(conn, cr.size + 1, upto):
        cr.append_leaf_hash(leaf)
    writer.flush()
    cr.on_node = None
    _set_stored_size(conn, cr.size)
    return cr


def _set_stored_size(conn: Connection, size: int) -> None:
    if conn.execute(select(meta.c.key).where(meta.c.key == NODES_SIZE_KEY)).first():
        conn.execute(update(meta).where(meta.c.key == NODES_SIZE_KEY).values(value=str(size)))
    else:
        conn.execute(insert(meta), [{"key": NODES_SIZE_KEY, "value": str(size)}])


def subtree_roots(
    conn: Connection,
    ranges: Sequence[tuple[int, int]],
    cache: dict[Any, bytes] | None = None,
) -> list[bytes]:
    """Roots of the RFC 9162 subtrees over leaves [lo, hi), each folded from stored nodes and a
    few rehashed leaves. Raises when a range reaches past the stored nodes. `cache` keeps the
    nodes read, for many proofs against one tree (an evidence bundle)."""
    limit = stored_size(conn)
    parts = [merkle.subtree_ranges(lo, hi) for lo, hi in ranges]
    wanted: set[tuple[int, int]] = set()
    small: list[tuple[int, int]] = []
    for lo, hi in (p for ps in parts for p in ps):
        if hi > limit:
            raise CopytrailError(
                f"the stored tree covers {limit} events; run `copytrail checkpoint` to cover "
                f"up to event {hi}"
            )
        level = (hi - lo).bit_length() - 1
        if level >= STORED_LEVEL:
            wanted.add((level, lo >> level))
        else:
            small.append((lo, hi))
    found: dict[Any, bytes] = cache if cache is not None else {}
    found.update(_read_nodes(conn, wanted - found.keys()))
    for lo, hi in small:
        if (lo, hi) not in found:
            found[(lo, hi)] = merkle.root_from_leaf_hashes(iter_leaf_hashes(conn, lo + 1, hi))
    out = []
    for ps in parts:
        roots = []
        for lo, hi in ps:
            level = (hi - lo).bit_length() - 1
            key = (level, lo >> level) if level >= STORED_LEVEL else (lo, hi)
            if key not in found:
                raise CopytrailError(
                    f"tree node for events {lo + 1}..{hi} is missing from tree_nodes; "
                    "`copytrail verify` reports the damage"
                )
            roots.append(found[key])
        out.append(merkle.fold_right(roots))
    return out


def _read_nodes(conn: Connection, keys: set[tuple[int, int]]) -> dict[Any, bytes]:
    found: dict[Any, bytes] = {}
    keys_list = sorted(keys)
    for i in range(0, len(keys_list), 200):
        part = keys_list[i : i + 200]
        cond = or_(*(and_(tree_nodes.c.level == lv, tree_nodes.c.idx == ix) for lv, ix in part))
        for r in conn.execute(select(tree_nodes).where(cond)):
            found[(r.level, r.idx)] = bytes.fromhex(r.hash)
    return found


def root_at(conn: Connection, size: int) -> bytes:
    """Root of the tree of the first `size` events, from stored nodes."""
    return merkle.EMPTY_ROOT if size == 0 else subtree_roots(conn, [(0, size)])[0]


def inclusion_path(
    conn: Connection, index: int, size: int, cache: dict[Any, bytes] | None = None
) -> list[bytes]:
    return subtree_roots(conn, inclusion_ranges(index, size), cache)


def consistency_path(conn: Connection, old_size: int, new_size: int) -> list[bytes]:
    return subtree_roots(conn, merkle.consistency_ranges(old_size, new_size))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The [lo, hi) leaf ranges whose roots form the audit path of `index`, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside tree of size {size}")
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


class NodeCheck:
    """Compares the stored nodes with the ones recomputed from the events, in batches, while
    `verify` streams the log; a forged or damaged node would make proofs disagree with the log."""

    def __init__(self, conn: Connection, problem: Any) -> None:
        self.conn = conn
        self.problem = problem
        self.limit = stored_size(conn)
        self.expected = 0
        self._batch: dict[tuple[int, int], bytes] = {}

    def __call__(self, level: int, idx: int, h: bytes) -> None:
        if level >= STORED_LEVEL and (idx + 1) << level <= self.limit:
            self.expected += 1
            self._batch[(level, idx)] = h
            if len(self._batch) >= 2000:
                self.flush()

    def flush(self) -> None:
        if not self._batch:
            return
        by_level: dict[int, list[int]] = {}
        for level, idx in self._batch:
            by_level.setdefault(level, []).append(idx)
        stored: dict[tuple[int, int], str] = {}
        for level, idxs in by_level.items():
            q = select(tree_nodes).where(
                tree_nodes.c.level == level, tree_nodes.c.idx.between(min(idxs), max(idxs))
            )
            stored.update({(r.level, r.idx): r.hash for r in self.conn.execute(q)})
        for (level, idx), h in sorted(self._batch.items()):
            have = stored.get((level, idx))
            span = f"events {(idx << level) + 1}..{(idx + 1) << level}"
            if have is None:
                self.problem(f"tree node level {level} #{idx} ({span}) is missing")
            elif have != h.hex():
                self.problem(
                    f"tree node level {level} #{idx} ({span}) differs from the events' hashes"
                )
        self._batch = {}

    def finish(self) -> None:
        self.flush()
        stored = self.conn.execute(select(func.count()).select_from(tree_nodes)).scalar_one()
        if stored > self.expected:
            self.problem(
                f"{stored - self.expected} stored tree nodes cover events that do not exist"
            )
