"""`copytrail build`: fates for every copy, keep order, exclusions, deterministic shards that numpy
reads, lineage, composition; policy errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from copytrail import Library
from copytrail.build import run as build_run
from copytrail.build.filters import quality_rule
from copytrail.build.policy import Filters, load_policy
from copytrail.catalog.schema import corpora, corpus_docs
from copytrail.errors import Conflict, InvalidInput
from copytrail.ledger.db import read_connection

from .conftest import EXAMPLES, REPO, run_cli


def _make_samples(out: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_samples", REPO / "examples" / "make_samples.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(out)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    inputs = root / "inputs"
    _make_samples(inputs)
    lib = Library.init(root / "lib")
    lib.add_source("gutenberg", kind="public-domain", license="Public domain in the USA")
    lib.add_source("books3", kind="shadow-library", license="none")
    lib.add_source("press", kind="licensed", license="Agreement 17")
    lib.ingest([str(EXAMPLES)], source="gutenberg", dataset="pg@1")
    lib.ingest([str(inputs / "books3-sample.jsonl.gz")], source="books3", dataset="b3@1")
    lib.ingest([str(inputs / "publisher")], source="press", dataset="press@1")
    lib.import_works(REPO / "examples" / "works.csv", "optouts")
    tok = lib.train_tokenizer(["pg@1"], 1200, root / "tok.json")
    yield lib, root, tok
    lib.close()


def _policy(root: Path, name: str, body: str) -> Path:
    p = root / f"{name}.toml"
    p.write_text(
        'datasets = ["pg@1", "b3@1", "press@1"]\ntokenizer = "tok.json"\nshard_tokens = 60000\n'
        + body
    )
    return p


def test_every_copy_gets_one_fate_and_shards_read_back(built):
    lib, root, _tok = built
    r = lib.build(
        "c1", _policy(root, "p1", '[dedup]\nkeep_order = ["licensed", "public-domain"]\n')
    )
    corpus = Path(r["path"])
    fates = pq.read_table(corpus / "fates.parquet").to_pylist()
    n_copies = sum(1 for _ in lib.copies())
    assert len(fates) == n_copies == r["considered"]
    assert len({f["copy_id"] for f in fates}) == n_copies
    included = [f for f in fates if f["fate"] == "included"]
    assert len(included) == r["documents"] > 0
    # duplicates name the copy kept instead, and the kept copy is included
    kept_ids = {f["copy_id"] for f in included}
    for f in fates:
        if f["rule"] and f["rule"].startswith("duplicate:"):
            assert f["kept_copy_id"] in kept_ids
    # shards: numpy memmap reads them; the lineage locates every document exactly
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(root / "tok.json"))
    lineage = pq.read_table(corpus / "lineage.parquet").to_pylist()
    for row in lineage:
        shard = r["shards"][row["shard"]]
        data = np.memmap(corpus / shard["file"], dtype=np.dtype(r["dtype"]), mode="r")
        ids = data[row["token_start"] : row["token_end"]].tolist()
        assert data[row["token_end"]] == r["tokenizer"]["eos_id"]
        copy = lib.copy(row["copy_id"])
        assert tok.decode(ids) == lib.store.get(copy["text_sha256"]).decode("utf-8")
        idx = np.memmap(corpus / shard["index"], dtype=np.int64, mode="r")
        assert row["token_start"] in idx.tolist()
    # the ledger holds the same fates and the events that include them
    show = lib.corpus("c1")
    assert sum(g["documents"] for g in show["by_source_kind"]) == r["documents"]
    types = [e["type"] for e in lib.events()][-3:]
    assert types == ["included", "excluded", "produced"]
    assert lib.verify().ok


def test_keep_order_prefers_licensed_over_shadow_library(built):
    lib, root, _tok = built
    lic = lib.build(
        "keep-lic", _policy(root, "p2", '[dedup]\nkeep_order = ["licensed", "shadow-library"]\n')
    )
    sha = lib.build(
        "keep-sha", _policy(root, "p3", '[dedup]\nkeep_order = ["shadow-library", "licensed"]\n')
    )

    def kinds(r: dict) -> dict[str, int]:
        return {g["source_kind"]: g["documents"] for g in lib.corpus(r["corpus"])["by_source_kind"]}

    assert kinds(lic).get("licensed", 0) > kinds(sha).get("licensed", 0)
    assert kinds(sha).get("shadow-library", 0) > kinds(lic).get("shadow-library", 0)


def test_exclusions_by_kind_works_list_and_language(built):
    lib, root, _tok = built
    body = (
        'exclude_kinds = ["shadow-library"]\nlanguages = ["en"]\n'
        '[[exclude_works]]\nlist = "optouts"\n'
    )
    r = lib.build("strict", _policy(root, "p4", body))
    rules = r["excluded_by_rule"]
    assert rules.get("source-kind:shadow-library", 0) >= 4
    assert rules.get("works-list:optouts", 0) >= 1
    lineage = pq.read_table(Path(r["path"]) / "lineage.parquet").to_pylist()
    assert all(row["source_kind"] != "shadow-library" for row in lineage)
    fates = pq.read_table(Path(r["path"]) / "fates.parquet").to_pylist()
    assert any(f["rule"] == "language" and f["detail"] == "de" for f in fates)


def test_builds_are_deterministic(built):
    lib, root, _tok = built
    p = _policy(root, "p5", "")
    a = lib.build("det-a", p)
    b = lib.build("det-b", p)
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    for s in a["shards"]:
        assert (Path(a["path"]) / s["file"]).read_bytes() == (
            Path(b["path"]) / s["file"]
        ).read_bytes()
    assert a["lineage_sha256"] == b["lineage_sha256"] and a["fates_sha256"] == b["fates_sha256"]
    with pytest.raises(Conflict):
        lib.build("det-a", p)


def test_a_build_in_many_small_pages_equals_one_in_a_single_page(
    built, monkeypatch: pytest.MonkeyPatch
):
    """The build streams copies, filter batches, lineage and fates a page at a time (memory is
    a page, not the corpus): tiny pages, batches and row groups give the same corpus."""
    lib, root, _tok = built
    p = _policy(
        root,
        "p-pages",
        '[dedup]\nkeep_order = ["licensed", "public-domain"]\n'
        '[[exclude_works]]\nlist = "optouts"\nmethods = ["exact", "near_duplicate"]\n',
    )
    whole = lib.build("one-page", p)
    for name, value in (("PAGE", 3), ("FILTER_BATCH", 2), ("LINEAGE_ROWS", 1)):
        monkeypatch.setattr(build_run, name, value)
    monkeypatch.setattr(build_run, "FATE_ROWS", 5)
    monkeypatch.setattr(build_run, "DOC_INSERT_ROWS", 3)
    paged = lib.build("many-pages", p)
    assert paged["considered"] == whole["considered"] > 10, whole
    assert whole["documents"] > 1, whole
    assert paged["excluded_by_rule"] == whole["excluded_by_rule"]
    assert any(r.startswith("duplicate:") for r in whole["excluded_by_rule"])
    assert [s["sha256"] for s in paged["shards"]] == [s["sha256"] for s in whole["shards"]]
    for f in ("fates.parquet", "lineage.parquet"):
        a = pq.read_table(Path(whole["path"]) / f)
        b = pq.read_table(Path(paged["path"]) / f)
        assert a.to_pylist() == b.to_pylist()
    assert pq.ParquetFile(Path(paged["path"]) / "fates.parquet").num_row_groups > 1
    assert pq.ParquetFile(Path(paged["path"]) / "lineage.parquet").num_row_groups > 1
    with read_connection(lib.ctx.db) as conn:

        def docs(corpus_id: int) -> list[tuple]:
            q = select(corpus_docs).where(corpus_docs.c.corpus_id == corpus_id)
            return [r[1:] for r in conn.execute(q.order_by(corpus_docs.c.copy_id))]

        ids = dict(conn.execute(select(corpora.c.name, corpora.c.id)).all())
        assert len(docs(ids["many-pages"])) == whole["considered"]
        assert docs(ids["many-pages"]) == docs(ids["one-page"])
    assert lib.verify().ok


def test_policy_errors_are_clear(tmp_path: Path):
    def bad(text: str, match: str) -> None:
        p = tmp_path / "p.toml"
        p.write_text(text)
        with pytest.raises(InvalidInput, match=match):
            load_policy(p)

    bad("datasets = [", "TOML")
    bad('tokenizer = "t.json"', "datasets")
    bad('datasets = ["a@1"]', "tokenizer")
    bad('datasets = ["a@1"]\ntokenizer = "t"\nexclude_kinds = ["pirate"]', "source kind")
    bad('datasets = ["a@1"]\ntokenizer = "t"\nshards = 3', "unknown key")
    bad('datasets = ["a@1"]\ntokenizer = "t"\n[filters]\nmin_wrds = 3', "min_wrds")
    bad(
        'datasets = ["a@1"]\ntokenizer = "t"\n[[exclude_works]]\nlist = "x"\nmethods = ["vibes"]',
        "method",
    )


def test_quality_rules():
    f = Filters()
    prose = " ".join(["the quiet river ran past the old mill at dawn"] * 3) + "\n"
    ok = "\n\n".join(
        f"Paragraph {i}: {prose} and then {i} more things happened." for i in range(20)
    )
    assert quality_rule(ok, f) is None
    assert quality_rule("too short", f) == "quality:min_words"
    assert quality_rule("# " * 200, f) in ("quality:mean_word_length", "quality:symbol_ratio")
    assert quality_rule(" ".join(["12345 67890"] * 100), f) == "quality:digit_ratio"
    repeated = "\n".join(["buy cheap watches online today now"] * 40)
    assert quality_rule(repeated, f) == "quality:duplicate_lines"


def test_build_cli(built):
    lib, root, _tok = built
    p = _policy(root, "p6", "")
    r = run_cli("build", "cli-c", "--policy", str(p), "--json", library=lib.path)
    assert json.loads(r.stdout)["documents"] > 0
    r = run_cli("corpus", "show", "cli-c", library=lib.path)
    assert "by source kind" in r.stdout
    r = run_cli("build", "x", "--policy", str(root / "missing.toml"), library=lib.path, check=False)
    assert r.returncode == 2 and "cannot read policy" in r.stderr


def test_runs_and_trace_forward_and_backward(built):
    lib, root, _tok = built
    r = lib.build("traced", _policy(root, "p7", ""))
    assert len(r["shards"]) >= 2  # 60,000-token shards over the sample books
    lineage = pq.read_table(Path(r["path"]) / "lineage.parquet").to_pylist()
    in_first = next(row for row in lineage if row["shard"] == 0)
    in_other = next(row for row in lineage if row["shard"] != 0)
    run = lib.record_run("m-small", "traced", shards=[0], started="2026-01-01T00:00:00Z")
    assert run["shards"] == [0]
    lib.record_run("m-full", "traced")
    # forward: a copy in shard 0 reached both models, one in a later shard only the full one
    assert lib.trace(copy=in_first["copy_id"])["models"] == ["m-full", "m-small"]
    assert lib.trace(copy=in_other["copy_id"])["models"] == ["m-full"]
    # backward: token shares by source kind add up, and match the lineage of shard 0
    back = lib.trace(model="m-small")
    want = sum(x["token_end"] - x["token_start"] for x in lineage if x["shard"] == 0)
    assert back["tokens"] == want
    assert abs(sum(g["share"] for g in back["by_source_kind"]) - 1) < 1e-3
    full = lib.trace(model="m-full")
    assert full["tokens"] == sum(x["token_end"] - x["token_start"] for x in lineage)
    # dataset and date questions
    ds = lib.trace(dataset="b3@1")
    assert ds["copies"] >= 5 and ds["corpora"]
    assert {m["model"] for m in lib.trace(received_after="2000-01-01")["models"]} >= {
        "m-full",
        "m-small",
    }
    assert lib.trace(received_after="2999-01-01")["models"] == []
    with pytest.raises(InvalidInput):
        lib.record_run("m", "traced", shards=[99])
    with pytest.raises(InvalidInput):
        lib.record_run("m", "traced", started="yesterday")
    with pytest.raises(InvalidInput):
        lib.trace(copy=1, model="m-full")
    assert lib.verify().ok


def test_run_and_trace_cli(built):
    lib, root, _tok = built
    lib.build("cli-t", _policy(root, "p8", ""))
    r = run_cli(
        "run",
        "record",
        "--model",
        "cli-m",
        "--corpus",
        "cli-t",
        "--shards",
        "0",
        "--json",
        library=lib.path,
    )
    assert json.loads(r.stdout)["shards"] == [0]
    r = run_cli("trace", "--model", "cli-m", "--json", library=lib.path)
    assert json.loads(r.stdout)["tokens"] > 0
    r = run_cli("trace", "--model", "cli-m", library=lib.path)
    assert "by source kind" in r.stdout
    r = run_cli("run", "record", "--model", "x", "--corpus", "nope", library=lib.path, check=False)
    assert r.returncode == 2 and "no corpus" in r.stderr
    r = run_cli(
        "run",
        "record",
        "--model",
        "x",
        "--corpus",
        "cli-t",
        "--shards",
        "a",
        library=lib.path,
        check=False,
    )
    assert r.returncode == 2 and "shard numbers" in r.stderr
