"""RFC 9162 hashing against the published Certificate Transparency test vectors, and properties."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from copytrail.ledger import merkle
from copytrail.ledger.tree import inclusion_ranges

# RFC 6962 / 9162 reference leaves and roots (certificate-transparency test data).
LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
LEAF_HASHES = [merkle.leaf_hash(bytes.fromhex(x)) for x in LEAVES]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the RFC's recursive definition (leaves already leaf-hashed)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return merkle.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def test_empty_tree_root():
    assert merkle.root_from_leaf_hashes([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_roots_match_published_vectors():
    for n in range(1, 9):
        assert merkle.root_from_leaf_hashes(LEAF_HASHES[:n]).hex() == ROOTS[n - 1], n


def test_inclusion_paths_match_published_vectors():
    for index, size, path in INCLUSION:
        got = merkle.inclusion_path(LEAF_HASHES[:size], index)
        assert [p.hex() for p in got] == path
        assert merkle.verify_inclusion(
            index, size, LEAF_HASHES[index], got, bytes.fromhex(ROOTS[size - 1])
        )


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@given(st.integers(min_value=1, max_value=300), st.data())
def test_every_proof_verifies_and_tampering_fails(n, data):
    leaves = _leaves(n)
    root = merkle.root_from_leaf_hashes(leaves)
    assert root == reference_root(leaves)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    path = merkle.inclusion_path(leaves, i)
    assert merkle.verify_inclusion(i, n, leaves[i], path, root)
    # A different leaf, index, size or path element must not verify.
    assert not merkle.verify_inclusion(i, n, merkle.leaf_hash(b"other"), path, root)
    if n > 1:
        j = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda x: x != i))
        assert not merkle.verify_inclusion(j, n, leaves[i], path, root)
        k = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bad = list(path)
        bad[k] = bytes(32)
        assert not merkle.verify_inclusion(i, n, leaves[i], bad, root)
    # (A wrong tree size can give the same path shape; the size is bound by the tree head.)
    assert not merkle.verify_inclusion(i, n, leaves[i], [*path, bytes(32)], root)


@given(st.integers(min_value=1, max_value=200), st.data())
def test_inclusion_ranges_cover_everything_but_the_leaf(n, data):
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    covered = sorted(x for lo, hi in inclusion_ranges(i, n) for x in range(lo, hi))
    assert covered == [x for x in range(n) if x != i]
    leaves = _leaves(n)
    expected = merkle.inclusion_path(leaves, i)
    assert [
        merkle.root_from_leaf_hashes(leaves[lo:hi]) for lo, hi in inclusion_ranges(i, n)
    ] == expected


@given(st.lists(st.binary(max_size=8), max_size=100))
def test_compact_range_equals_recursive_definition_at_every_size(items):
    cr = merkle.CompactRange()
    leaves = []
    for it in items:
        leaves.append(merkle.leaf_hash(it))
        cr.append_leaf_hash(leaves[-1])
        assert cr.root() == reference_root(leaves)


def test_proof_document_round_trip():
    ev_hash = hashlib.sha256(b"event").hexdigest()
    leaves = [merkle.leaf_hash(bytes.fromhex(ev_hash))] + _leaves(6)
    doc = {
        "event_hash": ev_hash,
        "leaf_index": 0,
        "tree_size": 7,
        "path": [p.hex() for p in merkle.inclusion_path(leaves, 0)],
        "root_hash": merkle.root_from_leaf_hashes(leaves).hex(),
    }
    assert merkle.verify_proof_document(doc)
    assert not merkle.verify_proof_document({**doc, "event_hash": "00" * 32})
