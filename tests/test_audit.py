"""Audit accuracy on real text: a labelled test set from the shared Gutenberg corpus.

Whole copies are real older editions, HTML and PDF editions of listed books; the generated
variants are excerpts of 200-1000 words inside unrelated books, OCR-like character noise,
re-wrapped and hyphenated lines, changed front matter, and several works in one file. Negatives
are other books by the same authors and books absent from the library. Goals asserted: every whole
copy and every excerpt of 200+ words found, nothing found that is not there, spans within a few
characters of the truth.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from copytrail import Library
from copytrail.fingerprint.normalize import tokens
from copytrail.samples import gutenberg_body

from .conftest import pooled

LISTED_WITH_EDITIONS = ["1342", "11", "98", "1661"]  # real editions ingested
LISTED_GENERATED = ["2701", "74", "76", "1260", "174", "345"]  # only generated variants ingested
NEGATIVES = ["158", "161", "105", "1400", "2600"]  # listed, absent (same authors / not there)
FILLER = ["16", "36", "43", "46", "55", "120", "121", "135", "219", "215", "236", "1232"]


def manifest(corpus: Path) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    with open(corpus / "MANIFEST.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["pgid"], {}).setdefault(row["kind"], []).append(row["file"])
            out[row["pgid"]]["title"] = [row["title"]]
            out[row["pgid"]]["author"] = [row["author"]]
    return out


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def excerpt(text: str, start_word: int, n: int) -> tuple[int, int]:
    """Character range of n words of `text` starting at word `start_word`."""
    _w, starts, ends = tokens(text)
    return starts[start_word], ends[start_word + n - 1]


def ocr_noise(text: str, rate: float, seed: int) -> str:
    rng = random.Random(seed)
    swaps = {"e": "c", "l": "1", "o": "0", "m": "rn", "h": "b", "i": "l"}
    return "".join(swaps[c] if c in swaps and rng.random() < rate else c for c in text)


def rewrap_hyphenate(text: str, width: int = 52) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width and len(w) > 6 and cur:
            cut = len(w) // 2  # split the word across the line end with a hyphen
            lines.append(f"{cur} {w[:cut]}-")
            cur = w[cut:]
        elif len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def audited(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    m = manifest(corpus)
    work_dir = tmp_path_factory.mktemp("audit")
    lib = Library.init(work_dir / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.add_source("shadow", kind="shadow-library")
    main = {pg: corpus / m[pg]["main_txt"][0] for pg in m if "main_txt" in m[pg]}
    bodies = {
        pg: gutenberg_body(read_text(main[pg]))
        for pg in LISTED_WITH_EDITIONS + LISTED_GENERATED + FILLER
    }

    editions = work_dir / "editions"
    truth_whole: dict[str, set[str]] = {}
    for pg in LISTED_WITH_EDITIONS:
        for kind in ("old_txt", "html", "pdf"):
            for rel in m[pg].get(kind, []):
                dst = editions / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes((corpus / rel).read_bytes())
                truth_whole.setdefault(pg, set()).add(f"editions/{rel}")
    # One byte-identical copy of a listed book.
    (editions / "exact-1342.txt").write_bytes(main["1342"].read_bytes())
    truth_whole["1342"].add("editions/exact-1342.txt")
    for pg in FILLER:
        dst = editions / "filler" / main[pg].name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(main[pg].read_bytes())

    gen = work_dir / "generated"
    gen.mkdir()
    excerpts = []  # (path, work, work_start, work_end, copy_start, copy_end, words)
    hosts = [bodies[pg] for pg in FILLER]
    k = 0
    for pg in ["2701", "1342", "98", "174"]:
        text = read_text(main[pg])
        n_words = len(tokens(text)[0])
        for n in (200, 500, 1000):
            k += 1
            s, e = excerpt(text, n_words // 3 + 1000 * k, n)
            host = hosts[k % len(hosts)]
            cut = len(host) // 2
            cut = host.index("\n", cut)
            doc = host[:cut] + "\n\n" + text[s:e] + "\n\n" + host[cut:]
            name = f"excerpt-{pg}-{n}.txt"
            (gen / name).write_text(doc, encoding="utf-8")
            excerpts.append((f"generated/{name}", pg, s, e, cut + 2, cut + 2 + (e - s), n))
    (gen / "ocr-74.txt").write_text(ocr_noise(bodies["74"], 0.01, 1), encoding="utf-8")
    (gen / "rewrapped-76.txt").write_text(rewrap_hyphenate(bodies["76"]), encoding="utf-8")
    (gen / "frontmatter-1260.txt").write_text(
        "JANE EYRE\nAn Autobiography\n\nA New Illustrated Edition\nPublished by Example House\n"
        "All rights reserved. Printed in 2009.\n\n"
        + bodies["1260"]
        + "\n\nAbout the publisher...\n",
        encoding="utf-8",
    )
    anthology = "\n\n".join(
        f"{title}\n\n" + " ".join(bodies[pg].split()[3000:4500])
        for pg, title in (("174", "I. From Dorian Gray"), ("345", "II. From Dracula"))
    )
    (gen / "anthology.txt").write_text(anthology, encoding="utf-8")
    truth_whole.update(
        {
            "74": {"generated/ocr-74.txt"},
            "76": {"generated/rewrapped-76.txt"},
            "1260": {"generated/frontmatter-1260.txt"},
        }
    )

    pooled(lib).ingest([str(editions)], source="pg", dataset="editions@1")
    pooled(lib).ingest([str(gen)], source="shadow", dataset="generated@1")

    works_csv = work_dir / "works.csv"
    with open(works_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["work_id", "title", "authors", "isbn", "asin", "text"])
        for pg in LISTED_WITH_EDITIONS + LISTED_GENERATED + NEGATIVES:
            w.writerow([f"PG{pg}", m[pg]["title"][0], m[pg]["author"][0], "", "", str(main[pg])])
    imported = lib.import_works(works_csv, "class")
    assert imported.imported == len(LISTED_WITH_EDITIONS + LISTED_GENERATED + NEGATIVES)
    summary = pooled(lib).audit("class", work_dir / "out")
    out = work_dir / "out"
    matches = [json.loads(x) for x in (out / "matches.jsonl").read_text().splitlines()]
    with open(out / "works.csv", encoding="utf-8") as f:
        rows = {r["work_id"]: r for r in csv.DictReader(f)}
    yield {
        "lib": lib,
        "summary": summary,
        "matches": matches,
        "rows": rows,
        "out": out,
        "truth_whole": truth_whole,
        "excerpts": excerpts,
        "main": main,
    }
    lib.close()


def _content(matches: list[dict], work: str, path: str) -> dict | None:
    for mt in matches:
        if (
            mt["work_id"] == f"PG{work}"
            and mt["path"] == path
            and mt["method"] in ("exact", "near_duplicate", "partial")
        ):
            return mt
    return None


def test_every_whole_copy_is_found(audited):
    missing = [
        (w, p)
        for w, paths in audited["truth_whole"].items()
        for p in paths
        if _content(audited["matches"], w, p) is None
    ]
    assert not missing
    exact = _content(audited["matches"], "1342", "editions/exact-1342.txt")
    assert exact["method"] == "exact" and exact["coverage"] == 1.0
    ocr = _content(audited["matches"], "74", "generated/ocr-74.txt")
    assert ocr["method"] == "near_duplicate" and ocr["coverage"] > 0.8


def test_every_excerpt_is_found_with_correct_spans(audited):
    for path, work, ws, we, cs, ce, n in audited["excerpts"]:
        mt = _content(audited["matches"], work, path)
        assert mt is not None, f"{n}-word excerpt of {work} in {path} not found"
        assert mt["method"] == "partial" and mt["longest_span_words"] >= n - 2
        span = max(mt["spans"], key=lambda s: s["words"])
        assert abs(span["work_start"] - ws) <= 3 and abs(span["work_end"] - we) <= 3, (span, ws, we)
        assert abs(span["copy_start"] - cs) <= 3 and abs(span["copy_end"] - ce) <= 3, (span, cs, ce)


def test_several_works_in_one_file(audited):
    for work in ("174", "345"):
        mt = _content(audited["matches"], work, "generated/anthology.txt")
        assert mt is not None and mt["method"] == "partial" and mt["longest_span_words"] >= 1400


def test_no_false_positives(audited):
    rows = audited["rows"]
    for pg in NEGATIVES:
        assert rows[f"PG{pg}"]["status"] == "not_found", rows[f"PG{pg}"]
    truth = {(f"PG{w}", p) for w, ps in audited["truth_whole"].items() for p in ps}
    truth |= {(f"PG{w}", p) for p, w, *_ in audited["excerpts"]}
    truth |= {("PG174", "generated/anthology.txt"), ("PG345", "generated/anthology.txt")}
    for mt in audited["matches"]:
        if mt["method"] in ("exact", "near_duplicate", "partial"):
            assert (mt["work_id"], mt["path"]) in truth, mt["work_id"] + " " + mt["path"]
    # Filler books are in the library but not on the list; works not in the library are absent.
    assert rows["PG2600"]["copies"] == "0"


def test_reports_and_ledger(audited):
    out, summary, lib = audited["out"], audited["summary"], audited["lib"]
    for name in ("works.csv", "matches.jsonl", "summary.json", "report.html"):
        assert (out / name).stat().st_size > 0
    s = json.loads((out / "summary.json").read_text())
    assert s["works_found"] == len(LISTED_WITH_EDITIONS + LISTED_GENERATED)
    assert s["by_dataset"]["generated@1"]["works_present"] >= 7
    assert s["by_source_kind"]["shadow-library"]["works_present"] >= 7
    page = (out / "report.html").read_text()
    assert "<svg" in page and "PG1342" in page and "class='pair'" in page
    import hashlib

    evs = [e for e in lib.events() if e["type"] in ("matched", "produced")]
    produced = evs[-1]["payload"]["files"]
    for name, sha in produced.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha
    assert evs[-2]["payload"]["works_found"] == summary["works_found"]
    assert lib.verify().ok


def test_where_lists_every_copy_of_one_work(audited):
    lib = audited["lib"]
    r = lib.where("PG1342")
    paths = {c["path"] for c in r["copies"] if c["method"] != "metadata"}
    expected = audited["truth_whole"]["1342"] | {
        p for p, w, *_ in audited["excerpts"] if w == "1342"
    }
    assert paths == expected
    assert all(c["dataset"] in ("editions@1", "generated@1") for c in r["copies"])
