"""Works lists, identifier and metadata matching, and the audit CLI on the shipped samples
(runs without the shared corpus)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from copytrail import Library, samples
from copytrail.audit import metadata as md
from copytrail.errors import InvalidInput

from .conftest import EXAMPLES, run_cli


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["work_id", "title", "authors", "isbn", "asin", "text"])
        w.writerows(rows)
    return path


def test_import_reports_bad_rows_and_reimport_updates(lib: Library, tmp_path: Path):
    (tmp_path / "ref.txt").write_text("A reference text. " * 100)
    f = _write_csv(
        tmp_path / "w.csv",
        [
            ["A1", "Good Book", "Austen, Jane; Brontë, Charlotte", "0-14-143951-3", "", "ref.txt"],
            ["A2", "Bad ISBN", "", "0-14-143951-4", "", ""],
            ["", "No id", "", "", "", ""],
            ["A3", "Missing text", "", "", "", "nowhere.txt"],
            ["A4", "Bad ASIN", "", "", "B0BAD", ""],
            ["A1", "Twice", "", "", "", ""],
            ["A5", "Plain", "Someone", "978-0-306-40615-7", "B00ABCDEFG", ""],
        ],
    )
    r = lib.import_works(f, "list")
    assert r.imported == 2 and len(r.errors) == 5
    assert [(e["line"], e["reason"].split()[0]) for e in r.errors] == [
        (3, "ISBN"),
        (4, "missing"),
        (5, "reference"),
        (6, "ASIN"),
        (7, "work_id"),
    ]
    works = {w["work_id"]: w for w in lib.works("list")}
    assert works["A1"]["isbns"] == ["9780141439518"] and works["A1"]["text_sha256"]
    assert works["A1"]["authors"] == ["Austen, Jane", "Brontë, Charlotte"]
    # The reference file and its text are blobs the library keeps and verify accounts for.
    report = lib.verify()
    assert report.ok and report.counts["orphan_blobs"] == 0
    again = lib.import_works(f, "list")
    assert again.imported == 0 and again.unchanged == 2 and len(lib.works("list")) == 2
    _write_csv(f, [["A5", "Plain, Revised", "Someone", "", "", ""]])
    upd = lib.import_works(f, "list")
    assert upd.updated == 1 and {w["work_id"] for w in lib.works("list")} == {"A1", "A5"}
    assert lib.works("list")[1]["isbns"] == []
    with pytest.raises(InvalidInput, match="works import"):
        lib.works("nope")


def test_jsonl_works_file(lib: Library, tmp_path: Path):
    f = tmp_path / "w.jsonl"
    f.write_text(
        '{"work_id": "J1", "title": "T", "authors": ["A B"], "isbn": ["0306406152"]}\nnot json\n'
    )
    r = lib.import_works(f, "j")
    assert r.imported == 1 and r.errors[0]["line"] == 2


def test_metadata_similarity_is_robust():
    assert md.author_score(["Austen, Jane"], ["Jane Austen"]) == 100
    assert md.title_score("Pride and Prejudice", "PRIDE & PREJUDICE: A Novel") >= 90
    assert (
        md.title_score(
            "Alice's Adventures in Wonderland", "Alice's Adventures in Wonderland, by Lewis Carroll"
        )
        >= 90
    )
    assert md.title_score("Emma", "Persuasion") < 50
    idx = md.TitleIndex()
    idx.add(1, "Pride and Prejudice, by Jane Austen", ["Jane Austen"])
    idx.add(2, "Pride and Prejudice", ["Some Fan"])
    idx.add(3, "Sense and Sensibility", ["Jane Austen"])
    assert [i for i, _ in idx.matches("Pride & Prejudice", ["Austen, Jane"])] == [1]
    assert idx.matches("Pride and Prejudice", []) == []  # a title alone is not enough


def test_audit_by_identifier_metadata_and_content(lib: Library, tmp_path: Path):
    body = samples.gutenberg_body((EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8"))
    inp = tmp_path / "in"
    samples.write(
        inp / "meta.epub",
        samples.make_epub(
            "Metamorphosis", ["Franz Kafka"], ["Short front matter only."], isbn="0-553-21369-5"
        ),
    )
    samples.write(
        inp / "quote.txt",
        (
            "Unrelated words about gardens and weather. " * 200
            + " ".join(body.split()[2000:2300])
            + " The end." * 50
        ).encode(),
    )
    lib.ingest([str(EXAMPLES), str(inp)], source="pg", dataset="d@1")
    f = _write_csv(
        tmp_path / "w.csv",
        [
            [
                "K1",
                "Metamorphosis",
                "Kafka, Franz",
                "9780553213690",
                "",
                str(EXAMPLES / "5200" / "5200.txt"),
            ],
            [
                "K2",
                "Alice's Adventures in Wonderland",
                "Carroll, Lewis",
                "",
                "",
                str(EXAMPLES / "11" / "11-0.txt"),
            ],
            ["K3", "The Trial", "Kafka, Franz", "", "", ""],
        ],
    )
    lib.import_works(f, "l")
    s = lib.audit("l", tmp_path / "out")
    matches = [json.loads(x) for x in (tmp_path / "out" / "matches.jsonl").read_text().splitlines()]
    by = {(m["work_id"], m["path"].split("/")[-1]): m for m in matches}
    assert by[("K1", "meta.epub")]["method"] == "isbn"
    assert by[("K1", "5200.txt")]["method"] == "exact"
    assert by[("K1", "metam10.txt")]["method"] == "near_duplicate"
    assert by[("K1", "quote.txt")]["method"] == "partial"
    assert by[("K1", "quote.txt")]["longest_span_words"] >= 299
    # The German original is a translation, not a copy: no content match.
    assert ("K1", "22367-8.txt") not in by
    assert by[("K2", "alice30.txt")]["method"] == "near_duplicate"
    # Shared Project Gutenberg licence text is not evidence that one book is in another.
    for alice, kafka in (("K2", "5200.txt"), ("K2", "metam10.txt"), ("K1", "11-0.txt")):
        assert (alice, kafka) not in by
    with open(tmp_path / "out" / "works.csv", encoding="utf-8") as fh:
        rows = {r["work_id"]: r for r in csv.DictReader(fh)}
    assert rows["K3"]["status"] == "not_found" and rows["K1"]["status"] == "found"
    assert s["works_found"] == 2


def test_audit_cli_and_where(tmp_path: Path):
    libdir = tmp_path / "lib"
    run_cli("init", library=libdir)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=libdir)
    run_cli("ingest", str(EXAMPLES), "--source", "pg", "--dataset", "pg@1", library=libdir)
    f = _write_csv(
        tmp_path / "w.csv",
        [
            [
                "W1",
                "Alice's Adventures in Wonderland",
                "Carroll, Lewis",
                "",
                "",
                str(EXAMPLES / "11" / "11-0.txt"),
            ],
            ["W2", "Bad", "", "123", "", ""],
        ],
    )
    p = run_cli("works", "import", str(f), "--list", "demo", library=libdir)
    assert "1 imported" in p.stdout and "line 3" in p.stdout
    lists = json.loads(run_cli("works", "ls", "--json", library=libdir).stdout)
    assert lists[0]["name"] == "demo" and lists[0]["works"] == 1
    s = json.loads(
        run_cli(
            "audit",
            "--list",
            "demo",
            "--out",
            str(tmp_path / "o"),
            "--dataset",
            "pg@1",
            "--json",
            library=libdir,
        ).stdout
    )
    assert s["works_found"] == 1 and set(s["files"]) == {
        "works.csv",
        "matches.jsonl",
        "summary.json",
        "report.html",
    }
    w = json.loads(run_cli("where", "W1", "--json", library=libdir).stdout)
    assert {c["path"] for c in w["copies"]} >= {
        "gutenberg/11/11-0.txt",
        "gutenberg/11/old/alice30.txt",
    }
    assert "gutenberg/11/11-0.txt" in run_cli("where", "W1", library=libdir).stdout
    p = run_cli(
        "audit", "--list", "nope", "--out", str(tmp_path / "o2"), library=libdir, check=False
    )
    assert p.returncode == 2 and "works import" in p.stderr
    assert run_cli("verify", library=libdir).returncode == 0
