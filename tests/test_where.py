"""`where` answered from recorded audits: the same copies and evidence as a live match, with
only the copies no eligible audit saw matched now (shipped samples; no shared corpus needed)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest

from copytrail import Library
from copytrail.audit import match as match_mod
from copytrail.catalog.schema import SCHEMA_VERSION
from copytrail.fingerprint.normalize import tokens

from .conftest import EXAMPLES, run_cli

VECTORS = Path(__file__).parent / "vectors"
ALICE = EXAMPLES / "11" / "11-0.txt"
WORKS = EXAMPLES.parent / "works.csv"


def _excerpt_file(path: Path, start: int, n: int) -> Path:
    """n words of Alice inside unrelated filler: a partial copy."""
    text = ALICE.read_text(encoding="utf-8")
    _w, starts, ends = tokens(text)
    part = text[starts[start] : ends[start + n - 1]]
    filler = "An unrelated paragraph about harbours, tides and ledgers. " * 40
    path.write_text(f"{filler}\n\n{part}\n\n{filler}", encoding="utf-8")
    return path


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """`where` from recorded audits on SQLite and on PostgreSQL (their planners differ)."""
    return any_db_url


@pytest.fixture
def audited(lib: Library, tmp_path: Path) -> Library:
    lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="alice@1")
    lib.ingest([str(EXAMPLES / "5200")], source="pg", dataset="kafka@1")
    lib.import_works(WORKS, "demo")
    return lib


def _no_live_matching(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self):  # noqa: ANN001, ANN202
        raise AssertionError("matched live although a recorded audit covers every copy")

    monkeypatch.setattr(match_mod.Auditor, "run", refuse)


def test_where_answers_from_the_audit_exactly_as_a_live_match(
    audited: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    s = audited.audit("demo", tmp_path / "out")
    for work in ("PG11", "PG5200", "KAFKA-TRIAL"):
        live = audited.where(work, live=True)
        assert live["basis"]["live"] is True and live["basis"]["audits"] == []
        with monkeypatch.context() as m:
            _no_live_matching(m)
            got = audited.where(work)
        assert got["basis"] == {"live": False, "audits": [s["audit_id"]], "copies_matched_now": 0}
        assert got["copies"] == live["copies"]
    paths = {c["path"] for c in audited.where("PG11")["copies"]}
    assert {"11/11-0.txt", "11/old/alice30.txt"} <= paths


def test_copies_recorded_after_the_audit_are_matched_now_and_deleted_ones_dropped(
    audited: Library, tmp_path: Path
):
    audited.audit("demo", tmp_path / "out")
    new = tmp_path / "new"
    new.mkdir()
    _excerpt_file(new / "quoted.txt", 2000, 400)
    audited.ingest([str(new)], source="pg", dataset="alice@1")  # same dataset, later copy
    audited.ingest([str(new)], source="pg", dataset="web@1")  # a dataset no audit covered
    audited.delete("takedown", dataset="kafka@1")

    got = audited.where("PG11")
    live = audited.where("PG11", live=True)
    assert got["copies"] == live["copies"]
    assert got["basis"]["live"] is False and got["basis"]["copies_matched_now"] == 2
    quoted = [c for c in got["copies"] if c["path"].endswith("quoted.txt")]
    assert {c["dataset"] for c in quoted} == {"alice@1", "web@1"}
    assert all(c["method"] == "partial" and c["longest_span_words"] >= 390 for c in quoted)

    kafka = audited.where("PG5200")
    assert kafka["copies"] == [] == audited.where("PG5200", live=True)["copies"]
    assert kafka["basis"]["live"] is False


def test_an_audit_is_not_used_once_the_list_changes_or_its_settings_differ(
    audited: Library, tmp_path: Path
):
    audited.audit("demo", tmp_path / "o1", min_words=100)
    assert audited.where("PG11")["basis"]["live"] is True  # asked for 200 words
    assert audited.where("PG11", min_words=100)["basis"]["live"] is False
    audited.audit("demo", tmp_path / "o2", boilerplate_df=7)
    assert audited.where("PG11")["basis"]["live"] is True  # a threshold given by hand
    s = audited.audit("demo", tmp_path / "o3")
    assert audited.where("PG11")["basis"]["audits"] == [s["audit_id"]]
    changed = tmp_path / "works.csv"
    text = (WORKS).read_text(encoding="utf-8")
    changed.write_text(text.replace("The Trial", "The Trial (Der Process)"), encoding="utf-8")
    shutil.copytree(EXAMPLES, tmp_path / "gutenberg")
    audited.import_works(changed, "demo")
    assert audited.where("PG11")["basis"]["live"] is True


def test_an_audit_of_some_datasets_answers_for_those_only(audited: Library, tmp_path: Path):
    s = audited.audit("demo", tmp_path / "out", datasets=["alice@1"])
    got = audited.where("PG5200")
    assert got["basis"]["audits"] == [s["audit_id"]]
    assert got["basis"]["copies_matched_now"] == 3  # kafka@1, which the audit left out
    assert got["copies"] == audited.where("PG5200", live=True)["copies"]
    assert {c["dataset"] for c in got["copies"]} == {"kafka@1"}


def test_where_cli_says_how_it_answered(audited: Library, tmp_path: Path):
    root = audited.ctx.root
    audited.audit("demo", tmp_path / "out")
    audited.close()
    p = run_cli("where", "PG11", library=root)
    assert "from audit 1, 0 newer copies matched now" in p.stdout
    p = run_cli("where", "PG11", "--live", library=root)
    assert "matched now" in p.stdout and "from audit" not in p.stdout
    r = json.loads(run_cli("where", "PG11", "--json", library=root).stdout)
    assert r["basis"]["audits"] == [1] and len(r["copies"]) >= 2


def test_a_schema_12_library_migrates_and_its_old_audit_is_matched_live(tmp_path: Path):
    """Made by copytrail at schema 12 (`tests/vectors/make_schema12.py`): its audit recorded no
    copy mark nor methods, so `where` matches live; a new audit then answers."""
    with tarfile.open(VECTORS / "library-schema12.tar.gz") as t:
        t.extractall(tmp_path, filter="data")
    root = tmp_path / "lib12"
    lib = Library.open(root)
    with sqlite3.connect(root / "ledger.db") as db:
        (v,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        cols = {r[1] for r in db.execute("PRAGMA table_info(matches)")}
    assert int(v) == SCHEMA_VERSION and "methods" in cols
    report = lib.verify()
    assert report.ok, report.problems
    old = lib.where("W1")
    assert old["basis"]["live"] is True and old["copies"]
    assert lib.work("W1")["matches"]  # the old audit's rows still read
    s = lib.audit("w", tmp_path / "out")
    new = lib.where("W1")
    assert new["basis"]["audits"] == [s["audit_id"]] and new["copies"] == old["copies"]
    assert lib.verify().ok
    lib.close()
