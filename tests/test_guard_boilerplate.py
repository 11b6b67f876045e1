"""The guard tells boilerplate (licences, notices, passages many indexed texts share) from
protected text, with the same boilerplate set as audit and build."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from copytrail import Library
from copytrail.fingerprint.boilerplate import SHIPPED_DIR, boilerplate_set, passage_hashes
from copytrail.fingerprint.normalize import tokens

from .conftest import EXAMPLES, run_cli

LICENCE = (SHIPPED_DIR / "pg-2010s.txt").read_text(encoding="utf-8")
METAMORPHOSIS = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8-sig")


def _words(text: str, first: int, n: int) -> str:
    _w, starts, ends = tokens(text)
    return text[starts[first] : ends[first + n - 1]]


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Library:
    lib = Library.init(tmp_path_factory.mktemp("bp") / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    lib.guard_index("books", all_datasets=True)
    yield lib
    lib.close()


def test_licence_text_is_not_flagged_and_is_named_when_asked(books: Library):
    licence = _words(LICENCE, 300, 400)
    r = books.check(licence, "books", min_words=50)
    assert not r["flagged"] and r["spans"] == [] and "boilerplate" not in r
    r = books.check(licence, "books", min_words=50, include_boilerplate=True)
    assert not r["flagged"] and r["boilerplate"]
    assert all(b["boilerplate"] and "pg-2010s" in b["which"] for b in r["boilerplate"])


def test_protected_text_next_to_licence_is_flagged_with_its_own_offsets(books: Library):
    licence = _words(LICENCE, 300, 400)
    passage = _words(METAMORPHOSIS, 3000, 60)
    text = f"{licence} {passage} {licence}"
    r = books.check(text, "books", min_words=50)
    assert r["flagged"] and len(r["spans"]) == 1
    span = r["spans"][0]
    assert (span["start"], span["end"], span["words"]) == (
        len(licence) + 1,
        len(licence) + 1 + len(passage),
        60,
    )


def test_a_span_running_into_the_licence_is_trimmed_to_the_book(books: Library):
    """In the indexed book the last words of the story run straight into the licence: a check of
    that stretch flags the story's words only."""
    end = METAMORPHOSIS.index("*** END OF")
    tail = METAMORPHOSIS[end - 700 : end]
    tail = tail[tail.index(" ") + 1 :]
    after = METAMORPHOSIS[end : end + 6000]
    r = books.check(tail + after, "books", min_words=50, include_boilerplate=True)
    assert r["flagged"] and len(r["spans"]) == 1
    span = r["spans"][0]
    assert span["start"] == 0
    # The story ends before the footer ("End of the Project Gutenberg EBook of ..."), which is
    # boilerplate like the licence after it.
    story = tail[: tail.index("End of the Project Gutenberg")].rstrip()
    # Marks are word 10-grams: at most 9 words where boilerplate begins may stay unmarked.
    assert span["end"] >= len(story)
    assert len(tokens(tail[len(story) : span["end"]])[0]) < 10
    assert r["boilerplate"] and all(b["start"] >= len(story) for b in r["boilerplate"])


def test_a_quotation_in_two_works_is_flagged_unless_it_passes_n(tmp_path: Path):
    quote = _words(METAMORPHOSIS, 5000, 80)
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    d = tmp_path / "in"
    d.mkdir()
    for n, pgid in enumerate(("11", "22367")):
        body = next((EXAMPLES / pgid).glob("*.txt")).read_text("latin-1")[3000:23_000]
        (d / f"anthology-{n}.txt").write_text(f"{body}\n\n{quote}\n\n{body[::-1]}")
    lib.ingest([str(d)], source="pg", dataset="q@1")
    lib.guard_index("q", all_datasets=True)  # default: a passage in over 20 texts
    assert lib.check(quote, "q", min_words=50)["flagged"]
    lib.guard_index("q", boilerplate_texts=1)  # now two texts are "many"
    r = lib.check(quote, "q", min_words=50, include_boilerplate=True)
    assert not r["flagged"] and r["boilerplate"]
    assert "more than 1 indexed texts" in r["boilerplate"][0]["which"][0]
    assert lib.guards()[0]["boilerplate"]["max_texts"] == 1
    lib.guard_index("q")  # a refresh keeps the setting
    assert lib.guards()[0]["boilerplate"]["max_texts"] == 1
    lib.close()


def test_declared_boilerplate_is_shared_by_guard_and_audit(tmp_path: Path):
    page = (
        "Copyright 2031 Example Press Limited. All rights reserved. No part of this "
        "publication may be reproduced, stored in a retrieval system or transmitted in any "
        "form or by any means without the prior written permission of the publisher, nor be "
        "otherwise circulated in any form of binding or cover other than that in which it is "
        "published and without a similar condition being imposed on the subsequent purchaser. "
        "Printed and bound by the Example Press in a town that does not exist at all."
    )
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    d = tmp_path / "in"
    d.mkdir()
    for n in range(3):
        own = _words(METAMORPHOSIS, 1000 + 900 * n, 600)
        (d / f"book-{n}.txt").write_text(f"{page}\n\n{own}")
    lib.ingest([str(d)], source="pg", dataset="p@1")
    lib.guard_index("p", all_datasets=True)
    assert lib.check(page, "p", min_words=50)["flagged"]  # not yet known
    (tmp_path / "page.txt").write_text(page)
    added = lib.add_boilerplate(tmp_path / "page.txt", name="example-press-copyright")
    assert [e for e in lib.events() if e["type"] == "declared"][0]["seq"] == added["event_seq"]
    assert "example-press-copyright" in [b["name"] for b in lib.boilerplate()]
    # The audit's known set is the same set.
    known = boilerplate_set(lib.ctx).hashes
    assert np.isin(passage_hashes(page), known).all()
    lib.guard_index("p")
    r = lib.check(page, "p", min_words=50, include_boilerplate=True)
    assert not r["flagged"] and r["boilerplate"][0]["which"] == ["example-press-copyright"]
    assert lib.verify().ok
    lib.close()


def test_cli_and_http(books: Library, tmp_path: Path):
    (tmp_path / "lic.txt").write_text(_words(LICENCE, 300, 400))
    r = run_cli(
        "check", str(tmp_path / "lic.txt"), "--guard", "books", "--json", library=books.path
    )
    assert r.returncode == 0 and not json.loads(r.stdout)["flagged"]
    r = run_cli(
        "check",
        str(tmp_path / "lic.txt"),
        "--guard",
        "books",
        "--include-boilerplate",
        library=books.path,
    )
    assert "boilerplate (not flagged)" in r.stdout and "pg-2010s" in r.stdout
    ls = json.loads(run_cli("boilerplate", "ls", "--json", library=books.path).stdout)
    assert {"pg-2010s", "pg-2007"} <= {b["name"] for b in ls}
    bad = run_cli(
        "boilerplate", "add", str(tmp_path / "missing.txt"), library=books.path, check=False
    )
    assert bad.returncode == 2 and "cannot read" in bad.stderr

    from copytrail.server.app import create_app

    key = books.add_key("bp-http", "checker")["key"]
    client = TestClient(create_app(books, default_guard="books"))
    body = {"text": _words(LICENCE, 300, 400), "include_boilerplate": True}
    got = client.post("/v1/check", json=body, headers={"X-API-Key": key}).json()
    assert not got["flagged"] and got["boilerplate"][0]["boilerplate"] is True
    with client.websocket_connect("/v1/check/stream", headers={"X-API-Key": key}) as ws:
        ws.send_text(json.dumps({"min_words": 50, "include_boilerplate": True}))
        assert ws.receive_json()["ready"]
        ws.send_text(json.dumps({"text": body["text"], "end": True}))
        final = ws.receive_json()
        assert not final["flagged"] and final["boilerplate"]


# ---- on the shared Project Gutenberg books ------------------------------------------------------
def _manifest(corpus: Path) -> dict[str, Path]:
    with open(corpus / "MANIFEST.csv", encoding="utf-8") as f:
        return {r["pgid"]: corpus / r["file"] for r in csv.DictReader(f) if r["kind"] == "main_txt"}


def test_clean_windows_with_licence_text_are_not_flagged(corpus: Path, tmp_path: Path):
    books = _manifest(corpus)
    ids = sorted(books)
    rng = random.Random(7)
    rng.shuffle(ids)
    indexed, outside = ids[:30], ids[30:60]
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(books[i]) for i in indexed], source="pg", dataset="pg@1")
    lib.guard_index("pg", all_datasets=True)
    flagged, licence_windows = [], 0
    for pgid in outside:
        text = books[pgid].read_text(encoding="utf-8-sig", errors="replace")
        tail = text[-30_000:]  # the licence lives at the end of every book
        for start in range(0, len(tail) - 2000, 6000):
            window = tail[start : start + 2000]
            licence_windows += "Project Gutenberg" in window
            if lib.check(window, "pg", min_words=50, evidence=False)["flagged"]:
                flagged.append((pgid, start))
    assert licence_windows > 30
    assert not flagged, flagged
    # ... while a 60-word passage of an indexed book next to licence text is still caught.
    book = books[indexed[0]].read_text(encoding="utf-8-sig", errors="replace")
    n = len(tokens(book)[0])
    passage = _words(book, n // 3, 60)
    licence = _words(LICENCE, 100, 300)
    r = lib.check(f"{licence}\n{passage}\n{licence}", "pg", min_words=50)
    assert r["flagged"] and r["spans"][0]["start"] == len(licence) + 1
    assert r["spans"][0]["end"] == len(licence) + 1 + len(passage)
    lib.close()
