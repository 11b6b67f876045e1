"""`tokenizer train`: byte-level BPE from the library's texts, recorded, nothing downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copytrail import Library
from copytrail.build.tokenizer import EOS, file_sha256, load_tokenizer
from copytrail.errors import InvalidInput, NotFound

from .conftest import EXAMPLES, run_cli


def test_train_round_trips_and_is_recorded(lib: Library, tmp_path: Path):
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    out = tmp_path / "tok" / "tokenizer.json"
    r = lib.train_tokenizer(["pg@1"], 1000, out)
    assert r["vocab_size"] == 1000 and r["sha256"] == file_sha256(out)
    tok = load_tokenizer(out)
    assert tok.token_to_id(EOS) == 0
    text = "One morning, when Gregor Samsa woke from troubled dreams — naïve Träume."
    assert tok.decode(tok.encode(text).ids) == text  # byte-level: any text round-trips
    produced = [e for e in lib.events() if e["type"] == "produced"]
    assert produced[-1]["subjects"] == {"tokenizer_sha256": r["sha256"]}
    # the same library state trains the same tokenizer
    again = lib.train_tokenizer(["pg@1"], 1000, tmp_path / "again.json")
    assert again["sha256"] == r["sha256"]
    assert lib.verify().ok


def test_bad_tokenizer_inputs(lib: Library, tmp_path: Path):
    with pytest.raises(InvalidInput):
        lib.train_tokenizer([], 1000, tmp_path / "t.json")
    with pytest.raises(InvalidInput, match="vocab"):
        lib.train_tokenizer(["x@1"], 10, tmp_path / "t.json")
    with pytest.raises(NotFound):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not a tokenizer")
    with pytest.raises(InvalidInput):
        load_tokenizer(bad)


def test_tokenizer_train_cli(tmp_path: Path):
    lib = tmp_path / "lib"
    run_cli("init", library=lib)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    run_cli("ingest", str(EXAMPLES / "11"), "--source", "pg", "--dataset", "a@1", library=lib)
    out = tmp_path / "t.json"
    r = run_cli(
        "tokenizer",
        "train",
        "-d",
        "a@1",
        "--vocab",
        "600",
        "--out",
        str(out),
        "--json",
        library=lib,
    )
    assert json.loads(r.stdout)["vocab_size"] == 600 and out.exists()
    r = run_cli("tokenizer", "train", "-d", "nope@1", "--out", str(out), library=lib, check=False)
    assert r.returncode == 2 and "ls datasets" in r.stderr
