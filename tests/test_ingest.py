"""Ingest through the Library: formats, identity, re-runs, datasets and the memory:// store."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest

from copytrail import Library, samples
from copytrail.errors import NotFound

from .conftest import EXAMPLES, pooled


def _by_path(lib: Library, dataset: str | None = None) -> dict[str, dict]:
    return {c["path"]: c for c in lib.copies(dataset=dataset)}


def test_ingest_examples_directory(lib: Library):
    s = lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    files = sorted(p for p in EXAMPLES.rglob("*") if p.is_file())
    assert s.files == len(files) == s.copies_added and s.unreadable == 0
    assert s.bytes == sum(p.stat().st_size for p in files)
    copies = _by_path(lib)
    alice = copies["gutenberg/11/11-0.txt"]
    data = (EXAMPLES / "11" / "11-0.txt").read_bytes()
    assert alice["sha256"] == hashlib.sha256(data).hexdigest() and alice["size"] == len(data)
    assert alice["media_type"] == "text/plain" and alice["status"] == "ok"
    assert alice["title"] == "Alice’s Adventures in Wonderland" and alice["authors"] == [
        "Lewis Carroll"
    ]
    assert alice["language"] == "en" and alice["words"] == len(data.split())
    assert lib.store.get(alice["text_sha256"]).decode("utf-8").startswith("Project Gutenberg")
    german = copies["gutenberg/22367/22367-8.txt"]
    assert german["language"] == "de" and german["text_sha256"] != german["sha256"]
    assert "Träumen" in lib.copy_text(german["id"], "test")["text"]
    html = copies["gutenberg/11/11-h.htm"]
    assert html["media_type"] == "text/html" and "Alice" in html["title"]
    assert lib.verify().ok


def test_rerun_adds_nothing_and_other_dataset_shares_blobs(lib: Library, tmp_path: Path):
    first = lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="a")
    again = lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="a")
    assert again.copies_added == 0 and again.copies_existing == first.copies_added
    blobs_before = set(lib.store.iter_names())
    other = lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="b")
    assert other.copies_added == first.copies_added  # each copy counts
    assert set(lib.store.iter_names()) == blobs_before  # but bytes are stored once
    shas_a = {c["sha256"] for c in lib.copies(dataset="a")}
    assert shas_a == {c["sha256"] for c in lib.copies(dataset="b")}
    one = next(iter(lib.copies(dataset="a")))
    assert lib.copy(one["id"])["shared_with"]
    # Same bytes under another name in the same dataset are the same copy.
    dup = tmp_path / "renamed.txt"
    shutil.copy(EXAMPLES / "11" / "11-0.txt", dup)
    assert lib.ingest([str(dup)], source="pg", dataset="a").copies_added == 0
    assert lib.verify().ok


def test_parallel_workers_give_the_same_copies(lib: Library):
    s = pooled(lib).ingest([str(EXAMPLES)], source="pg", dataset="par")
    t = lib.ingest([str(EXAMPLES)], source="pg", dataset="seq")
    assert s.copies_added == t.copies_added
    strip = lambda c: (c["path"], c["sha256"], c["text_sha256"], c["words"], c["title"])  # noqa: E731
    assert sorted(map(strip, lib.copies(dataset="par"))) == sorted(
        map(strip, lib.copies(dataset="seq"))
    )


def test_jsonl_records_gz_and_zst(lib: Library, tmp_path: Path):
    recs = [
        {
            "id": "b1",
            "title": "Book One",
            "author": "Ann Author; Bo Writer",
            "isbn": "0-553-21369-5",
            "text": "It was a dark and stormy night. " * 30,
        },
        {"id": "b2", "meta": {"title": "Nested Meta", "language": "fr"}, "text": "Bonjour " * 50},
        {"id": "b3", "title": "no text here"},
        [1, 2, 3],
    ]
    samples.write(tmp_path / "in" / "d.jsonl.gz", samples.make_jsonl(recs, "gzip"))
    samples.write(tmp_path / "in" / "e.jsonl.zst", samples.make_jsonl(recs[:1], "zstd"))
    s = lib.ingest([str(tmp_path / "in")], source="pg", dataset="recs")
    # e.jsonl.zst's single record is the same line as d's first: one copy.
    assert s.items == 5 and s.copies_added == 4 and s.unreadable == 2
    c = _by_path(lib)
    one = c["in/d.jsonl.gz#L1"]
    line = orjson.dumps(recs[0])  # how make_jsonl writes it: the record's exact bytes
    assert one["sha256"] == hashlib.sha256(line).hexdigest()
    assert lib.store.get(one["sha256"]) == line
    assert one["title"] == "Book One" and one["authors"] == ["Ann Author", "Bo Writer"]
    assert one["isbns"] == ["9780553213690"] and one["extra"]["record_id"] == "b1"
    assert lib.copy_text(one["id"], "test")["text"] == recs[0]["text"]
    assert (
        c["in/d.jsonl.gz#L2"]["title"] == "Nested Meta"
        and c["in/d.jsonl.gz#L2"]["language"] == "fr"
    )
    assert "--text-field" in c["in/d.jsonl.gz#L3"]["reason"]
    assert "not an object" in c["in/d.jsonl.gz#L4"]["reason"]


def test_text_field_option_and_parquet(lib: Library, tmp_path: Path):
    rows = [
        {"content": f"Row {i} says something worth keeping. " * 10, "title": f"T{i}", "n": i}
        for i in range(25)
    ]
    samples.write(tmp_path / "p.parquet", samples.make_parquet(rows, row_group_size=10))
    s = lib.ingest([str(tmp_path / "p.parquet")], source="pg", dataset="pq", text_field="content")
    assert s.copies_added == 25 and s.unreadable == 0
    c = _by_path(lib)
    assert c["p.parquet#row=24"]["title"] == "T24"
    assert lib.copy_text(c["p.parquet#row=13"]["id"], "test")["text"] == rows[13]["content"]


def test_archives_nested_and_member_paths(lib: Library, tmp_path: Path):
    alice = (EXAMPLES / "11" / "11-0.txt").read_bytes()
    inner = samples.make_tar(
        {
            "deep/alice.txt": alice,
            "records.jsonl": samples.make_jsonl(
                [{"text": "a record inside a tar inside a zip " * 5}]
            ),
        },
        gz=True,
    )
    epub = samples.make_epub("E", ["Au Thor"], ["chapter text " * 40], isbn="9780553213690")
    outer = samples.make_zip(
        {
            "books/inner.tar.gz": inner,
            "books/e.epub": epub,
            "books/a.html": b"<html><body><p>hello html</p></body></html>",
        }
    )
    samples.write(tmp_path / "delivery.zip", outer)
    s = lib.ingest([str(tmp_path / "delivery.zip")], source="pg", dataset="arc")
    c = _by_path(lib)
    assert set(c) == {
        "delivery.zip!/books/inner.tar.gz!/deep/alice.txt",
        "delivery.zip!/books/inner.tar.gz!/records.jsonl#L1",
        "delivery.zip!/books/e.epub",
        "delivery.zip!/books/a.html",
    }
    assert s.unreadable == 0
    assert (
        c["delivery.zip!/books/inner.tar.gz!/deep/alice.txt"]["sha256"]
        == hashlib.sha256(alice).hexdigest()
    )
    assert c["delivery.zip!/books/e.epub"]["isbns"] == ["9780553213690"]
    outer_sha = hashlib.sha256(outer).hexdigest()
    assert c["delivery.zip!/books/a.html"]["extra"]["container"] == outer_sha
    kinds = {x["path"]: x["kind"] for x in s.containers}
    assert kinds == {
        "delivery.zip": "zip",
        "delivery.zip!/books/inner.tar.gz": "tar",
        "delivery.zip!/books/inner.tar.gz!/records.jsonl": "jsonl",
    }


def test_isbn_found_in_text_front_matter(lib: Library, tmp_path: Path):
    text = (
        "Title: A Book\nAuthor: Some One\n\nCopyright 2001\nISBN 0-306-40615-2\n\n"
        + "words " * 5000
    )
    (tmp_path / "b.txt").write_text(text)
    lib.ingest([str(tmp_path / "b.txt")], source="pg", dataset="i")
    c = lib.copy(1)
    assert c["isbns"] == ["9780306406157"] and c["isbn_origins"] == [
        {"isbn13": "9780306406157", "origin": "text"}
    ]
    assert c["title"] == "A Book" and c["authors"] == ["Some One"]


def test_memory_store(mem_lib: Library):
    # a memory:// store lives in one process, so even a pool of 4 runs inline
    s = pooled(mem_lib, 4).ingest([str(EXAMPLES / "5200")], source="pg", dataset="m")
    assert s.copies_added == 3
    assert mem_lib.store.fs.protocol[0] == "memory" or "memory" in mem_lib.store.fs.protocol
    r = mem_lib.verify()
    assert r.ok and r.counts["blobs_referenced"] >= 3


def test_show_by_prefix_and_stats(lib: Library):
    lib.ingest([str(EXAMPLES / "5200")], source="pg", dataset="s@1")
    c = next(iter(lib.copies()))
    assert lib.copy(c["sha256"][:10])["id"] == c["id"]
    assert lib.copy(c["sha256"].upper())["id"] == c["id"]  # the whole digest, any case
    # By its text's digest too (a range on the index, not LIKE: every prefix of every digest).
    for copy in lib.copies():
        for n in (6, 20, 64):
            assert lib.copy(copy["text_sha256"][:n])["id"] == copy["id"]
    with pytest.raises(NotFound):
        lib.copy("ffffff" if not c["sha256"].startswith("ffffff") else "000000")
    assert lib.copy(str(c["id"]))["events"][0]["type"] == "ingested"
    st = lib.stats()
    assert st["copies"] == 3 and st["by_dataset"][0]["dataset"] == "s@1"
    assert st["by_source_kind"][0]["source_kind"] == "public-domain"
    assert st["words"] == sum(x["words"] for x in lib.copies())
