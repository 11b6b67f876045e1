"""`verify` checks every custody table row by row against the events: an edit made directly in
the database to a corpus's fates, a run, a hold, a works list, an audit's matches or an API key
is reported, naming the table."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from copytrail import Library

from .conftest import EXAMPLES, REPO


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("custody")
    lib = Library.init(root / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    lib.import_works(REPO / "examples" / "works.csv", "class")
    lib.audit("class", root / "audit")
    lib.train_tokenizer(["pg@1"], 600, root / "lib" / "tok.json")
    policy = root / "lib" / "policy.toml"
    policy.write_text('datasets = ["pg@1"]\ntokenizer = "tok.json"\nshard_tokens = 60000\n')
    lib.build("c1", policy)
    lib.record_run("model-a", "c1", notes="first run")
    lib.add_hold("Doe v. Acme", "dataset", "pg@1")
    lib.add_key("reader", "checker")
    assert lib.verify().ok, lib.verify().problems
    with lib.engine.connect() as conn:
        assert conn.execute(text("select count(*) from matches")).scalar() > 0
    lib.close()
    return root / "lib"


TAMPERS = {
    "corpus fate flipped": (
        "UPDATE corpus_docs SET fate = CASE fate WHEN 'included' THEN 'excluded' "
        "ELSE 'included' END WHERE copy_id = (SELECT min(copy_id) FROM corpus_docs)",
        "corpus 1: its documents' fates differ",
    ),
    "corpus fate removed": (
        "DELETE FROM corpus_docs WHERE copy_id = (SELECT max(copy_id) FROM corpus_docs)",
        "corpus 1: its documents' fates differ",
    ),
    "corpus token count": ("UPDATE corpora SET tokens = tokens + 1", "corpus 1: table differs"),
    "run model": (
        "UPDATE runs SET model = 'model-b'",
        "run 1: table differs from its events in model",
    ),
    "hold released in the table only": (
        "UPDATE holds SET released = '2026-01-01T00:00:00Z', released_by = 'x'",
        "hold 1: table differs",
    ),
    "work title": (
        "UPDATE works SET title = 'Another Book' WHERE id = (SELECT min(id) FROM works)",
        "works list 'class': its works differ",
    ),
    "audit parameters": ("UPDATE audits SET params = '{}'", "audit 1: table differs"),
    "match coverage": (
        "UPDATE matches SET coverage = 0.01 WHERE rowid = (SELECT min(rowid) FROM matches)",
        "audit 1: its matches differ",
    ),
    "API key swapped": (
        f"UPDATE api_keys SET key_sha256 = '{hashlib.sha256(b'attacker').hexdigest()}'",
        "API key 1 (reader): table differs from its events in key hash",
    ),
    "API key role raised": (
        "UPDATE api_keys SET role = 'admin'",
        "table differs from its events in role",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_direct_table_edits_are_reported(full: Path, tmp_path: Path, case: str):
    sql, expected = TAMPERS[case]
    copy = tmp_path / "lib"
    shutil.copytree(full, copy)
    lib = Library.open(copy)
    with lib.engine.begin() as conn:
        conn.execute(text(sql))
    report = lib.verify(quick=True)
    lib.close()
    assert not report.ok, case
    assert any(expected in p for p in report.problems), report.problems
