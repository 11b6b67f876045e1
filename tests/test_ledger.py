"""The event chain, checkpoints and proofs through the Library, and what verify catches."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from copytrail import Library
from copytrail.catalog.schema import SCHEMA_VERSION
from copytrail.errors import Conflict, InvalidInput, NotFound
from copytrail.ledger import merkle
from copytrail.ledger.db import write_transaction
from copytrail.ledger.events import EventWriter

from .conftest import DATABASES, fresh_db_url, raw_sql


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """Every ledger test runs on SQLite and on PostgreSQL."""
    return any_db_url


def _add_docs(lib: Library, tmp: Path, n: int, dataset: str = "d@1") -> None:
    d = tmp / f"docs-{dataset}-{n}"
    d.mkdir(exist_ok=True)
    for i in range(n):
        (d / f"doc{i}.txt").write_text(f"document number {i} of {dataset}\n" * 20)
    lib.ingest([str(d)], source="pg", dataset=dataset)


def test_events_chain_and_verify_clean(lib: Library, tmp_path: Path):
    _add_docs(lib, tmp_path, 5)
    evs = list(lib.events())
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert evs[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(evs, evs[1:], strict=False))
    assert {e["type"] for e in evs} == {"acquired", "ingested"}
    r = lib.verify()
    assert r.ok, r.problems


@pytest.mark.parametrize(
    "sql, expect",
    [
        # event 3 is the batch that records the four copies; 4 is the run's summary
        (
            """UPDATE events SET payload = replace(payload, '"copies":4', '"copies":5')
               WHERE seq = 3""",
            "event 3",
        ),
        ("UPDATE events SET payload = replace(payload, 'd@1', 'x@1') WHERE seq = 4", "event 4"),
        ("UPDATE events SET actor = 'mallory' WHERE seq = 2", "event 2"),
        ("DELETE FROM events WHERE seq = 3", "events missing"),
        (  # the first two hex digits changed, whatever they were
            "UPDATE copies SET sha256 = CASE WHEN substr(sha256, 1, 2) = 'ab' THEN 'cd'"
            " ELSE 'ab' END || substr(sha256, 3) WHERE id = 2",
            "copy 2",
        ),
        ("UPDATE copies SET status = 'ok', path = 'elsewhere.txt' WHERE id = 1", "copy 1"),
        ("DELETE FROM copies WHERE id = 3", "copy 3"),
        ("UPDATE sources SET kind = 'licensed' WHERE id = 1", "source 1"),
        (
            "UPDATE checkpoints SET root_hash = CASE WHEN substr(root_hash, 1, 2) = '00' THEN 'ff'"
            " ELSE '00' END || substr(root_hash, 3)",
            "checkpoint 1",
        ),
    ],
)
def test_verify_names_each_kind_of_tampering(lib: Library, tmp_path: Path, sql: str, expect: str):
    _add_docs(lib, tmp_path, 4)
    lib.checkpoint()
    assert lib.verify().ok
    raw_sql(lib, sql)
    r = lib.verify()
    assert not r.ok
    assert any(expect in p for p in r.problems), r.problems


def test_verify_finds_missing_and_corrupt_blobs(lib: Library, tmp_path: Path):
    _add_docs(lib, tmp_path, 3)
    copies = list(lib.copies())
    lib.store.remove(copies[0]["sha256"])
    (where,) = lib.store.locate(copies[1]["sha256"])  # a loose file or a block of a pack
    with open(where["file"], "r+b") as f:
        f.seek(where["offset"] + 10)
        f.write(b"\x00\x01\x02")
    r = lib.verify()
    assert not r.ok
    text = "\n".join(r.problems)
    assert copies[0]["sha256"] in text and "missing" in text
    assert copies[1]["sha256"] in text
    quick = lib.verify(quick=True)
    assert any("missing" in p for p in quick.problems)


def test_verify_notes_orphans_and_temporaries_without_failing(lib: Library, tmp_path: Path):
    _add_docs(lib, tmp_path, 2)
    lib.store.put(b"written by an ingest killed before its commit")
    tmp = Path(lib.store.root) / "aa" / "bb" / ".tmp-deadbeef"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half")
    r = lib.verify()
    assert r.ok, r.problems
    assert r.counts["orphan_blobs"] == 1 and r.counts["temporary_files"] == 1


def test_checkpoint_is_incremental_and_matches_full_recompute(lib: Library, tmp_path: Path):
    _add_docs(lib, tmp_path, 3)
    c1 = lib.checkpoint()
    again = lib.checkpoint()
    assert again["new"] is False and again["id"] == c1["id"]
    _add_docs(lib, tmp_path, 4, dataset="d@2")
    c2 = lib.checkpoint()
    leaves = [merkle.leaf_hash(bytes.fromhex(e["hash"])) for e in lib.events()]
    assert c2["tree_size"] == len(leaves)
    assert c2["root_hash"] == merkle.root_from_leaf_hashes(leaves).hex()
    assert lib.verify().ok


def test_prove_every_event_against_latest_and_older_checkpoints(lib: Library, tmp_path: Path):
    _add_docs(lib, tmp_path, 6)
    first = lib.checkpoint()
    _add_docs(lib, tmp_path, 3, dataset="d@2")
    second = lib.checkpoint()
    for seq in range(1, second["tree_size"] + 1):
        p = lib.prove(seq)
        assert p["verified"] and merkle.verify_proof_document(p)
        assert p["tree_size"] == second["tree_size"]
    old = lib.prove(2, checkpoint_id=first["id"])
    assert old["tree_size"] == first["tree_size"] and merkle.verify_proof_document(old)
    assert not merkle.verify_proof_document({**old, "root_hash": second["root_hash"]})


def test_prove_errors_say_what_to_do(lib: Library, tmp_path: Path):
    _add_docs(lib, tmp_path, 1)
    with pytest.raises(InvalidInput, match="copytrail checkpoint"):
        lib.prove(1)
    lib.checkpoint()
    with pytest.raises(NotFound, match="events run from 1"):
        lib.prove(999)


def test_sources_and_datasets(lib: Library, tmp_path: Path):
    with pytest.raises(Conflict, match="exists already"):
        lib.add_source("pg", kind="licensed")
    with pytest.raises(InvalidInput, match="choose one of"):
        lib.add_source("x", kind="stolen")
    with pytest.raises(NotFound, match="source add"):
        lib.ensure_dataset("d@1", "nope")
    lib.add_source("other", kind="shadow-library")
    d = lib.ensure_dataset("books@2021-06", "other")
    assert d["label"] == "books@2021-06" and d["created_now"]
    assert not lib.ensure_dataset("books@2021-06", "other")["created_now"]
    with pytest.raises(Conflict, match="belongs to source"):
        lib.ensure_dataset("books@2021-06", "pg")


def test_schema_version_recorded_and_reopen(tmp_path: Path, db_url: str | None):
    lib = Library.init(tmp_path / "l", db=db_url)
    lib.close()
    again = Library.init(tmp_path / "l")  # init on an existing library opens it
    got = raw_sql(again, "select value from meta where key='schema_version'")
    assert got == [(str(SCHEMA_VERSION),)]
    raw_sql(again, "update meta set value='99' where key='schema_version'")
    again.close()
    with pytest.raises(Exception, match="newer"):
        Library.open(tmp_path / "l")


EVENT = st.tuples(
    st.sampled_from(["matched", "included", "trained", "held"]),
    st.dictionaries(
        st.sampled_from(["copy_id", "dataset_id", "work"]), st.integers(0, 10**6), max_size=3
    ),
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(-(2**53), 2**53),
            st.text(max_size=30),
            st.booleans(),
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    ),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(EVENT, min_size=1, max_size=6), min_size=1, max_size=5),
    tamper=st.data(),
)
@pytest.mark.parametrize("database", DATABASES)
def test_chain_property_any_events_verify_and_any_edit_is_caught(
    tmp_path_factory, request, database, batches, tamper
):
    url = fresh_db_url(request, database)  # a new ledger for every example
    lib = Library.init(tmp_path_factory.mktemp("prop") / "lib", db=url)
    for batch in batches:
        with write_transaction(lib.engine) as conn:
            ev = EventWriter(conn, "prop@test")
            for type_, subjects, payload in batch:
                ev.append(type_, subjects, payload)
            ev.flush()
        lib.checkpoint()
    # Events here are not tied to copies, so only the chain and checkpoints are checked.
    report = lib.verify()
    assert report.ok, report.problems
    n = sum(len(b) for b in batches)
    seq = tamper.draw(st.integers(1, n))
    column = tamper.draw(st.sampled_from(["type", "time", "actor", "payload", "subjects"]))
    ((old,),) = raw_sql(lib, f"select {column} from events where seq=:seq", {"seq": seq})
    new = (
        old + " "
        if column not in ("payload", "subjects")
        else old[:-1] + ',"x":1}'
        if old != "{}"
        else '{"x":1}'
    )
    raw_sql(lib, f"update events set {column}=:new where seq=:seq", {"new": new, "seq": seq})
    report = lib.verify()
    assert not report.ok
    assert any(f"event {seq}:" in p for p in report.problems), report.problems
    lib.close()


def test_older_schema_is_migrated_on_open(tmp_path: Path, db_url: str | None):
    lib = Library.init(tmp_path / "l", db=db_url)
    raw_sql(lib, "ALTER TABLE works DROP COLUMN text_source_sha256")  # make it look like schema 2
    raw_sql(lib, "DROP TABLE api_keys")
    raw_sql(lib, "UPDATE meta SET value='2' WHERE key='schema_version'")
    lib.close()
    lib = Library.open(tmp_path / "l")
    found = inspect(lib.engine)
    cols = {c["name"] for c in found.get_columns("works")}
    ((version,),) = raw_sql(lib, "select value from meta where key='schema_version'")
    assert "text_source_sha256" in cols and version == str(SCHEMA_VERSION)
    assert "api_keys" in found.get_table_names()
    assert lib.verify().ok
    lib.close()


def test_planner_statistics_follow_a_fast_growing_table(lib: Library):
    from copytrail.catalog.schema import copies
    from copytrail.ledger.db import Statistics

    stats = Statistics(lib.engine, [copies], first=10)
    stats.grew(9)
    assert stats.next_at == 10  # not yet
    stats.grew(1)
    if lib.engine.dialect.name == "postgresql":
        # pg_class is written by ANALYZE itself (-1: never analyzed), unlike the statistics views
        ((analyzed,),) = raw_sql(lib, "SELECT reltuples >= 0 FROM pg_class WHERE relname='copies'")
        assert analyzed and stats.next_at == 20  # the next one when the table has doubled
    else:
        assert not stats.active and stats.next_at == 10  # SQLite needs none


def test_verify_reads_the_store_out_of_core_and_names_what_is_wrong(lib: Library, tmp_path: Path):
    """verify joins the catalog's digests with the store's index entries and re-hashes blobs
    in pack order: damage found by one verify is found by the next in the same process (no
    cached block hides it), an unreadable pack index makes its blobs missing and says so, and
    a digest that is not one is a problem, not a crash."""
    _add_docs(lib, tmp_path, 3)
    assert lib.verify().ok
    copies = list(lib.copies())
    (where,) = lib.store.locate(copies[2]["sha256"])
    with open(where["file"], "r+b") as f:
        f.seek(where["offset"] + 10)
        f.write(b"\x00\x01\x02")
    r = lib.verify()
    assert not r.ok
    assert any(copies[2]["sha256"] in p and f"copy {copies[2]['id']}" in p for p in r.problems)
    idx = next((Path(lib.store.root) / "packs").glob("*.idx"))
    idx.write_bytes(b"not an index")
    for midx in (Path(lib.store.root) / "packs").glob("*.midx"):
        midx.unlink()
    r = lib.verify(quick=True)
    assert any(f"pack {idx.stem}: its index cannot be read" in p for p in r.problems)
    assert any("missing" in p for p in r.problems)
    raw_sql(lib, "UPDATE copies SET text_sha256 = 'not-a-digest' WHERE id = 1")
    r = lib.verify(quick=True)
    assert any("'not-a-digest' is not a SHA-256 digest" in p for p in r.problems)


def test_verify_counts_every_lost_blob_and_lists_a_few(
    lib: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A store that lost its blobs gives an exact problem count without a message per blob in
    memory: the first few are listed with the copies naming them."""
    from copytrail import checker

    _add_docs(lib, tmp_path, 5)
    digests = {d for c in lib.copies() for d in (c["sha256"], c["text_sha256"]) if d}
    lib.store.remove_many(digests)
    monkeypatch.setattr(checker, "MAX_LISTED", 2)
    for quick in (True, False):
        r = lib.verify(quick=quick)
        lost = [p for p in r.problems if "missing" in p]
        assert r.problem_count == len(digests) and len(lost) == 2
        assert all("(copy " in p for p in lost)


def test_a_copy_is_found_by_any_prefix_of_either_digest(lib: Library, tmp_path: Path):
    """The prefix lookup is a range on the digest indexes; on PostgreSQL it runs under the
    database's collation, where it must find the same copies."""
    _add_docs(lib, tmp_path, 4)
    for copy in lib.copies():
        for digest in (copy["sha256"], copy["text_sha256"]):
            for n in (6, 11, 64):
                assert lib.copy(digest[:n])["id"] == copy["id"]
