"""The blob store on S3 (moto's server, an emulator, through s3fs), with the ledger on SQLite or
PostgreSQL: ingest by worker processes, verify, guard, build and delete read and write there,
and a deletion really removes the objects (checked by listing the bucket afresh)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from copytrail import Library
from copytrail.store.blobs import BlobStore

from .conftest import EXAMPLES, pooled, run_cli


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    return any_db_url


def _plain(objects: dict[str, bytes]) -> bytes:
    """Every object's bytes, decompressed where they are zstd frames, joined."""
    out = []
    for data in objects.values():
        out.append(data)
        try:
            out.append(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 28))
        except zstandard.ZstdError:
            try:  # a pack: many frames
                reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
                out.append(reader.read())
            except zstandard.ZstdError:
                pass
    return b"\n".join(out)


def test_a_library_on_s3_ingests_verifies_builds_and_deletes(
    tmp_path: Path, s3, db_url: str | None
):
    store = s3.new_prefix("lib")
    lib = Library.init(tmp_path / "lib", db=db_url, store=store)
    lib.add_source("pg", kind="public-domain")
    lib.add_source("web", kind="web-crawl")
    records = tmp_path / "web.jsonl"
    marker = "a sentence only the deleted records hold"
    records.write_text(
        "".join(
            json.dumps({"id": i, "text": f"record {i}: {marker} " + "filler words " * 80}) + "\n"
            for i in range(300)
        )
    )
    s = pooled(lib).ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    w = pooled(lib).ingest([str(records)], source="web", dataset="web@1")
    assert s.copies_added > 5 and w.copies_added == 300
    objects = s3.objects(store)
    assert any(p.endswith(".pack") for p in objects) and len(objects) < 50  # packed, not loose
    assert marker.encode() in _plain(objects)
    report = pooled(lib).verify()
    assert report.ok, report.problems
    # guard and build read their texts from the bucket
    lib.guard_index("g", datasets=["pg@1"])
    quote = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8")[30000:32000]
    assert lib.check(quote, "g")["spans"]
    tok = tmp_path / "tok.json"
    lib.train_tokenizer(["pg@1"], 800, tok)
    policy = tmp_path / "p.toml"
    policy.write_text(f'datasets = ["pg@1", "web@1"]\ntokenizer = "{tok}"\n')
    built = pooled(lib).build("c", policy)
    assert built["documents"] > s.copies_added  # books and records (near-duplicates dropped)
    # deletion: the objects holding the records are rewritten or removed; no byte remains
    lib.delete("takedown", dataset="web@1")
    after = s3.objects(store)
    assert marker.encode() not in _plain(after)
    assert set(after) != set(objects)
    report = lib.verify()
    assert report.ok, report.problems
    lib.close()


def test_damage_to_an_object_is_found_by_verify(tmp_path: Path, s3):
    store = s3.new_prefix("damaged")
    lib = Library.init(tmp_path / "lib", store=store)
    lib.add_source("pg", kind="public-domain")
    pooled(lib).ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    blobs = BlobStore(store)
    pack = next(p for p in s3.objects(store) if p.endswith(".pack"))
    data = bytearray(blobs.fs.cat_file(pack))
    data[len(data) // 2 : len(data) // 2 + 8] = b"\x00" * 8
    blobs.fs.pipe_file(pack, bytes(data))
    report = lib.verify()
    assert not report.ok and any("pack" in p for p in report.problems), report.problems
    lib.close()


def test_cli_init_with_an_s3_store(tmp_path: Path, s3):
    store = s3.new_prefix("cli")
    lib = tmp_path / "lib"
    info = json.loads(run_cli("init", "--store", store, "--json", library=lib).stdout)
    assert info["store"] == store
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    run_cli("ingest", str(EXAMPLES / "5200"), "--source", "pg", "--dataset", "d@1", library=lib)
    assert json.loads(run_cli("verify", "--json", library=lib).stdout)["ok"]
    assert s3.objects(store)
