"""Pack files: many blobs per file, texts derived from JSON originals, removal that rewrites."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrail import Library
from copytrail.engine.local import LocalEngine
from copytrail.store import packs
from copytrail.store.blobs import BlobStore


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _all_plain_bytes(root: Path) -> bytes:
    """Every file of the store as stored and, where it is zstd, decompressed: what a forensic
    look at the disk would find."""
    out = []
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        raw = p.read_bytes()
        out.append(raw)
        with contextlib.suppress(zstandard.ZstdError):
            out.append(
                zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True).readall()
            )
    return b"\n".join(out)


def _record(i: int, text: str) -> bytes:
    return orjson.dumps({"id": i, "meta": {"text": text}, "text": text})


def test_packed_blobs_are_few_files_and_read_back(tmp_path: Path):
    store = BlobStore(str(tmp_path / "blobs"))
    blobs = [f"record {i} ".encode() * (i % 50 + 1) for i in range(3000)]
    with store.packing():
        for b in blobs:
            store.put(b)
    assert store.files() == 2  # one pack and its index
    fresh = BlobStore(str(tmp_path / "blobs"))  # another process: reads the index from disk
    for b in blobs[::97]:
        assert fresh.get(_sha(b)) == b
        assert fresh.exists(_sha(b)) and fresh.check(_sha(b)) is None
    assert set(fresh.iter_names()) == {_sha(b) for b in blobs}
    assert not list(fresh.iter_temporaries())
    # writing the same bytes again, packed or loose, stores nothing new
    with fresh.packing():
        assert fresh.put(blobs[5]) == (_sha(blobs[5]), False)
    assert fresh.put(blobs[6]) == (_sha(blobs[6]), False)
    assert fresh.files() == 2


def test_read_order_follows_the_packs_and_puts_loose_blobs_last(tmp_path: Path):
    store = BlobStore(str(tmp_path / "blobs"))
    first = [f"first pack {i} ".encode() * 200 for i in range(300)]
    second = [f"second pack {i} ".encode() * 200 for i in range(300)]
    for batch in (first, second):
        with store.packing():
            for b in batch:
                store.put(b)
    loose = [b"a loose blob", b"another loose blob"]
    for b in loose:
        store.put(b)
    names = [_sha(b) for b in first + second + loose] + ["0" * 64]  # and one the store lacks
    shuffled = sorted(names)
    ordered = BlobStore(str(tmp_path / "blobs")).read_order(shuffled)
    assert sorted(ordered) == shuffled
    assert set(ordered[-3:]) == {_sha(b) for b in loose} | {"0" * 64}
    # Each pack's blobs come together, in the order they were written (block by block).
    packed = ordered[:-3]
    by_pack = [packed[:300], packed[300:]]
    assert {tuple(by_pack[0]), tuple(by_pack[1])} == {
        tuple(_sha(b) for b in first),
        tuple(_sha(b) for b in second),
    }


def test_a_digest_ending_in_zero_bytes_is_found(tmp_path: Path):
    # numpy's fixed-width bytes drop trailing NULs; the index must not lose such digests.
    data = next(d for i in range(100_000) if (d := f"blob {i}".encode()) and _sha(d).endswith("00"))
    store = BlobStore(str(tmp_path / "blobs"))
    with store.packing():
        store.put(data)
    fresh = BlobStore(str(tmp_path / "blobs"))
    assert fresh.get(_sha(data)) == data and fresh.check(_sha(data)) is None
    assert fresh.remove(_sha(data)) and not fresh.exists(_sha(data))


def test_derived_text_is_not_stored_and_reads_back(tmp_path: Path):
    store = BlobStore(str(tmp_path / "blobs"))
    text = "It was the best of times, it was the worst of times. " * 40
    original = _record(1, text)
    with store.packing():
        store.put(original)
        assert store.put_derived(_sha(text.encode()), _sha(original), "meta.text")
    assert store.get(_sha(text.encode())) == text.encode()
    assert store.check(_sha(text.encode())) is None
    # not stored again: the text is only where the record has it (in two fields)
    raw = (
        zstandard.ZstdDecompressor()
        .stream_reader(
            next((tmp_path / "blobs" / "packs").glob("*.pack")).read_bytes(),
            read_across_frames=True,
        )
        .readall()
    )
    assert raw.count(b"worst of times") == 80
    # outside a pack there is nothing to derive from
    assert not store.put_derived(_sha(b"x"), _sha(original), "text")


def test_removal_rewrites_the_pack_and_leaves_no_byte(tmp_path: Path):
    root = tmp_path / "blobs"
    store = BlobStore(str(root))
    secret = "the confidential passage about the lighthouse keeper " * 20
    keep_text = "an ordinary page of text that stays " * 20
    gone = _record(1, secret)
    kept = [_record(i, f"{keep_text} {i}") for i in range(2, 400)]
    shared_text_original = _record(999, keep_text)
    with store.packing():
        store.put(gone)
        store.put_derived(_sha(secret.encode()), _sha(gone), "text")
        store.put(shared_text_original)
        store.put_derived(_sha(keep_text.encode()), _sha(shared_text_original), "text")
        for k in kept:
            store.put(k)
    store.consolidate()
    assert b"lighthouse keeper" in _all_plain_bytes(root)
    # remove the secret record and its text, and the original a kept text is derived from
    assert store.remove_many([_sha(gone), _sha(secret.encode()), _sha(shared_text_original)]) == 3
    assert b"lighthouse keeper" not in _all_plain_bytes(root)
    fresh = BlobStore(str(root))
    assert not fresh.exists(_sha(gone)) and not fresh.exists(_sha(secret.encode()))
    assert not fresh.exists(_sha(shared_text_original))
    # the kept text lost its original, so it is now stored in full
    assert fresh.get(_sha(keep_text.encode())) == keep_text.encode()
    assert all(fresh.check(_sha(k)) is None for k in kept)
    assert fresh.files() == 3  # the new pack, its index, the merged index


def test_a_pack_without_index_is_invisible_and_reported(tmp_path: Path):
    root = tmp_path / "blobs"
    store = BlobStore(str(root))
    with store.packing():
        store.put(b"sealed blob")
    w = packs.PackWriter(store.fs, store.pack_dir, True)
    w.add(bytes.fromhex(_sha(b"unsealed")), b"unsealed")
    w._seal_block()  # written, never closed: as if the writer was killed
    w.file.flush()
    fresh = BlobStore(str(root))
    assert not fresh.exists(_sha(b"unsealed"))
    assert fresh.get(_sha(b"sealed blob")) == b"sealed blob"
    assert len(list(fresh.iter_temporaries())) == 1


def test_damage_inside_a_pack_is_reported_per_blob(tmp_path: Path):
    root = tmp_path / "blobs"
    store = BlobStore(str(root))
    blobs = [os.urandom(2000) for _ in range(300)]  # incompressible: several blocks
    with store.packing():
        for b in blobs:
            store.put(b)
    pack = next((root / "packs").glob("*.pack"))
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    fresh = BlobStore(str(root))
    problems = [p for b in blobs if (p := fresh.check(_sha(b)))]
    assert problems and len(problems) < len(blobs)  # one block is damaged, not the pack


def test_the_merged_index_is_only_a_cache(tmp_path: Path):
    root = tmp_path / "blobs"
    store = BlobStore(str(root))
    with store.packing():
        store.put(b"first pack")
    store.consolidate()
    with store.packing():
        store.put(b"second pack")  # not in all.midx: read from its own index
    (root / "packs" / packs.MIDX_NAME).write_bytes(b"garbage")
    fresh = BlobStore(str(root))
    assert fresh.get(_sha(b"first pack")) == b"first pack"
    assert fresh.get(_sha(b"second pack")) == b"second pack"


def test_packs_on_an_object_store_filesystem():
    store = BlobStore("memory://packtest/blobs")
    with store.packing():
        store.put(b"one")
        store.put(_record(1, "some text here"))
        store.put_derived(_sha(b"some text here"), _sha(_record(1, "some text here")), "text")
    fresh = BlobStore("memory://packtest/blobs")
    assert fresh.get(_sha(b"some text here")) == b"some text here"
    assert fresh.remove(_sha(b"one")) and not fresh.exists(_sha(b"one"))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=60))
def test_any_blobs_round_trip_through_a_pack(tmp_path_factory, blobs):
    root = tmp_path_factory.mktemp("p") / "blobs"
    store = BlobStore(str(root))
    with store.packing():
        for b in blobs:
            store.put(b)
    fresh = BlobStore(str(root))
    for b in blobs:
        assert fresh.get(_sha(b)) == b


def test_ingested_records_are_packed_with_derived_texts(tmp_path: Path):
    records = tmp_path / "web.jsonl"
    texts = [f"web page number {i} " + "with some words " * (i % 30 + 5) for i in range(2500)]
    records.write_bytes(
        b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in enumerate(texts))
    )
    lib = Library.init(tmp_path / "lib", executor=LocalEngine(2, inline_bytes=0))
    lib.add_source("web", kind="web-crawl")
    lib.ingest([str(records)], source="web", dataset="web@1")
    assert lib.store.files() <= 2 * 3  # a pack and its index per task, not a file per record
    rows = list(lib.copies())
    assert len(rows) == 2500
    for c in rows[::250]:
        assert lib.store.get(c["text_sha256"]).decode() == texts[int(c["extra"]["record_id"])]
    assert lib.verify().ok
    lib.close()


@pytest.mark.parametrize("field", ["text", "meta.text"])
def test_derivation_follows_the_text_field(tmp_path: Path, field: str):
    records = tmp_path / "r.jsonl"
    text = "nested \ud83d text"  # a lone surrogate: orjson refuses it, the stdlib reads it
    records.write_text(json.dumps({"id": 1, "meta": {"text": text}, "text": text}) + "\n")
    lib = Library.init(tmp_path / "lib", executor=LocalEngine(1))
    lib.add_source("web", kind="web-crawl")
    lib.ingest([str(records)], source="web", dataset="w@1", text_field=field)
    (c,) = list(lib.copies())
    assert lib.store.get(c["text_sha256"]) == "nested \ud83d text".encode("utf-8", "replace")
    assert lib.verify().ok
    lib.close()


def test_deleting_many_copies_rewrites_each_pack_once(tmp_path: Path, monkeypatch):
    records = tmp_path / "web.jsonl"
    records.write_bytes(
        b"".join(
            orjson.dumps({"id": i, "text": f"page {i} " + "of the web " * 30}) + b"\n"
            for i in range(300)
        )
    )
    lib = Library.init(tmp_path / "lib", executor=LocalEngine(1))
    lib.add_source("web", kind="web-crawl")
    lib.ingest([str(records)], source="web", dataset="web@1")
    calls = []
    real = packs.rewrite_pack
    monkeypatch.setattr(packs, "rewrite_pack", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(str(i) for i in range(1, 201)))
    r = lib.delete("takedown", copies_file=str(ids))
    assert len(r["blobs_removed"]) == 400  # 200 records and their 200 derived texts
    assert len(calls) == len(set(calls)) == 1  # one pack, rewritten once
    assert lib.verify().ok
    assert sum(1 for _ in lib.store.iter_names()) == 200
    lib.close()


def test_small_documents_share_packs_and_ingest_merges_the_index(tmp_path: Path, monkeypatch):
    from copytrail.ingest import run as ingest_run

    monkeypatch.setattr(ingest_run, "MERGE_AFTER_PACKS", 1)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(150):
        (docs / f"d{i:03d}.txt").write_text(f"document {i}\n" + "some words of it\n" * 20)
    lib = Library.init(tmp_path / "lib", executor=LocalEngine(2, inline_bytes=0))
    lib.add_source("s", kind="unknown")
    r = lib.ingest([str(docs)], source="s", dataset="d@1")
    assert r.copies_added == 150
    packs_dir = tmp_path / "lib" / "blobs" / "packs"
    assert len(list(packs_dir.glob("*.pack"))) == 3  # 64 + 64 + 22 documents
    assert (packs_dir / packs.MIDX_NAME).exists()
    assert lib.store.files() == 7
    fresh = BlobStore(str(tmp_path / "lib" / "blobs"))
    assert all(fresh.get(c["sha256"]) for c in lib.copies())
    assert lib.verify().ok
    lib.close()


def test_byte_ranges_number_lines_as_the_streaming_reader_does(tmp_path: Path, monkeypatch):
    import gzip

    from copytrail.ingest import plan

    monkeypatch.setattr(plan, "RANGE_BYTES", 300)  # many ranges over a small file
    lines = []
    for i in range(60):
        if i % 7 == 3:
            lines.append(b"")  # a blank line still counts
        rec = orjson.dumps({"id": i, "text": f"record {i} " + "x" * (i * 3)})
        lines.append(rec + (b"\r" if i % 5 == 0 else b""))
    lines.append(b"{not json")
    body = b"\n".join(lines)  # the last line has no line break
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "r.jsonl").write_bytes(body)
    (tmp_path / "b" / "r.jsonl.gz").write_bytes(gzip.compress(body))  # read as a stream
    seen = {}
    for name in ("a", "b"):
        lib = Library.init(tmp_path / f"lib-{name}", executor=LocalEngine(1))
        lib.add_source("s", kind="unknown")
        lib.ingest([str(tmp_path / name)], source="s", dataset="d@1")
        seen[name] = sorted(
            (c["path"].rsplit("#", 1)[1], c["sha256"], c["status"]) for c in lib.copies()
        )
        lib.close()
    assert seen["a"] == seen["b"] and len(seen["a"]) == 61


def test_an_index_scan_in_small_chunks_gives_the_loaded_index(tmp_path: Path):
    """verify reads the indexes a chunk at a time; the entries must be those load_index holds,
    from all.midx and from packs it does not cover alike."""
    root = tmp_path / "blobs"
    store = BlobStore(str(root))
    with store.packing():
        for i in range(20):
            store.put(f"merged blob {i}".encode())
    store.consolidate()
    with store.packing():
        for i in range(7):
            store.put(f"unmerged blob {i}".encode())
    index = packs.load_index(store.fs, store.pack_dir)
    scan = packs.IndexScan(store.fs, store.pack_dir, packs.pack_listing(store.fs, store.pack_dir))
    scan.rows = 3
    parts = list(scan.chunks())
    assert max(len(e) for e, _ in parts) == 3 and len(scan.merged) == 1
    got = sorted(
        (packs.sha_bytes(e["sha"]), scan.names[int(p)], int(e["block_off"]), int(e["inner"]))
        for entries, numbers in parts
        for e, p in zip(entries, numbers, strict=True)
    )
    want = sorted(
        (
            packs.sha_bytes(index.shas[r]),
            index.location(r).pack,
            index.location(r).block_off,
            index.location(r).inner,
        )
        for r in range(len(index.shas))
    )
    assert got == want and len(got) == 27
    # A truncated merged index is skipped whole: the packs' own indexes answer.
    midx = root / "packs" / packs.MIDX_NAME
    midx.write_bytes(midx.read_bytes()[:-5])
    scan = packs.IndexScan(store.fs, store.pack_dir, packs.pack_listing(store.fs, store.pack_dir))
    assert sum(len(e) for e, _ in scan.chunks()) == 27 and not scan.merged
    # So is one whose header is sound JSON of the wrong shape.
    header = orjson.dumps({"multi": True, "packs": 5, "fields": []})
    midx.write_bytes(packs.IDX_MAGIC + len(header).to_bytes(4, "little") + header)
    scan = packs.IndexScan(store.fs, store.pack_dir, packs.pack_listing(store.fs, store.pack_dir))
    assert sum(len(e) for e, _ in scan.chunks()) == 27 and not scan.merged
    assert BlobStore(str(root)).get(_sha(b"merged blob 3")) == b"merged blob 3"


def _pack_and_merge(root: Path, merged: int, unmerged: int) -> BlobStore:
    store = BlobStore(str(root))
    with store.packing():
        for i in range(merged):
            store.put(f"merged blob {i}".encode())
    store.consolidate()
    with store.packing():
        for i in range(unmerged):
            store.put(f"unmerged blob {i}".encode())
    return store


def _scan(store: BlobStore) -> tuple[packs.IndexScan, list[tuple]]:
    scan = packs.IndexScan(store.fs, store.pack_dir, packs.pack_listing(store.fs, store.pack_dir))
    scan.rows = 3
    got = sorted(
        (packs.sha_bytes(e["sha"]), scan.names[int(p)], int(e["block_off"]), int(e["inner"]))
        for entries, numbers in scan.chunks()
        for e, p in zip(entries, numbers, strict=True)
    )
    return scan, got


def test_index_files_in_frames_are_smaller_and_a_damaged_frame_is_caught(
    tmp_path: Path, monkeypatch
):
    """Index entries are kept in checksummed zstd frames. Several frames read back as the
    entries written; a damaged frame makes all.midx a skipped cache (none of its packs half
    read) and a pack's own index unreadable, never wrong entries."""
    monkeypatch.setattr(packs, "FRAME_ROWS", 5)
    root = tmp_path / "blobs"
    store = _pack_and_merge(root, 23, 7)
    midx = root / "packs" / packs.MIDX_NAME
    header, entries = packs.read_index_bytes(midx.read_bytes())
    assert [rows for rows, _ in header["frames"]] == [5, 5, 5, 5, 3] and len(entries) == 23
    scan, whole = _scan(store)
    assert len(whole) == 30 and len(scan.merged) == 1 and not scan.unreadable
    # A byte changed inside the last frame of all.midx: its checksum fails before any entry
    # is used, and the packs' own indexes answer with the same entries.
    data = bytearray(midx.read_bytes())
    data[-3] ^= 0xFF
    midx.write_bytes(bytes(data))
    scan, got = _scan(store)
    assert got == whole and not scan.merged
    assert BlobStore(str(root)).get(_sha(b"merged blob 22")) == b"merged blob 22"
    # The same damage to a pack's own index: that pack is reported, its blobs are not invented.
    midx.unlink()
    idx = next(p for p in (root / "packs").glob("*.idx"))
    data = bytearray(idx.read_bytes())
    data[-3] ^= 0xFF
    idx.write_bytes(bytes(data))
    scan, got = _scan(store)
    assert scan.unreadable == [idx.stem] and 0 < len(got) < 30

    # A header may claim any number of rows; the bytes are checked before rows are allocated.
    header = orjson.dumps({"pack": "x", "fields": [], "frames": [[packs.MAX_FRAME_ROWS, 1]] * 4096})
    forged = packs.IDX_MAGIC + len(header).to_bytes(4, "little") + header + b"\x00" * 4096
    with pytest.raises(ValueError, match="damaged pack index frame"):
        packs.read_index_bytes(forged)
    bad_tables = ([[0, 4096]], [[5, -1]], [[5, 4095]], [["5", 4096]], [[5, 4096, 1]], "frames")
    for table in bad_tables:
        header = orjson.dumps({"pack": "x", "fields": [], "frames": table})
        with pytest.raises(ValueError):
            packs.read_index_bytes(
                packs.IDX_MAGIC + len(header).to_bytes(4, "little") + header + b"\x00" * 4096
            )

    # Many entries: the location beside each digest compresses, the digest does not.
    monkeypatch.setattr(packs, "FRAME_ROWS", packs.SCAN_ROWS)
    big = BlobStore(str(tmp_path / "big"))
    with big.packing():
        for i in range(20_000):
            big.put(f"record {i} ".encode() * 30)
    (idx,) = (tmp_path / "big" / "packs").glob("*.idx")
    assert idx.stat().st_size < 20_000 * 45 < 20_000 * packs.ENTRY.itemsize


def test_indexes_written_raw_before_frames_still_read(tmp_path: Path):
    """Libraries made before index frames keep CTPIDX1 files, entries stored raw: they open,
    scan and read back the same, and a new pack beside them is written in frames."""
    root = tmp_path / "blobs"
    store = _pack_and_merge(root, 20, 7)
    _, framed = _scan(store)
    for path in (root / "packs").glob("*idx"):
        header, arr = packs.read_index_bytes(path.read_bytes())
        header.pop("frames")
        h = orjson.dumps(header)
        path.write_bytes(packs.IDX_MAGIC_RAW + len(h).to_bytes(4, "little") + h + arr.tobytes())
    scan, raw = _scan(store)
    assert raw == framed and len(scan.merged) == 1
    fresh = BlobStore(str(root))
    for i in range(20):
        assert fresh.get(_sha(f"merged blob {i}".encode())) == f"merged blob {i}".encode()
    with fresh.packing():
        fresh.put(b"a blob after the upgrade")
    assert (
        sum(p.read_bytes().startswith(packs.IDX_MAGIC) for p in (root / "packs").glob("*.idx")) == 1
    )
    assert (
        BlobStore(str(root)).get(_sha(b"a blob after the upgrade")) == b"a blob after the upgrade"
    )
