"""Holds and deletion: a hold refuses a deletion and nothing changes; a deletion removes the blobs
(keeping shared ones), the shards built from the copies and their guard entries, rebuilds the
corpus, writes a certificate whose proof verifies, and leaves no trace of the text anywhere."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from copytrail import Library
from copytrail.errors import Conflict
from copytrail.ledger.merkle import verify_proof_document

from .conftest import EXAMPLES, run_cli

MARKER = "zyxwv quorbel flindermaus"  # words found in no other text


def _secret_book(path: Path) -> str:
    rng = random.Random(4)
    vocab = ["the", "a", "of", "and", "river", "night", "lantern", "harbour", "quiet", "letters"]
    words = [rng.choice(vocab) for _ in range(3000)]
    text = " ".join(words[:1500]) + f" {MARKER} " + " ".join(words[1500:]) + "\n"
    path.write_text(text)
    return text


@pytest.fixture
def library(tmp_path: Path):
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.add_source("pirate", kind="shadow-library")
    lib.ingest([str(EXAMPLES / "11"), str(EXAMPLES / "5200")], source="pg", dataset="pg@1")
    book = tmp_path / "secret" / "book.txt"
    book.parent.mkdir()
    _secret_book(book)
    lib.ingest([str(book.parent)], source="pirate", dataset="loot@1")
    lib.train_tokenizer(["pg@1"], 800, tmp_path / "tok.json")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'datasets = ["pg@1", "loot@1"]\ntokenizer = "tok.json"\nshard_tokens = 20000\n'
        "[filters]\nmin_words = 10\nmean_word_length = [2, 12]\nmax_duplicate_lines = 1.0\n"
        "max_duplicate_paragraphs = 1.0\n"
    )
    lib.build("c1", policy)
    lib.guard_index("all", all_datasets=True)
    yield lib, tmp_path
    lib.close()


def _blob_texts(lib: Library) -> list[bytes]:
    return [lib.store.get(name) for name in lib.store.iter_names()]


def _shard_token_runs(lib: Library) -> list[np.ndarray]:
    return [np.fromfile(p, dtype=np.uint16) for p in (lib.path / "corpora").rglob("*.bin")]


def _contains(hay: np.ndarray, needle: list[int]) -> bool:
    n = len(needle)
    if len(hay) < n:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(hay, n)
    return bool((windows == np.array(needle, dtype=hay.dtype)).all(axis=1).any())


def test_hold_refuses_and_nothing_changes(library):
    lib, _ = library
    hold = lib.add_hold("Doe v. Acme, 24-cv-1", "source", "pirate")
    before = [(c["id"], c["status"]) for c in lib.copies()]
    blobs_before = sorted(lib.store.iter_names())
    with pytest.raises(Conflict, match=r"hold #1 \(Doe v. Acme"):
        lib.delete("takedown", dataset="loot@1")
    assert [(c["id"], c["status"]) for c in lib.copies()] == before
    assert sorted(lib.store.iter_names()) == blobs_before
    assert lib.verify().ok
    assert [h["id"] for h in lib.holds(active_only=True)] == [hold["id"]]
    lib.release_hold(hold["id"])
    assert lib.holds(active_only=True) == []
    assert lib.delete("takedown", dataset="loot@1")["copies"]


def test_delete_leaves_no_trace_and_proves_it(library):
    lib, tmp = library
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp / "tok.json"))
    marker_ids = tok.encode(" " + MARKER).ids
    assert any(MARKER.encode() in b for b in _blob_texts(lib))
    assert any(_contains(run, marker_ids) for run in _shard_token_runs(lib))
    assert lib.search(MARKER)["occurrences"] == 1

    r = lib.delete("takedown notice 114", dataset="loot@1", rebuild=True)
    assert len(r["copies"]) == 1 and r["blobs_removed"]
    assert r["tainted_corpora"][0]["corpus"] == "c1" and r["derived_files_removed"]
    assert r["rebuilt"][0]["rebuilt_as"] == "c1-d1"
    # no blob, no shard, no guard entry holds the text any more
    assert not any(MARKER.encode() in b for b in _blob_texts(lib))
    assert not any(_contains(run, marker_ids) for run in _shard_token_runs(lib))
    assert lib.search(MARKER)["occurrences"] == 0
    rebuilt = lib.corpus("c1-d1")
    assert "shadow-library" not in {g["source_kind"] for g in rebuilt["by_source_kind"]}
    # the record: verify confirms the blobs are gone; the certificate's proof verifies
    report = lib.verify()
    assert report.ok, report.problems
    cert = json.loads(Path(r["certificate_path"]).read_text())
    assert verify_proof_document(cert["inclusion_proof"])
    assert cert["inclusion_proof"]["event_seq"] == cert["event"]["seq"]
    assert Path(r["certificate_path"]).with_suffix(".txt").read_text().startswith("DELETION")
    assert lib.copy(cert["copies"][0]["id"])["status"] == "deleted"


def test_shared_blobs_are_kept(library):
    lib, _tmp = library
    lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="again@1")
    r = lib.delete("duplicate dataset", dataset="again@1")
    assert r["blobs_removed"] == [] and r["blobs_kept_shared"]
    assert all(lib.store.exists(s) for s in r["blobs_kept_shared"])
    assert lib.verify().ok


def test_delete_and_hold_cli(library):
    lib, tmp = library
    run_cli("hold", "add", "--matter", "M-1", "--dataset", "loot@1", library=lib.path)
    r = run_cli("delete", "--dataset", "loot@1", "--reason", "x", library=lib.path, check=False)
    assert r.returncode == 2 and "hold #1" in r.stderr and "Nothing was" in r.stderr
    run_cli("hold", "release", "1", library=lib.path)
    ids = tmp / "ids.txt"
    ids.write_text(str(next(c["id"] for c in lib.copies(dataset="loot@1"))) + "\n")
    r = run_cli("delete", "--copies", str(ids), "--reason", "x", "--json", library=lib.path)
    cert = json.loads(r.stdout)
    proof = Path(cert["certificate_path"]).with_suffix(".proof.json")
    r = run_cli("verify", "--proof", str(proof), library=lib.path)
    assert "verifies" in r.stdout
    r = run_cli("delete", "--copies", str(ids), "--reason", "x", library=lib.path, check=False)
    assert r.returncode == 2 and "nothing to delete" in r.stderr


def test_retention_report(library):
    lib, tmp = library
    rules = tmp / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "shadow originals"\nsource_kind = "shadow-library"\n'
        "delete_after_last_inclusion_days = 30\n"
        '[[rule]]\nname = "unused"\nflag_never_included_after_days = 90\n'
    )
    now = lib.retention_report(rules)
    assert now["copies"] == sum(1 for _ in lib.copies())
    assert now["never_included"] >= 1 and now["never_included"] < now["copies"]
    assert [r["copies"] for r in now["rules"]] == [0, 0]  # nothing is old enough yet
    later = lib.retention_report(rules, as_of="2999-01-01")
    shadow, unused = later["rules"]
    assert shadow["action"] == "delete" and shadow["copies"] == 1
    assert shadow["listed"][0]["kind"] == "shadow-library"
    assert unused["action"] == "flag" and unused["copies"] == now["never_included"]
    lib.add_hold("M-2", "source", "pirate")
    held = lib.retention_report(rules, as_of="2999-01-01")["rules"][0]
    assert (held["copies"], held["held"], held["holds"]) == (0, 1, [1])
    bad = tmp / "bad.toml"
    bad.write_text('[[rule]]\nname = "x"\n')
    with pytest.raises(Exception, match="delete_after_last_inclusion_days"):
        lib.retention_report(bad)
    r = run_cli("retention", "report", "--rules", str(rules), "--json", library=lib.path)
    assert json.loads(r.stdout)["rules"][0]["rule"] == "shadow originals"


def test_interrupted_deletion_is_accepted_and_finished_by_a_rerun(library, monkeypatch):
    """A deletion killed after it was recorded, before its blobs went: verify accepts the library
    (with a note), and the next delete removes the leftovers."""
    import copytrail.retention.delete as d

    lib, _tmp = library
    real = d._remove_blobs
    calls = {"n": 0}

    def killed(lib_, ids):
        calls["n"] += 1
        if calls["n"] == 2:  # the first call finishes older deletions; the second is this one's
            raise KeyboardInterrupt("killed")
        return real(lib_, ids)

    monkeypatch.setattr(d, "_remove_blobs", killed)
    with pytest.raises(KeyboardInterrupt):
        lib.delete("takedown", dataset="loot@1")
    monkeypatch.setattr(d, "_remove_blobs", real)
    assert any(MARKER.encode() in b for b in _blob_texts(lib))  # still there
    report = lib.verify()
    assert report.ok, report.problems
    assert any("interrupted deletion" in n for n in report.notes)
    with pytest.raises(Exception, match="nothing to delete"):
        lib.delete("again", dataset="loot@1")  # finishes the removal first
    assert not any(MARKER.encode() in b for b in _blob_texts(lib))
    assert lib.verify().ok


def test_sigkill_during_delete_and_build(tmp_path: Path):
    """Real kills at random moments of `delete` and `build`: verify accepts the library after
    each; rerunning completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    lib = tmp_path / "lib"
    books = tmp_path / "books"
    books.mkdir()
    rng = random.Random(9)
    base = (EXAMPLES / "11" / "11-0.txt").read_text(encoding="utf-8-sig").split()
    for i in range(40):
        words = list(base)
        for _ in range(300):
            words[rng.randrange(len(words))] = f"v{i}"
        (books / f"b{i}.txt").write_text(" ".join(words))
    run_cli("init", library=lib)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    run_cli("ingest", str(books), "--source", "pg", "--dataset", "many@1", library=lib)
    run_cli(
        "tokenizer",
        "train",
        "-d",
        "many@1",
        "--vocab",
        "500",
        "--out",
        str(tmp_path / "t.json"),
        library=lib,
    )
    policy = tmp_path / "p.toml"
    policy.write_text('datasets = ["many@1"]\ntokenizer = "t.json"\n[dedup]\nnear = false\n')
    cmd = [sys.executable, "-m", "copytrail.cli.main", "--library", str(lib)]

    def killed_run(args: list[str], seconds: float) -> None:
        p = subprocess.Popen(
            [*cmd, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(seconds)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        v = run_cli("verify", "--json", library=lib, check=False)
        assert json.loads(v.stdout)["ok"], v.stdout

    t0 = time.monotonic()
    run_cli("build", "probe", "--policy", str(policy), library=lib)
    full = time.monotonic() - t0
    for n in range(3):
        killed_run(["build", f"k{n}", "--policy", str(policy)], rng.uniform(0.3, 0.9) * full)
    run_cli("build", "k0x", "--policy", str(policy), library=lib)  # a build still completes
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(str(i) for i in range(1, 21)))
    for _ in range(3):
        killed_run(["delete", "--copies", str(ids), "--reason", "r"], rng.uniform(0.5, 2.0))
    r = run_cli("delete", "--copies", str(ids), "--reason", "r", library=lib, check=False)
    assert r.returncode in (0, 2)  # finished now, or an earlier run already had
    v = json.loads(run_cli("verify", "--json", library=lib).stdout)
    assert v["ok"] and not any("interrupted deletion" in n for n in v["notes"])
