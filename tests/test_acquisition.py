"""Acquisition records: purchases reconciled with scans, declared purposes, and every use of a copy,
on a real-shaped purchase file (hundreds of lines, typos, ISBN-10 and ISBN-13, bad rows)."""

from __future__ import annotations

import csv
import json
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest

from copytrail import Library
from copytrail.acquisition.purchases import FIELDS as PURCHASE_FIELDS
from copytrail.errors import InvalidInput
from copytrail.ingest.isbn import normalize_isbn

from .conftest import EXAMPLES, run_cli

WORDS = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8-sig").split()
ADJ = ["Silent", "Crimson", "Hidden", "Northern", "Broken", "Golden", "Distant", "Quiet"]
NOUN = ["Harbour", "Orchard", "Lantern", "Meadow", "Citadel", "Voyage", "Garden", "Mirror"]
PLACE = ["Wimbledon", "Kestrel", "Arden", "Calloway", "Penrith", "Rosewood", "Yarrow", "Linden"]


def isbn13(n: int) -> str:
    body = f"978{n:09d}"
    s = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - s % 10) % 10)


def isbn10_of(i13: str) -> str:
    body = i13[3:12]
    s = sum(int(d) * (10 - i) for i, d in enumerate(body))
    c = (11 - s % 11) % 11
    return body + ("X" if c == 10 else str(c))


def typo(title: str, rng: random.Random) -> str:
    """Swap two letters inside the first long word: a keying slip, not another book."""
    words = title.split()
    i = next(n for n, w in enumerate(words) if len(w) > 5)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


@pytest.fixture
def world(tmp_path: Path) -> dict:
    """A purchased-scan source: 300 order lines, 40 scanned copies with planted findings."""
    rng = random.Random(42)
    books = []
    for n in range(300):
        title = f"The {ADJ[n % 8]} {NOUN[(n // 8) % 8]} of {PLACE[(n // 64) % 8]} {n}"
        books.append(
            {"n": n, "title": title, "author": f"Author{n} Surname{n % 17}", "isbn": isbn13(n + 1)}
        )
    lines = []
    for b in books:
        n = b["n"]
        row = {
            "order_id": f"PO-{1000 + n // 5}",
            "vendor": rng.choice(["Bookshop A", "Used Books B", "Wholesale C"]),
            "date": f"2021-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "quantity": 2 if n == 0 else 1,
            "format": "ebook" if n % 50 == 49 else "print",
            "price": f"{5 + n % 20}.99",
            "currency": "USD",
        }
        if n % 3 == 0:  # ISBN-10 on a third of the lines
            row |= {"isbn": isbn10_of(b["isbn"]), "title": b["title"], "author": b["author"]}
        elif n % 3 == 1:
            row |= {"isbn": b["isbn"], "title": b["title"], "author": b["author"]}
        else:  # no ISBN: title (sometimes mistyped) and author only
            title = typo(b["title"], rng) if n % 6 == 5 else b["title"]
            row |= {"isbn": "", "title": title, "author": b["author"]}
        lines.append(row)
    bad = [
        {"order_id": "", "date": "2021-01-01", "isbn": isbn13(999)},
        {"order_id": "PO-9", "date": "2021-01-01", "isbn": "978-0-00-000000-0"},
        {"order_id": "PO-9", "date": "2021-01-01", "isbn": isbn13(998), "quantity": "0"},
        {"order_id": "PO-9", "date": "yesterday", "isbn": isbn13(997)},
        {"order_id": "PO-9", "date": "2021-01-01", "isbn": isbn13(996), "format": "hardback"},
        {"order_id": "PO-9", "date": "2021-01-01", "title": "No Author Given"},
        dict(lines[10]),  # the same order line twice
    ]
    cols = list(PURCHASE_FIELDS)
    purchase_file = tmp_path / "orders.csv"
    with open(purchase_file, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in lines + bad:
            w.writerow({c: row.get(c, "") for c in cols})

    # Scanned copies: books 0..39 (book 0 bought twice, scanned three times), plus one scan of a
    # book nobody bought. ISBN lines in the scan let ingest find ISBNs; the rest match by title.
    scan_dir = tmp_path / "scans"
    scan_dir.mkdir()
    scanned = []
    for n in list(range(40)) + [0, 0]:
        b = books[n]
        k = sum(1 for s in scanned if s["n"] == n)
        body = " ".join(WORDS[300 * n + 50 * k : 300 * n + 50 * k + 400])
        head = f"Title: {b['title']}\nAuthor: {b['author']}\n\n"
        isbn_line = f"\nISBN {b['isbn']}\n" if n % 2 == 0 else ""
        name = f"scan-{n:03d}-{k}.txt"
        (scan_dir / name).write_text(head + isbn_line + body + f"\n[scan {k}]\n", encoding="utf-8")
        scanned.append({"n": n, "path": f"scans/{name}"})
    (scan_dir / "scan-orphan.txt").write_text(
        f"Title: A Book Nobody Bought At All\nAuthor: Nobody Atall\n\nISBN {isbn13(5000)}\n"
        + " ".join(WORDS[20000:20400]),
        encoding="utf-8",
    )
    scanned.append({"n": None, "path": "scans/scan-orphan.txt"})
    fates = {"scans/scan-005-0.txt": "kept", "scans/scan-007-0.txt": "resold"}
    scan_file = tmp_path / "scans.csv"
    with open(scan_file, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["copy", "scan_date", "print_fate", "fate_date"])
        w.writeheader()
        for s in scanned:
            fate = fates.get(s["path"], "destroyed")
            w.writerow(
                {
                    "copy": s["path"],
                    "scan_date": "2022-03-01",
                    "print_fate": fate,
                    "fate_date": "2022-03-02",
                }
            )
        w.writerow({"copy": "scans/not-there.txt", "scan_date": "2022-03-01"})
        w.writerow({"copy": scanned[1]["path"], "scan_date": "2022-03-01", "print_fate": "burnt"})
    lib = Library.init(tmp_path / "lib")
    lib.add_source("bought", kind="purchased-scan", license="first-sale")
    lib.ingest([str(scan_dir)], source="bought", dataset="scans@1")
    yield {
        "lib": lib,
        "purchases": purchase_file,
        "scans": scan_file,
        "books": books,
        "tmp": tmp_path,
    }
    lib.close()


def test_purchases_import_reports_bad_rows_and_reimport_never_duplicates(world):
    lib = world["lib"]
    r = lib.import_purchases(world["purchases"], "bought")
    assert (r.rows, r.imported, r.updated, r.unchanged) == (307, 300, 0, 0)
    reasons = [e["reason"] for e in r.errors]
    assert len(reasons) == 7
    assert any("no order_id" in x for x in reasons)
    assert any("not a valid ISBN" in x for x in reasons)
    assert any("whole number" in x for x in reasons)
    assert any("ISO date" in x for x in reasons)
    assert any("format" in x for x in reasons)
    assert any("cannot be identified" in x for x in reasons)
    assert any("twice" in x for x in reasons)
    assert all(e["line"] > 300 for e in r.errors)  # reported with the file's line numbers
    again = lib.import_purchases(world["purchases"], "bought")
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 300)
    text = world["purchases"].read_text().replace("PO-1000,Bookshop", "PO-1000,Bookshop", 1)
    rows = list(csv.DictReader(text.splitlines()))
    rows[3]["price"] = "123.45"
    with open(world["purchases"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    third = lib.import_purchases(world["purchases"], "bought")
    assert (third.imported, third.updated, third.unchanged) == (0, 1, 299)
    imports = [e for e in lib.events() if e["type"] == "acquired" and "purchases" in e["payload"]]
    assert len(imports) == 3 and imports[0]["payload"]["purchases"]["file_sha256"]
    assert lib.verify().ok


def test_reconciliation_counts_exactly(world):
    lib = world["lib"]
    lib.import_purchases(world["purchases"], "bought")
    s = lib.record_scans(world["scans"], "scans@1")
    assert s.recorded == 43 and len(s.errors) == 2
    assert s.unmatched == 1 and s.matched_isbn + s.matched_title == 42
    assert s.matched_title > 0  # odd-numbered scans carry no ISBN and match by title/author
    out = world["tmp"] / "reconcile"
    r = lib.reconcile("bought", out)
    books = {b["book"]: b for b in r["rows"]}
    first = books[world["books"][0]["isbn"]]
    assert (first["bought_print"], first["scans"]) == (2, 3)
    assert "more scans than copies bought" in first["flags"]
    assert r["findings"] == {
        "scan without purchase": 1,
        "more scans than copies bought": 1,
        "print copy kept after scanning": 1,
        "print copy resold after scanning": 1,
        # 300 bought, 6 of them ebooks (n % 50 == 49), 40 scanned
        "purchased, never scanned": 300 - 40 - 6,
    }
    t = r["totals"]
    assert (t["bought_print"], t["bought_ebook"], t["scans"]) == (301 - 6, 6, 43)
    assert (t["destroyed"], t["kept"], t["resold"]) == (41, 1, 1)
    matched = [
        e for e in lib.events() if e["type"] == "matched" and "reconciliation" in e["payload"]
    ]
    assert matched[-1]["payload"]["reconciliation"]["files"] == r["files"]
    # The HTML report parses, with one row per book and the five findings.
    rows, items = [], []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                rows.append(attrs)
            if tag == "li":
                items.append(tag)

    P().feed((out / "reconciliation.html").read_text())
    assert len(rows) == r["books"] + 1 and len(items) == 5
    assert len(list(csv.DictReader((out / "reconciliation.csv").open()))) == r["books"]
    assert json.loads((out / "reconciliation.json").read_text())["findings"] == r["findings"]


def test_typo_titles_match_their_purchase_line(world):
    lib = world["lib"]
    lib.import_purchases(world["purchases"], "bought")
    lib.record_scans(world["scans"], "scans@1")
    r = lib.reconcile("bought")
    # Book 11: no ISBN on its purchase line, its title mistyped there, and its scan has no ISBN.
    b11 = world["books"][11]
    row = next(x for x in r["rows"] if x["author"] == b11["author"])
    assert row["scans"] == 1 and row["bought_print"] == 1 and not row["flags"]


def test_purposes_uses_and_retention_by_purpose(world):
    lib = world["lib"]
    doc = world["tmp"] / "approval.pdf"
    doc.write_bytes(b"%PDF-1.4 internal approval: scans are for model training only")
    lib.declare_purpose("source", "bought", "research-library", effective="2022-01-01")
    p = lib.declare_purpose(
        "dataset", "scans@1", "model-training", document=doc, effective="2022-06-01"
    )
    assert p["document_sha256"] and lib.store.get(p["document_sha256"]).startswith(b"%PDF")
    with pytest.raises(InvalidInput, match="text"):
        lib.declare_purpose("source", "bought", "other")
    with pytest.raises(InvalidInput, match="unknown purpose"):
        lib.declare_purpose("source", "bought", "hoarding")
    current = {(x["scope"], x["ref"]): x["purpose"] for x in lib.purposes()}
    assert current == {
        ("source", "bought"): "research-library",
        ("dataset", "scans@1"): "model-training",
    }
    assert len(lib.purposes(history=True)) == 2
    assert [e["type"] for e in lib.events()][-2:] == ["declared", "declared"]
    u = lib.uses(dataset="scans@1")
    assert u["copies"] == 43 and u["included_in"] == [] and u["models"] == []
    assert u["kept"][0]["purpose"] == "model-training"
    report = lib.retention_report(as_of="2030-01-01")
    by = {g["purpose"]: g for g in report["never_included_by_purpose"]}
    assert by["model-training"]["copies"] == 43 and by["model-training"]["kept_days"] > 365
    one = lib.uses(copy=next(iter(lib.copies()))["id"])
    assert one["copies"] == 1 and one["kept"][0]["copies"] == 1
    assert lib.verify().ok


def test_cli(world):
    lib = world["lib"]
    path = lib.path
    r = run_cli("purchases", "import", str(world["purchases"]), "--source", "bought", library=path)
    assert "300 imported" in r.stdout and "7 refused" in r.stdout
    r = run_cli(
        "scans", "record", str(world["scans"]), "--dataset", "scans@1", "--json", library=path
    )
    assert json.loads(r.stdout)["recorded"] == 43
    r = run_cli("reconcile", "--source", "bought", "--out", str(world["tmp"] / "rep"), library=path)
    assert (
        "scan without purchase 1" in r.stdout
        and (world["tmp"] / "rep" / "reconciliation.html").exists()
    )
    r = run_cli(
        "purpose", "set", "--dataset", "scans@1", "--purpose", "model-training", library=path
    )
    assert "model-training" in r.stdout
    r = run_cli("uses", "--dataset", "scans@1", library=path)
    assert "43 copies" in r.stdout
    bad = run_cli("purpose", "set", "--purpose", "evaluation", library=path, check=False)
    assert bad.returncode == 2 and "name one" in bad.stderr
    assert normalize_isbn(isbn10_of(isbn13(7))) == isbn13(7)  # the generator's ISBN-10s are valid


def test_purchases_from_json_lines(world):
    lib = world["lib"]
    f = world["tmp"] / "orders.jsonl"
    f.write_text(
        json.dumps({"order_id": "J-1", "date": "2024-02-02", "isbn": isbn13(1), "quantity": 3})
        + "\n"
        + json.dumps({"order_id": "J-1", "date": "2024-02-02", "title": "T", "author": "A"})
        + "\n{not json\n"
        + json.dumps(["a", "list"])
        + "\n"
    )
    r = lib.import_purchases(f, "bought")
    assert (r.rows, r.imported) == (4, 2)
    assert [e["line"] for e in r.errors] == [3, 4]
