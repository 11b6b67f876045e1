"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, written out by hand.

This module imports nothing but the standard library on purpose: an expert who receives a tree
head and an inclusion proof can copy this one file and check the proof without trusting
copytrail.

    leaf hash  = SHA-256(0x00 || data)
    node hash  = SHA-256(0x01 || left || right)
    empty tree = SHA-256("")

A tree of n > 1 leaves is split at k, the largest power of two smaller than n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """Root of a growing tree in O(log n) memory: a stack of perfect subtrees.

    The RFC split rule puts the largest perfect subtree on the left, so the left-to-right list of
    perfect subtrees (sizes are the binary digits of n) folded from the right gives the root.
    """

    def __init__(self, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (size, hash), sizes strictly decreasing
        self.size = 0
        # Told of every perfect subtree as it completes: (level, index within level, root).
        self.on_node = on_node

    def append_leaf_hash(self, h: bytes) -> None:
        size = 1
        end = self.size + 1
        if self.on_node:
            self.on_node(0, self.size, h)
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            h = node_hash(left, h)
            size += left_size
            if self.on_node:
                self.on_node(size.bit_length() - 1, (end - size) // size, h)
        self._stack.append((size, h))
        self.size = end

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def root_from_leaf_hashes(leaves: Iterable[bytes]) -> bytes:
    cr = CompactRange()
    for h in leaves:
        cr.append_leaf_hash(h)
    return cr.root()


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path (RFC 9162 section 2.1.3.1) for leaf `index` in the tree of all `leaves`."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} outside tree of size {n}")
    path: list[bytes] = []
    lo, hi = 0, n
    # Walk from the root down, collecting the sibling subtree roots; reverse at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(root_from_leaf_hashes(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root_from_leaf_hashes(leaves[lo : lo + k]))
            lo = lo + k
    path.reverse()
    return path


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ValueError("inclusion path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion path is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """True when `leaf` (a leaf *hash*) is entry `index` of the tree of `size` with `root`."""
    if not _all_hashes([leaf, root, *path]):
        return False
    try:
        return root_from_inclusion_proof(index, size, leaf, path) == root
    except ValueError:
        return False


def _all_hashes(values: Sequence[bytes]) -> bool:
    return all(isinstance(v, bytes) and len(v) == 32 for v in values)


def subtree_ranges(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect, aligned subtrees [a, b) whose roots, folded from the right, give the root of
    leaves [lo, hi) (lo aligned as every RFC 9162 subtree is): the binary digits of hi - lo."""
    out = []
    while lo < hi:
        size = 1 << ((hi - lo).bit_length() - 1)
        while lo % size:
            size >>= 1
        out.append((lo, lo + size))
        lo += size
    return out


def fold_right(roots: Sequence[bytes]) -> bytes:
    """Root of a subtree from the roots of its perfect parts (as `subtree_ranges` lists them)."""
    if not roots:
        return EMPTY_ROOT
    h = roots[-1]
    for left in reversed(roots[:-1]):
        h = node_hash(left, h)
    return h


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The [lo, hi) leaf ranges whose subtree roots form PROOF(old_size, D[new_size]), RFC 9162
    section 2.1.4.1, in proof order."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    # SUBPROOF(m, D[lo:hi], b) unrolled: the nodes are collected root-side first, then reversed.
    m, lo, hi, complete = old_size, 0, new_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            m, lo, complete = m - k, lo + k, False
    if not complete:
        out.append((lo, hi))
    out.reverse()
    return out


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, leaves) from every leaf hash (small trees, tests); the ledger reads
    stored interior nodes instead (copytrail/ledger/tree.py)."""
    ranges = consistency_ranges(old_size, len(leaves))
    return [root_from_leaf_hashes(leaves[lo:hi]) for lo, hi in ranges]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """True when the tree of `new_size` leaves with `new_root` extends the tree of `old_size`
    leaves with `old_root` (RFC 9162 section 2.1.4.2)."""
    if not 0 < old_size <= new_size:
        return False  # as RFC 9162 and transparency-dev: nothing to prove from the empty tree
    if old_size == new_size:
        return not path and old_root == new_root
    if not path or not _all_hashes([old_root, new_root, *path]):
        return False
    path = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def verify_proof_document(doc: dict) -> bool:
    """Check a proof as printed by `copytrail prove --json` (all hashes hex-encoded).

    The document's `event_hash` is the ledger event's own hash; the leaf is H(0x00 || event_hash).
    """
    leaf = leaf_hash(bytes.fromhex(doc["event_hash"]))
    path = [bytes.fromhex(h) for h in doc["path"]]
    return verify_inclusion(
        int(doc["leaf_index"]), int(doc["tree_size"]), leaf, path, bytes.fromhex(doc["root_hash"])
    )


if __name__ == "__main__":  # stand-alone: python merkle.py proof.json
    import json
    import sys

    with open(sys.argv[1], encoding="utf-8") as f:
        ok = verify_proof_document(json.load(f))
    print("inclusion proof verifies" if ok else "inclusion proof does NOT verify")
    sys.exit(0 if ok else 1)
