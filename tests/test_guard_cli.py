"""`guard index`, `check`, `search` and `key` through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from copytrail.fingerprint.normalize import tokens

from .conftest import EXAMPLES, run_cli


@pytest.fixture(scope="module")
def cli_lib(tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("guardcli") / "lib"
    run_cli("init", library=lib)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    run_cli("ingest", str(EXAMPLES), "--source", "pg", "--dataset", "pg@1", library=lib)
    r = run_cli("guard", "index", "books", "--dataset", "pg@1", "--json", library=lib)
    assert json.loads(r.stdout)["texts"] >= 5
    return lib


def _passage(n: int) -> str:
    text = (EXAMPLES / "11" / "11-0.txt").read_text(encoding="utf-8-sig")
    _w, starts, ends = tokens(text)
    return text[starts[1500] : ends[1500 + n - 1]]


def test_check_exit_codes_and_json(cli_lib: Path, tmp_path: Path):
    flagged = tmp_path / "flagged.txt"
    flagged.write_text("My own words first. " + _passage(70))
    r = run_cli("check", str(flagged), "--guard", "books", "--json", library=cli_lib, check=False)
    assert r.returncode == 3
    body = json.loads(r.stdout)
    assert body["flagged"] and body["spans"][0]["words"] == 70
    clean = tmp_path / "clean.txt"
    clean.write_text(_passage(30))  # shorter than the threshold
    r = run_cli("check", str(clean), "--guard", "books", library=cli_lib, check=False)
    assert r.returncode == 0 and "clean" in r.stdout
    r = run_cli("check", str(clean), "-g", "books", "-n", "20", library=cli_lib, check=False)
    assert r.returncode == 3


def test_check_reads_stdin_and_streams(cli_lib: Path):
    cmd = [sys.executable, "-m", "copytrail.cli.main", "--library", str(cli_lib)]
    text = "intro line\n" + "\n".join(_passage(80).split("\n")) + "\n"
    p = subprocess.run(
        [*cmd, "check", "-", "--guard", "books", "--json"],
        input=text,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 3 and json.loads(p.stdout)["spans"]
    p = subprocess.run(
        [*cmd, "check", "-", "--guard", "books", "--stream", "--json"],
        input=text,
        capture_output=True,
        text=True,
    )
    body = json.loads(p.stdout)
    assert p.returncode == 3 and body["flagged"] and not body["final"]  # stopped early


def test_check_errors_say_what_to_do(cli_lib: Path, tmp_path: Path):
    r = run_cli(
        "check", str(tmp_path / "missing.txt"), "--guard", "books", library=cli_lib, check=False
    )
    assert r.returncode == 2 and "cannot read" in r.stderr
    f = tmp_path / "x.txt"
    f.write_text("hello")
    r = run_cli("check", str(f), "--guard", "nope", library=cli_lib, check=False)
    assert r.returncode == 2 and "copytrail guard index nope" in r.stderr
    r = run_cli("guard", "index", "fresh", library=cli_lib, check=False)
    assert r.returncode == 2 and "--list" in r.stderr


def test_search_and_guard_ls(cli_lib: Path):
    r = run_cli("search", "down the rabbit hole", "--json", library=cli_lib)
    body = json.loads(r.stdout)
    assert body["occurrences"] >= 1 and body["results"][0]["snippets"]
    r = run_cli("search", "down the rabbit hole", library=cli_lib)
    assert "occurrences" in r.stdout
    r = run_cli("guard", "ls", "--json", library=cli_lib)
    assert json.loads(r.stdout)[0]["name"] == "books"


def test_keys_are_shown_once_and_stored_hashed(cli_lib: Path):
    r = run_cli("key", "add", "svc", "--role", "checker", "--json", library=cli_lib)
    key = json.loads(r.stdout)["key"]
    assert key.startswith("ct_") and len(key) > 40
    r = run_cli("key", "ls", "--json", library=cli_lib)
    listed = json.loads(r.stdout)
    assert [k["name"] for k in listed] == ["svc"] and key not in r.stdout
    ledger_files = list(cli_lib.glob("ledger.db*"))
    assert ledger_files
    for f in ledger_files:
        assert key.encode() not in f.read_bytes()
    r = run_cli("key", "add", "svc", "--role", "checker", library=cli_lib, check=False)
    assert r.returncode == 2 and "exists" in r.stderr
    r = run_cli("key", "add", "x", "--role", "boss", library=cli_lib, check=False)
    assert r.returncode == 2 and "checker" in r.stderr
    r = run_cli("key", "revoke", "svc", "--json", library=cli_lib)
    assert json.loads(r.stdout)["revoked"]


def test_killed_index_build_leaves_a_usable_library(tmp_path: Path):
    """SIGKILL at random moments of `guard index`: the index is either the old one or the new
    one, never half; verify accepts the library; a rerun completes."""
    import os
    import random
    import signal
    import time

    lib = tmp_path / "lib"
    books = tmp_path / "books"
    books.mkdir()
    base = (EXAMPLES / "11" / "11-0.txt").read_text(encoding="utf-8-sig").split()
    rng = random.Random(1)
    for i in range(60):
        words = list(base)
        for _ in range(200):
            words[rng.randrange(len(words))] = f"v{i}"
        (books / f"b{i}.txt").write_text(" ".join(words))
    run_cli("init", library=lib)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    run_cli("ingest", str(books), "--source", "pg", "--dataset", "many@1", library=lib)
    cmd = [sys.executable, "-m", "copytrail.cli.main", "--library", str(lib)]
    t0 = time.monotonic()
    run_cli("guard", "index", "g", "--all", "--rebuild", library=lib)
    full = time.monotonic() - t0
    for _ in range(4):
        p = subprocess.Popen(
            [*cmd, "guard", "index", "g", "--rebuild"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.2, 0.9) * full)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        listed = json.loads(run_cli("guard", "ls", "--json", library=lib).stdout)
        assert listed and listed[0]["texts"] == 60  # the old index, whole
        assert json.loads(run_cli("verify", "--json", library=lib).stdout)["ok"]
    r = json.loads(run_cli("guard", "index", "g", "--json", library=lib).stdout)
    assert r["texts"] == 60
    assert not list((lib / "guard" / "g").glob(".tmp-*"))  # leftovers cleaned by the rerun
    phrase = " ".join(base[3000:3012])
    assert json.loads(run_cli("search", phrase, "--json", library=lib).stdout)["occurrences"] >= 1


_SMALL_SEGMENTS_BUILD = """
import json, sys
import copytrail.guard.index as gi
gi.SEGMENT_TEXT_BYTES = 400_000  # many segments from a few books
from copytrail import Library
lib = Library.open(sys.argv[1])
print(json.dumps(lib.guard_index(sys.argv[2], all_datasets=True)))
"""


def test_a_killed_first_index_build_is_taken_up_by_the_rerun(tmp_path: Path):
    """SIGKILL a first `guard index` once some of its segments are on disk: no index is listed,
    verify accepts the library, and the rerun builds only the segments that were missing and
    ends with the index an uninterrupted build makes."""
    import os
    import random
    import signal
    import time

    lib = tmp_path / "lib"
    books = tmp_path / "books"
    books.mkdir()
    base = (EXAMPLES / "11" / "11-0.txt").read_text(encoding="utf-8-sig").split()
    rng = random.Random(2)
    own = {}  # a passage only book i holds: shared text is boilerplate, never flagged
    for i in range(40):
        words = list(base)
        for _ in range(200):
            words[rng.randrange(len(words))] = f"v{i}"
        own[i] = " ".join(f"u{i}w{rng.randrange(10**6)}" for _ in range(80))
        (books / f"b{i}.txt").write_text(" ".join(words) + "\n" + own[i])
    run_cli("init", library=lib)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    run_cli("ingest", str(books), "--source", "pg", "--dataset", "many@1", library=lib)
    build = [sys.executable, "-c", _SMALL_SEGMENTS_BUILD, str(lib)]
    whole = json.loads(subprocess.run([*build, "whole"], capture_output=True, check=True).stdout)
    assert whole["reused_segments"] == 0

    folder = lib / "guard" / "g"
    p = subprocess.Popen([*build, "g"], stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("seg-*"))) < 2 and p.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    if p.returncode == 0:
        pytest.skip("the build finished before two of its segments could be seen")
    finished = {d.name for d in folder.glob("seg-*")}
    assert not (folder / "manifest.json").exists() and len(finished) >= 2
    assert "g" not in [
        g["name"] for g in json.loads(run_cli("guard", "ls", "--json", library=lib).stdout)
    ]
    assert json.loads(run_cli("verify", "--json", library=lib).stdout)["ok"]

    again = json.loads(subprocess.run([*build, "g"], capture_output=True, check=True).stdout)
    assert again["reused_segments"] >= 2
    for key in ("texts", "tokens", "texts_sha256", "segments"):
        assert again[key] == whole[key]
    passage = tmp_path / "passage.txt"
    passage.write_text(own[7])
    spans = {}
    for name in ("g", "whole"):
        got = run_cli("check", str(passage), "--guard", name, "--json", library=lib, check=False)
        assert got.returncode == 3, got.stderr  # the passage is found verbatim in both
        spans[name] = [(s["start"], s["end"], s["words"]) for s in json.loads(got.stdout)["spans"]]
    assert spans["g"] == spans["whole"] and spans["g"]
