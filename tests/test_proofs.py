"""Consistency and inclusion proofs against the published RFC 6962 / 9162 test vectors, the same
proofs from the ledger's stored interior nodes, and C2SP signed notes against the spec's example.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event as sa_event

from copytrail import Library
from copytrail.ledger import merkle, note, tree
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962_probes.json").read_text())
# The eight leaf inputs of the RFC 6962 reference tree (transparency-dev/merkle testonly).
LEAVES = [
    merkle.leaf_hash(bytes.fromhex(h))
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip


def _b(x: str | None) -> bytes:
    return base64.b64decode(x) if x else b""


@pytest.mark.parametrize("probe", VECTORS["consistency"], ids=lambda p: p["file"])
def test_consistency_vectors(probe):
    ok = merkle.verify_consistency(
        probe["size1"],
        probe["size2"],
        _b(probe["root1"]),
        _b(probe["root2"]),
        [_b(x) for x in probe["proof"] or []],
    )
    assert ok is not probe["wantErr"], probe["desc"]


@pytest.mark.parametrize("probe", VECTORS["inclusion"], ids=lambda p: p["file"])
def test_inclusion_vectors(probe):
    ok = merkle.verify_inclusion(
        probe["leafIdx"],
        probe["treeSize"],
        _b(probe["leafHash"]),
        [_b(x) for x in probe["proof"] or []],
        _b(probe["root"]),
    )
    assert ok is not probe["wantErr"], probe["desc"]


def test_generated_consistency_proofs_equal_the_published_ones():
    happy = [p for p in VECTORS["consistency"] if p["desc"] == "happy path" and p["size2"] <= 8]
    assert len(happy) >= 4
    for p in happy:
        got = merkle.consistency_path(LEAVES[: p["size2"]], p["size1"])
        assert got == [_b(x) for x in p["proof"] or []], p["file"]


@given(st.integers(1, 300), st.data())
def test_consistency_proofs_verify_and_reject_tampering(n, data):
    m = data.draw(st.integers(1, n))
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    old, new = merkle.root_from_leaf_hashes(leaves[:m]), merkle.root_from_leaf_hashes(leaves)
    path = merkle.consistency_path(leaves, m)
    assert merkle.verify_consistency(m, n, old, new, path)
    if path:
        i = data.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        assert not merkle.verify_consistency(m, n, old, new, bad)
    # A tree whose first m leaves differ is not an extension.
    forged = [merkle.leaf_hash(b"forged"), *leaves[1:]]
    if m < n:
        assert not merkle.verify_consistency(
            m, n, old, merkle.root_from_leaf_hashes(forged), merkle.consistency_path(forged, m)
        )


def _events(lib: Library, n: int) -> None:
    with write_transaction(lib.engine) as conn:
        ev = EventWriter(conn, "test")
        for i in range(n):
            ev.append("declared", {"n": i}, {"i": i})
        ev.flush()


def test_stored_nodes_give_the_same_proofs_as_the_leaves(tmp_path):
    lib = Library.init(tmp_path / "lib")
    _events(lib, 150)
    lib.checkpoint()
    _events(lib, 61)
    lib.checkpoint()
    with read_connection(lib.engine) as conn:
        n = tree.event_count(conn)
        leaves = list(tree.iter_leaf_hashes(conn))
        assert len(leaves) == n == tree.stored_size(conn)
        for m in (1, 2, 15, 16, 17, 100, 150, n - 1, n):
            assert tree.consistency_path(conn, m, n) == merkle.consistency_path(leaves, m)
            assert tree.root_at(conn, m) == merkle.root_from_leaf_hashes(leaves[:m])
        for i in (0, 7, 16, 150, n - 1):
            assert tree.inclusion_path(conn, i, n) == merkle.inclusion_path(leaves, i)
    assert lib.consistency(150)["verified"]
    assert lib.verify().ok


def test_proofs_read_log_n_rows_not_every_leaf(tmp_path):
    """A proof costs the same few queries whether the log holds 200 or 20,000 events."""
    lib = Library.init(tmp_path / "lib")
    counts = []
    for total in (200, 20_000):
        _events(lib, total - lib.stats()["events"])
        lib.checkpoint()
        statements: list[str] = []

        def count(conn, cursor, statement, *args, seen=statements):  # noqa: ARG001
            seen.append(statement)

        sa_event.listen(lib.engine, "before_cursor_execute", count)
        lib.prove(77)
        lib.consistency(133)
        sa_event.remove(lib.engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[1] <= counts[0] + 8, counts  # grows with log n, not n


# ---- C2SP signed notes ---------------------------------------------------------------------
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3m"
    "FXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_the_signed_note_spec_example_verifies():
    v = note.parse_vkey(SPEC_VKEY)
    n = note.parse_note(SPEC_NOTE)
    assert n.text == b"This is an example message.\n"
    assert n.signed_by([v]) == {SPEC_VKEY: 0}
    forged = note.parse_note(SPEC_NOTE.replace("example message", "example massage"))
    with pytest.raises(note.NoteError):
        forged.signed_by([v])


def test_checkpoint_sign_cosign_round_trip():
    log = note.Signer.generate("example.org/log")
    wit = note.Signer.generate("w.example/1", note.COSIGNATURE_V1)
    text = note.Checkpoint("example.org/log", 42, bytes(range(32))).text()
    signed = note.parse_note(text.decode() + "\n" + log.sign_line(text))
    cosigned = note.add_signatures(signed, wit.sign_line(text, 1_700_000_000))
    again = note.parse_note(cosigned.render())
    assert again.signed_by([log.verifier]) == {log.verifier.vkey: 0}
    assert again.signed_by([wit.verifier]) == {wit.verifier.vkey: 1_700_000_000}
    assert note.parse_checkpoint(again.text).size == 42
    assert note.Signer.from_skey(log.skey()).verifier == log.verifier
    # The cosignature is over the checkpoint text, so it cannot be moved to another head.
    other = note.Checkpoint("example.org/log", 43, bytes(range(32))).text()
    moved = note.parse_note(other.decode() + "\n" + wit.sign_line(text, 1_700_000_000))
    with pytest.raises(note.NoteError):
        moved.signed_by([wit.verifier])


@given(st.binary(max_size=400))
def test_note_parser_only_ever_raises_note_error(data):
    try:
        n = note.parse_note(data)
        note.parse_checkpoint(n.text)
    except note.NoteError:
        pass
