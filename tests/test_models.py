"""Copy -> model -> output, on a real model trained here on a CPU: a tiny GPT-style model learns
excerpts of two books by heart; `trace --model` names exactly the copies it read; `probe` finds
those works memorized and an unseen control not; greedy generation from a trained prefix
reproduces the book verbatim without the guard and stops short of `min_words` with it; `check`
flags the unguarded output with the work named."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from copytrail import Library
from copytrail.fingerprint.normalize import tokens

from .conftest import EXAMPLES, run_cli

torch = pytest.importorskip("torch", reason="make test installs torch (CPU) and transformers")
pytest.importorskip("transformers", reason="make test installs transformers")

BOOKS = {
    "ALICE": ("Alice's Adventures in Wonderland", EXAMPLES / "11" / "11-0.txt"),
    "META": ("Metamorphosis", EXAMPLES / "5200" / "5200.txt"),
    "VERW": ("Die Verwandlung", EXAMPLES / "22367" / "22367-8.txt"),
}
MIN_WORDS = 20


def _excerpt(path: Path, words: int = 800) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    start = raw.find("***", raw.find("START OF"))
    return " ".join(raw[start + 3 :].split()[500 : 500 + words])


def _longest_run(output: str, source: str) -> int:
    a, b = tokens(output)[0], tokens(source)[0]
    return difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match().size


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    texts = {k: _excerpt(p) for k, (_t, p) in BOOKS.items()}
    src = root / "in"
    src.mkdir()
    rows = ["work_id,title,authors,isbn,asin,text"]
    for k, text in texts.items():
        (src / f"{k.lower()}.txt").write_text(text, encoding="utf-8")
        rows.append(f'{k},"{BOOKS[k][0]}",,,,{k.lower()}.txt')
    (src / "works.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    lib = Library.init(root / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(src / "alice.txt"), str(src / "meta.txt")], source="pg", dataset="train@1")
    lib.ingest([str(src / "verw.txt")], source="pg", dataset="held@1")
    lib.import_works(src / "works.csv", "books")
    lib.audit("books", root / "audit", min_words=50)
    lib.train_tokenizer(["train@1", "held@1"], 800, root / "lib" / "tok.json")
    (root / "lib" / "p.toml").write_text(
        'datasets = ["train@1"]\ntokenizer = "tok.json"\nshard_tokens = 100000\n'
    )
    lib.build("c1", root / "lib" / "p.toml")
    r = lib.train("tiny-1", "c1", root / "model", config="tiny", steps=800, seq_len=256, batch=4)
    lib.guard_index("books", lists=["books"])
    yield lib, root, texts, r
    lib.close()


def test_the_run_records_exactly_what_it_read(trained):
    lib, root, _texts, r = trained
    assert r["final_loss"] < 0.2 < r["first_loss"]
    info = json.loads((root / "model" / "copytrail-run.json").read_text())
    assert info["model_sha256"] == r["model_sha256"]
    t = lib.trace(model="tiny-1")
    train_ids = sorted(c["id"] for c in lib.copies("train@1"))
    assert sorted(c["copy_id"] for c in t["copies_read"]) == train_ids
    for c in t["copies_read"]:
        assert c["tokens_seen"] == c["tokens"] and c["max_times"] >= 5
    held = next(iter(lib.copies("held@1")))["id"]
    assert held not in {c["copy_id"] for c in t["copies_read"]}
    run = next(e for e in lib.events() if e["type"] == "trained")
    assert run["payload"]["model_sha256"] == r["model_sha256"]
    assert run["payload"]["tokens_read"] == r["tokens_read"] > 0
    assert lib.verify().ok


def test_probe_finds_the_trained_work_and_not_the_control(trained):
    lib, root, _texts, _r = trained
    rep = lib.probe(root / "model", root / "probe", work="ALICE", list_name="books", controls=2,
                    stride=25, greedy=6)  # fmt: skip
    probed = next(x for x in rep["results"] if x["role"] == "probed")
    controls = [x for x in rep["results"] if x["role"] == "control"]
    assert probed["pz_share"] > 0.5 and probed["greedy_exact_rate"] > 0.5
    assert probed["longest_run_words"] >= 30
    assert controls and "VERW" in " ".join(c["label"] for c in controls)
    assert all(c["pz_share"] < 0.05 for c in controls if "pz_share" in c)
    assert rep["gap"]["pz_share"]["gap"] > 0.5
    assert (root / "probe" / "report.html").read_text().count("<tr>") >= 3
    ev = next(e for e in lib.events() if e["type"] == "probed")
    assert ev["payload"]["model_sha256"] == rep["model_sha256"]
    # Resumable: a second run reads the cached figures and gives the same report.
    again = lib.probe(root / "model", root / "probe", work="ALICE", list_name="books", controls=2,
                      stride=25, greedy=6)  # fmt: skip
    assert again["results"] == rep["results"]


def test_guard_stops_verbatim_generation_and_check_flags_the_unguarded(trained):
    lib, root, texts, _r = trained
    words = texts["ALICE"].split()
    prompt = " ".join(words[:40])  # the start of the document, tokenized as in training
    free = lib.guarded_generate(root / "model", prompt, None, max_new_tokens=120)
    assert _longest_run(free["text"], texts["ALICE"]) >= 50
    guarded = lib.guarded_generate(root / "model", prompt, "books", MIN_WORDS, 120)
    assert _longest_run(guarded["text"], texts["ALICE"]) < MIN_WORDS
    assert guarded["guard"]["masked"] > 0
    flagged = lib.check(free["text"], "books", min_words=MIN_WORDS)
    assert flagged["flagged"]
    named = {w["id"] for s in flagged["spans"] for src in s["sources"] for w in src["works"]}
    assert "ALICE" in named
    assert not lib.check(guarded["text"], "books", min_words=MIN_WORDS)["flagged"]


def test_cli_train_probe_generate(trained, tmp_path):
    lib, root, _texts, _r = trained
    r = json.loads(run_cli("train", "--model", "tiny-cli", "--corpus", "c1", "--out",
                           str(tmp_path / "m"), "--steps", "5", "--json",
                           library=lib.path).stdout)  # fmt: skip
    assert r["steps"] == 5 and (tmp_path / "m" / "model.safetensors").exists()
    p = run_cli("generate", "--model", str(root / "model"), "--prompt", "Alice was",
                "--guard", "books", "--min-words", str(MIN_WORDS), "--max-tokens", "20",
                library=lib.path)  # fmt: skip
    assert "ms per token" in p.stderr
    bad = run_cli("train", "--model", "x", "--corpus", "c1", "--out", str(tmp_path / "m"),
                  library=lib.path, check=False)  # fmt: skip
    assert bad.returncode == 2 and "not empty" in bad.stderr


def test_fine_tune_from_a_model_folder(trained, tmp_path):
    """--init: fine-tuning starts from the saved weights (its tokenizer is kept), and the run
    is recorded like any other."""
    lib, root, _texts, r = trained
    ft = lib.train("tiny-ft", "c1", tmp_path / "ft", config=None, init=root / "model", steps=3,
                   seq_len=64, batch=2)  # fmt: skip
    assert ft["model_sha256"] != r["model_sha256"]
    assert ft["first_loss"] < 1.0  # it starts from the memorized weights, not from scratch
    assert (tmp_path / "ft" / "tokenizer.json").exists()
    assert {c["copy_id"] for c in lib.trace(model="tiny-ft")["copies_read"]}
    with pytest.raises(Exception, match="--config tiny|--init"):
        lib.train("x", "c1", tmp_path / "x", config="tiny", init=root / "model")
