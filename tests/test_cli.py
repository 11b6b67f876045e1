"""The `copytrail` command end to end, in child processes, as a user runs it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from copytrail import Library

from .conftest import EXAMPLES, run_cli


@pytest.fixture
def libdir(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    run_cli("init", library=d)
    run_cli(
        "source",
        "add",
        "pg",
        "--kind",
        "public-domain",
        "--license",
        "PD-US",
        "--provided-by",
        "Project Gutenberg",
        "--acquired",
        "2024-01-15",
        library=d,
    )
    return d


def test_full_tour(libdir: Path, tmp_path: Path):
    p = run_cli(
        "ingest",
        str(EXAMPLES),
        "--source",
        "pg",
        "--dataset",
        "pg@2024",
        "--json",
        "--workers",
        "2",
        library=libdir,
    )
    s = json.loads(p.stdout)
    assert {"files", "copies_added", "copies_existing", "unreadable", "bytes"} <= set(s)
    assert s["copies_added"] == s["files"] == 7 and s["unreadable"] == 0
    assert "ingest" in p.stderr  # the progress bar goes to stderr

    human = run_cli(
        "ingest", str(EXAMPLES), "--source", "pg", "--dataset", "pg@2024", library=libdir
    )
    assert "0 copies added" in human.stdout and "7 already present" in human.stdout

    sources = json.loads(run_cli("ls", "sources", "--json", library=libdir).stdout)
    assert sources[0]["name"] == "pg" and sources[0]["acquired"] == "2024-01-15"
    datasets = json.loads(run_cli("ls", "datasets", "--json", library=libdir).stdout)
    assert datasets[0]["label"] == "pg@2024" and datasets[0]["copies"] == 7
    copies = json.loads(
        run_cli("ls", "copies", "--dataset", "pg@2024", "--json", library=libdir).stdout
    )
    assert len(copies) == 7
    table = run_cli("ls", "copies", library=libdir).stdout
    assert "gutenberg/11/11-0.txt" in table

    one = next(c for c in copies if c["path"].endswith("5200.txt"))
    shown = json.loads(run_cli("show", one["sha256"][:12], "--json", library=libdir).stdout)
    assert shown["id"] == one["id"] and shown["events"][0]["type"] == "ingested"
    text = run_cli("show", str(one["id"]), "--text", "--reason", "test", library=libdir).stdout
    assert "Gregor Samsa" in text

    stats = json.loads(run_cli("stats", "--json", library=libdir).stdout)
    assert stats["copies"] == 7 and stats["by_source_kind"][0]["source_kind"] == "public-domain"
    assert "by dataset" in run_cli("stats", library=libdir).stdout

    cp = json.loads(run_cli("checkpoint", "--json", library=libdir).stdout)
    proof_file = tmp_path / "proof.json"
    proof = json.loads(
        run_cli("prove", "4", "--out", str(proof_file), "--json", library=libdir).stdout
    )
    assert proof["verified"] and proof["root_hash"] == cp["root_hash"]
    # The saved proof verifies with no library at all, and with merkle.py alone.
    assert run_cli("verify", "--proof", str(proof_file)).returncode == 0
    import subprocess
    import sys

    merkle_py = Path(__file__).parent.parent / "copytrail" / "ledger" / "merkle.py"
    assert subprocess.run([sys.executable, str(merkle_py), str(proof_file)]).returncode == 0
    bad = {**proof, "event_hash": "0" * 64}
    proof_file.write_text(json.dumps(bad))
    assert run_cli("verify", "--proof", str(proof_file), check=False).returncode == 1

    v = run_cli("verify", "--json", library=libdir)
    assert json.loads(v.stdout)["ok"] is True
    log = json.loads(run_cli("log", "--json", "--limit", "3", library=libdir).stdout)
    assert [e["seq"] for e in log] == [1, 2, 3]


def test_verify_exit_1_names_the_problem(libdir: Path):
    run_cli("ingest", str(EXAMPLES / "11"), "--source", "pg", "--dataset", "d", library=libdir)
    run_cli("checkpoint", library=libdir)
    with sqlite3.connect(libdir / "ledger.db") as db:
        db.execute(  # the summary event of the run names the files it read
            """UPDATE events SET payload = replace(payload, '"files":', '"files":1')
               WHERE type = 'ingested'"""
        )
    p = run_cli("verify", library=libdir, check=False)
    assert p.returncode == 1 and "edited" in p.stdout and "problems found" in p.stdout


def test_verify_exit_1_on_missing_blob(libdir: Path):
    run_cli("ingest", str(EXAMPLES / "5200"), "--source", "pg", "--dataset", "d", library=libdir)
    lib = Library.open(libdir)
    sha = next(iter(lib.copies()))["sha256"]
    assert lib.store.remove(sha)
    lib.close()
    p = run_cli("verify", "--json", library=libdir, check=False)
    r = json.loads(p.stdout)
    assert p.returncode == 1 and any(sha in x and "missing" in x for x in r["problems"])


def test_errors_say_what_to_do_next(libdir: Path, tmp_path: Path):
    p = run_cli(
        "ingest", str(EXAMPLES), "--source", "nope", "--dataset", "d", library=libdir, check=False
    )
    assert p.returncode == 2 and "copytrail source add nope" in p.stderr
    p = run_cli("stats", library=tmp_path / "missing", check=False)
    assert p.returncode == 2 and "copytrail init" in p.stderr
    p = run_cli("source", "add", "x", "--kind", "stolen", library=libdir, check=False)
    assert p.returncode == 2 and "stolen" in p.stderr
    p = run_cli("source", "add", "pg", "--kind", "licensed", library=libdir, check=False)
    assert p.returncode == 2 and "exists already" in p.stderr
    p = run_cli(
        "ingest",
        str(tmp_path / "nothing-here"),
        "--source",
        "pg",
        "--dataset",
        "d",
        library=libdir,
        check=False,
    )
    assert p.returncode == 2 and "no such file" in p.stderr
    p = run_cli("prove", "1", library=libdir, check=False)
    assert p.returncode == 2 and "copytrail checkpoint" in p.stderr
    p = run_cli("show", "zz", library=libdir, check=False)
    assert p.returncode == 2 and "SHA-256 prefix" in p.stderr


def test_library_from_environment(tmp_path: Path):
    env = {"COPYTRAIL_LIBRARY": str(tmp_path / "envlib")}
    run_cli("init", env=env)
    assert (tmp_path / "envlib" / "library.json").exists()
    assert json.loads(run_cli("stats", "--json", env=env).stdout)["copies"] == 0
