"""Batched ingest events: one event per batch, per-copy proofs, tamper naming, and migration from
a library written by the copytrail before batches and packs (schema 11)."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import orjson
import pytest

from copytrail import Library
from copytrail.catalog.schema import SCHEMA_VERSION
from copytrail.engine.local import LocalEngine
from copytrail.ledger import merkle

from .conftest import raw_sql, run_cli

VECTORS = Path(__file__).parent / "vectors"


def _records(path: Path, n: int, start: int = 0) -> Path:
    path.write_bytes(
        b"".join(
            orjson.dumps({"id": i, "text": f"record {i} says something " * 20}) + b"\n"
            for i in range(start, start + n)
        )
        + b"{broken\n"
    )
    return path


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """Batches, proofs and tamper naming on SQLite and on PostgreSQL."""
    return any_db_url


def _lib(tmp_path: Path, db_url: str | None = None) -> Library:
    lib = Library.init(tmp_path / "lib", db=db_url, executor=LocalEngine(1))
    lib.add_source("web", kind="web-crawl")
    return lib


def test_one_event_records_a_batch_and_each_copy_is_provable(tmp_path: Path, db_url: str | None):
    lib = _lib(tmp_path, db_url)
    lib.ingest([str(_records(tmp_path / "r.jsonl", 300))], source="web", dataset="w@1")
    types = [e["type"] for e in lib.events()]
    assert types.count("ingested") == 2  # the batch and the run's summary, not 301 events
    lib.checkpoint()
    for cid in (1, 150, 301):
        doc = lib.prove_copy(cid)
        assert doc["verified"] and doc["in_batch"]["batch_size"] == 301
        b = doc["in_batch"]
        leaf = json.loads(b["leaf"])
        assert leaf["copy_id"] == cid
        # the proof checks with nothing but the RFC 9162 functions
        assert merkle.verify_inclusion(
            b["leaf_index"],
            b["batch_size"],
            merkle.leaf_hash(b["leaf"].encode()),
            [bytes.fromhex(h) for h in b["path"]],
            bytes.fromhex(b["copies_root"]),
        )
    unreadable = next(c for c in lib.copies() if c["status"] == "unreadable")
    assert lib.prove_copy(unreadable["id"])["verified"]
    detail = lib.copy(5)
    assert [e["type"] for e in detail["events"]] == ["ingested"]
    lib.close()


def test_prove_copy_from_the_cli(tmp_path: Path, db_url: str | None):
    lib = _lib(tmp_path, db_url)
    lib.ingest([str(_records(tmp_path / "r.jsonl", 20))], source="web", dataset="w@1")
    lib.checkpoint()
    lib.close()
    p = run_cli("prove", "--copy", "7", "--json", library=tmp_path / "lib")
    doc = json.loads(p.stdout)
    assert doc["verified"] and doc["in_batch"]["leaf_index"] == 6
    p = run_cli("prove", "--copy", "7", library=tmp_path / "lib")
    assert "leaf 6 of 21" in p.stdout and "proof verifies" in p.stdout
    p = run_cli("prove", library=tmp_path / "lib", check=False)
    assert p.returncode == 2


def test_tampering_with_one_row_of_a_batch_names_that_copy(tmp_path: Path, db_url: str | None):
    lib = _lib(tmp_path, db_url)
    lib.ingest([str(_records(tmp_path / "r.jsonl", 50))], source="web", dataset="w@1")
    raw_sql(lib, "UPDATE copies SET path = 'elsewhere' WHERE id = 17")
    problems = lib.verify(quick=True).problems
    assert problems == ["copy 17: table differs from its ingested batch event"]
    raw_sql(lib, "DELETE FROM copies WHERE id = 18")
    assert any("copy 18" in p and "missing" in p for p in lib.verify(quick=True).problems)
    lib.close()


def test_deleting_copies_of_a_batch_keeps_it_verifiable(tmp_path: Path, db_url: str | None):
    lib = _lib(tmp_path, db_url)
    lib.ingest([str(_records(tmp_path / "r.jsonl", 10))], source="web", dataset="w@1")
    bad = next(c for c in lib.copies() if c["status"] == "unreadable")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{bad['id']}\n2\n")
    lib.delete("takedown", copies_file=str(ids))
    report = lib.verify()
    assert report.ok, report.problems
    lib.checkpoint()
    assert lib.prove_copy(bad["id"])["verified"]
    lib.close()


def test_a_library_from_before_batches_and_packs_opens_and_grows(tmp_path: Path):
    with tarfile.open(VECTORS / "library-schema11.tar.gz") as t:
        t.extractall(tmp_path, filter="data")
    root = tmp_path / "oldlib"
    lib = Library.open(root)  # migrates schema 11 -> current
    with sqlite3.connect(root / "ledger.db") as db:
        (v,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert int(v) == SCHEMA_VERSION
    report = lib.verify()
    assert report.ok, report.problems
    # old per-copy events: found through the new subject index, proved as before
    assert [e["type"] for e in lib.copy(1)["events"]] == ["ingested"]
    deleted = lib.copy(3)
    assert deleted["status"] == "deleted"
    assert [e["type"] for e in deleted["events"]] == ["ingested", "deleted"]
    assert lib.prove_copy(1)["in_batch"] is None and lib.prove_copy(1)["verified"]
    # new copies: packed blobs, one batch event
    lib.add_source("more", kind="web-crawl")
    lib.ingest([str(_records(tmp_path / "new.jsonl", 40, 100))], source="more", dataset="new@1")
    lib.checkpoint()
    report = lib.verify()
    assert report.ok, report.problems
    newest = max(c["id"] for c in lib.copies())
    assert lib.prove_copy(newest)["in_batch"] is not None
    assert any((root / "blobs" / "packs").glob("*.pack"))
    old_text = lib.store.get(lib.copy(1)["text_sha256"])
    assert old_text  # loose blobs of the old library still read
    lib.close()
