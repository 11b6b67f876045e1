"""Guard: suffix-array index, verbatim check (one-shot and streamed), refresh, excerpt search.

Accuracy on real books (shared Gutenberg corpus): a 60-word passage buried in new text is found
with exact offsets on both sides, also after case and line-break changes; a book that is not
indexed gives no 50-word span; a passage with one word in 20 changed gives no 50-word span but
its longest runs are reported. A property test compares the check with brute force.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrail import Library
from copytrail.fingerprint.hashing import word_ids
from copytrail.fingerprint.normalize import tokens
from copytrail.guard.check import Check
from copytrail.guard.index import GuardIndex, index_text, refresh
from copytrail.guard.segment import Segment, build_segment

from .conftest import EXAMPLES, pooled

INDEXED = ["1342", "11", "98", "1661", "2701"]  # Austen, Carroll, Dickens, Doyle, Melville
NOT_INDEXED = "1400"  # Great Expectations: same author as an indexed book, never indexed
NEW_TEXT = (
    "Our quarterly planning memo covers hiring, the office move and a budget for the new "
    "espresso machine, which the committee approved after a long and heated discussion. "
)


def norm(s: str) -> list[str]:
    return tokens(s)[0]


def main_file(corpus: Path, pgid: str) -> Path:
    with open(corpus / "MANIFEST.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["pgid"] == pgid and row["kind"] == "main_txt":
                return corpus / row["file"]
    raise LookupError(pgid)


def book_text(corpus: Path, pgid: str) -> str:
    return main_file(corpus, pgid).read_text(encoding="utf-8-sig")


def passage(text: str, first_word: int, n: int) -> tuple[int, int]:
    _w, starts, ends = tokens(text)
    return starts[first_word], ends[first_word + n - 1]


# ---- the index and check without a library ---------------------------------------------------
def _docs(texts: list[str]) -> dict[str, str]:
    return {f"{i:064x}": t for i, t in enumerate(texts)}


def _reader(docs: dict[str, str]):
    def read(shas: list[str]):
        return (index_text(sha, docs[sha]) for sha in shas)

    return read


def _guard(tmp_path: Path, docs: dict[str, str]) -> GuardIndex:
    refresh(tmp_path / "g", {}, docs, _reader(docs))
    return GuardIndex.open(tmp_path / "g")


def _brute_runs(query: list[str], doc: list[str], n: int) -> set[tuple[int, int]]:
    """Maximal (query start, query end) stretches of at least n words that occur in doc."""
    out = set()
    for i in range(len(query)):
        for j in range(len(doc)):
            # start only where the run cannot be extended to the left
            if query[i] != doc[j] or (i > 0 and j > 0 and query[i - 1] == doc[j - 1]):
                continue
            k = 0
            while i + k < len(query) and j + k < len(doc) and query[i + k] == doc[j + k]:
                k += 1
            if k >= n:
                out.add((i, i + k))
    return out


@settings(max_examples=60, deadline=None)
@given(
    doc_words=st.lists(st.integers(0, 5), min_size=1, max_size=120),
    query_words=st.lists(st.integers(0, 5), min_size=1, max_size=80),
    min_words=st.integers(1, 12),
)
def test_check_equals_brute_force(tmp_path_factory, doc_words, query_words, min_words):
    """Over a tiny alphabet (so repeats abound), the check finds exactly the maximal shared runs
    of min_words or more that brute force finds."""
    vocab = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
    doc = [vocab[w] for w in doc_words]
    query = [vocab[w] for w in query_words]
    guard = _guard(tmp_path_factory.mktemp("g"), _docs([" ".join(doc)]))
    c = guard.check(min_words)
    c.feed(" ".join(query))
    c.finish()
    got = {(r.q_start, r.q_end) for r in c.spans()}
    assert got == _brute_runs(query, doc, min_words)


def test_sa_range_counts_every_occurrence(tmp_path):
    rng = random.Random(3)
    words = [rng.choice(["a", "b", "c"]) for _ in range(3000)]
    seg = Segment.load(build_segment(tmp_path, [index_text("0" * 64, " ".join(words))]))
    for k in (1, 2, 4, 7):
        for start in range(0, 2900, 97):
            pat = words[start : start + k]
            ids = seg.to_ids(word_ids([w.encode() for w in pat]))
            lo, hi = seg.sa_range(ids)
            truth = sum(words[i : i + k] == pat for i in range(len(words) - k + 1))
            assert hi - lo == truth


def test_unknown_words_and_empty_inputs(tmp_path):
    guard = _guard(tmp_path, _docs(["one two three four five six seven eight nine ten"]))
    for text in ["", "   \n", "zzz qqq " * 40]:
        c = guard.check(3)
        c.feed(text)
        c.finish()
        assert c.spans() == []
    with pytest.raises(ValueError):
        Check(guard.segments, 0)


def test_runs_never_cross_from_one_text_into_the_next(tmp_path):
    guard = _guard(tmp_path, _docs(["a b c d e f", "g h i j k l"]))
    c = guard.check(4)
    c.feed("c d e f g h i j")
    c.finish()
    assert sorted((r.q_start, r.q_end) for r in c.spans()) == [(0, 4), (4, 8)]


def test_stream_answers_as_soon_as_a_span_crosses_the_threshold(tmp_path):
    book = " ".join(f"w{i}" for i in range(400))
    guard = _guard(tmp_path, _docs([book]))
    reply = "intro words here " + " ".join(f"w{i}" for i in range(100, 200)) + " the end"
    c = guard.check(50)
    words_at_hit = None
    for piece in [reply[i : i + 7] for i in range(0, len(reply), 7)]:
        changed = c.feed(piece)
        if any(r.words >= 50 for r in changed):
            words_at_hit = c.words.count
            break
    # The 50th copied word is the 53rd word of the reply; one word is held back until the
    # next piece shows it is complete, so the answer comes with word 54 at the latest.
    assert words_at_hit is not None and 53 <= words_at_hit <= 54


def test_stream_in_random_pieces_equals_one_shot(tmp_path):
    rng = random.Random(7)
    book = " ".join(f"w{rng.randrange(300)}" for _ in range(3000))
    guard = _guard(tmp_path, _docs([book]))
    bw = book.split()
    reply = " ".join(["novel"] * 30 + bw[100:180] + ["x1", "x2"] + bw[1000:1070] + ["end"])
    one = guard.check(20)
    one.feed(reply)
    one.finish()
    cuts = sorted(rng.sample(range(1, len(reply)), 40))
    streamed = guard.check(20)
    for a, b in zip([0, *cuts], [*cuts, len(reply)], strict=True):
        streamed.feed(reply[a:b])
    streamed.finish()

    def key(c: Check) -> list[tuple[int, int, int]]:
        return sorted((r.q_start, r.q_end, r.total) for r in c.spans())

    assert key(one) == key(streamed)
    assert [r.words for r in one.spans()][:2] == [80, 70]


def test_refresh_adds_and_removes_texts_without_rereading(tmp_path):
    docs = _docs(["a b c d e f g h", "i j k l m n o p", "q r s t u v w x"])
    path = tmp_path / "g"
    r = refresh(path, {}, docs, _reader(docs))
    assert r.added == 3
    keep = dict(list(docs.items())[1:])

    def no_reading(shas: list[str]):
        raise AssertionError("removal must not read texts")

    r = refresh(path, {}, keep, no_reading)
    assert (r.added, r.removed) == (0, 1)
    g = GuardIndex.open(path)
    assert g.texts() == set(keep)
    assert list(g.phrase_positions("a b c")) == []
    assert len(list(g.phrase_positions("i j k"))) == 1
    assert not list(path.glob(".tmp-*")) and len(list(path.glob("seg-*"))) == 1
    # removed words are gone from the files, not only hidden
    vocab = np.concatenate([np.asarray(s.vocab) for s in g.segments])
    assert int(word_ids([b"a"])[0]) not in set(vocab.tolist())


def test_many_refreshes_merge_segments(tmp_path):
    path = tmp_path / "g"
    docs: dict[str, str] = {}
    for i in range(10):
        docs[f"{i:064x}"] = f"text number {i} " + " ".join(f"t{i}w{j}" for j in range(20))
        refresh(path, {}, docs, _reader(docs))
    g = GuardIndex.open(path)
    assert len(g.segments) <= 8 and g.texts() == set(docs)
    assert len(list(g.phrase_positions("t3w4 t3w5 t3w6"))) == 1


def test_small_segments_are_kept_merged(tmp_path):
    """After one big build, refreshes that each add a little leave two segments, not many."""
    path = tmp_path / "g"
    docs = {"f" * 64: " ".join(f"big{j}" for j in range(5000))}
    refresh(path, {}, docs, _reader(docs))
    for i in range(5):
        docs[f"{i:064x}"] = " ".join(f"small{i}w{j}" for j in range(30))
        refresh(path, {}, docs, _reader(docs))
    g = GuardIndex.open(path)
    assert len(g.segments) == 2 and g.texts() == set(docs)
    assert len(list(g.phrase_positions("small2w3 small2w4"))) == 1


# ---- through the library, on the shipped examples (no shared corpus needed) ------------------
@pytest.fixture
def example_lib(tmp_path: Path) -> Library:
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    yield lib
    lib.close()


def test_library_guard_check_search_and_offsets(example_lib: Library):
    lib = example_lib
    info = lib.guard_index("all", all_datasets=True)
    assert info["texts"] >= 5 and info["tokens"] > 100_000 and info["bytes_per_token"] < 12
    text = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8-sig")
    c0, c1 = passage(text, 4000, 60)
    query = NEW_TEXT + text[c0:c1] + " " + NEW_TEXT
    r = lib.check(query, "all")
    assert r["flagged"] and len(r["spans"]) == 1
    span = r["spans"][0]
    assert (span["start"], span["end"]) == (len(NEW_TEXT), len(NEW_TEXT) + c1 - c0)
    assert span["words"] == 60
    assert "longest" not in r  # flagged: the spans are the evidence
    # the first place has character offsets; every place holds the passage at its word offset
    first = span["sources"][0]
    held = lib.store.get(first["text_sha256"]).decode("utf-8")
    assert norm(held[first["start"] : first["end"]]) == norm(text[c0:c1])
    for src in span["sources"]:
        held_words = norm(lib.store.get(src["text_sha256"]).decode("utf-8"))
        assert held_words[src["word"] : src["word"] + 60] == norm(text[c0:c1])
        assert src["copies"]
    # search: counts agree with a plain scan of the normalised texts
    phrase = " ".join(norm(text[c0:c1])[10:16])
    found = lib.search(phrase)
    assert found["occurrences"] >= 1
    for res in found["results"]:
        held = norm(lib.store.get(res["text_sha256"]).decode("utf-8"))
        want = phrase.split()
        truth = sum(held[i : i + len(want)] == want for i in range(len(held)))
        assert res["occurrences"] == truth
        for s in res["snippets"]:
            assert norm(s["match"]) == want


def test_search_filters_by_dataset(example_lib: Library, tmp_path: Path):
    lib = example_lib
    lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="alice@1")
    lib.guard_index("all", all_datasets=True)
    phrase = "down the rabbit hole"
    every = lib.search(phrase)
    only = lib.search(phrase, datasets=["alice@1"])
    assert only["occurrences"] >= 1
    assert {c["dataset"] for r in only["results"] for c in r["copies"]} == {"alice@1"}
    assert every["occurrences"] >= only["occurrences"]


def test_refresh_after_ingest_and_scope_change(example_lib: Library, tmp_path: Path):
    lib = example_lib
    first = lib.guard_index("g", datasets=["pg@1"])
    again = lib.guard_index("g")  # nothing changed: nothing to do
    assert (again["added"], again["removed"]) == (0, 0)
    extra = tmp_path / "extra.txt"
    extra.write_text("A brand new book. " + " ".join(f"word{i}" for i in range(500)))
    lib.ingest([str(extra)], source="pg", dataset="pg@1")
    grown = lib.guard_index("g")
    assert grown["added"] == 1 and grown["texts"] == first["texts"] + 1
    r = lib.check(" ".join(f"word{i}" for i in range(100, 200)), "g")
    assert r["flagged"]


# ---- accuracy on real books (shared corpus) --------------------------------------------------
@pytest.fixture(scope="module")
def real_guard(corpus: Path, tmp_path_factory) -> Library:
    lib = Library.init(tmp_path_factory.mktemp("guardlib") / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(main_file(corpus, p)) for p in INDEXED], source="pg", dataset="pg@1")
    lib.guard_index("books", datasets=["pg@1"])
    yield lib
    lib.close()


def test_buried_passage_found_with_offsets(real_guard: Library, corpus: Path):
    text = book_text(corpus, "1342")
    c0, c1 = passage(text, 31_000, 60)
    query = NEW_TEXT * 3 + text[c0:c1] + " " + NEW_TEXT * 2
    r = real_guard.check(query, "books")
    assert r["flagged"]
    span = max(r["spans"], key=lambda s: s["words"])
    assert span["words"] == 60
    assert span["start"] == 3 * len(NEW_TEXT) and span["end"] == 3 * len(NEW_TEXT) + c1 - c0
    src = span["sources"][0]
    assert src["copies"][0]["path"].endswith(main_file(corpus, "1342").name)
    held = real_guard.store.get(src["text_sha256"]).decode("utf-8")
    assert (src["start"], src["end"]) == (c0, c1) or norm(held[src["start"] : src["end"]]) == norm(
        text[c0:c1]
    )


def test_changed_case_and_line_breaks_still_found(real_guard: Library, corpus: Path):
    text = book_text(corpus, "98")
    c0, c1 = passage(text, 52_000, 60)
    words = text[c0:c1].split()
    mangled = "\n".join(" ".join(words[i : i + 7]).upper() for i in range(0, len(words), 7))
    r = real_guard.check(NEW_TEXT + mangled + "\n" + NEW_TEXT, "books")
    assert r["flagged"] and max(s["words"] for s in r["spans"]) == 60


def test_book_not_indexed_gives_no_span(real_guard: Library, corpus: Path):
    text = book_text(corpus, NOT_INDEXED)
    for first in (5_000, 40_000, 120_000):
        c0, c1 = passage(text, first, 400)
        r = real_guard.check(text[c0:c1], "books")
        assert not r["flagged"], r["spans"][:1]


def test_near_verbatim_gives_no_span_but_longest_runs(real_guard: Library, corpus: Path):
    text = book_text(corpus, "2701")
    c0, c1 = passage(text, 80_000, 200)
    words = norm(text[c0:c1])
    for i in range(10, len(words), 20):
        words[i] = "zzchanged"
    r = real_guard.check(" ".join(words), "books")
    assert not r["flagged"]
    assert r["longest"] and 12 <= r["longest"][0]["words"] <= 19


def test_reported_spans_are_the_outermost_stretches(example_lib: Library):
    """A stretch held whole by one text and in pieces by an edited copy is reported once."""
    lib = example_lib
    text = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8-sig")
    c0, c1 = passage(text, 6000, 200)
    words = text[c0:c1].split()
    words[100] = "zzedited"
    edited = Path(lib.path) / "edited.txt"
    edited.write_text(" ".join(words))
    lib.ingest([str(edited)], source="pg", dataset="edits@1")
    lib.guard_index("all", all_datasets=True)
    r = lib.check(text[c0:c1], "all")
    assert [s["words"] for s in r["spans"]] == [200]
    ranges = [(s["start"], s["end"]) for s in r["spans"]]
    for a in ranges:
        assert not any(b != a and b[0] <= a[0] and a[1] <= b[1] for b in ranges)


def test_bounded_segments_built_in_parallel_answer_as_one(example_lib: Library, monkeypatch):
    """A scope larger than one segment's bound is cut into segments that worker processes
    build; every answer is the one a single segment gives, and merges respect the bound."""
    from copytrail.guard import index as guard_index_module

    lib = example_lib
    lib.guard_index("one", all_datasets=True)
    monkeypatch.setattr(guard_index_module, "SEGMENT_TEXT_BYTES", 400_000)
    pooled(lib).guard_index("many", all_datasets=True)
    one, many = lib.guard("one"), lib.guard("many")
    assert len(one.segments) == 1 and len(many.segments) > 2
    assert many.texts() == one.texts()
    for book in ("5200/5200.txt", "11/11-0.txt"):  # texts in different segments
        text = (EXAMPLES / book).read_text(encoding="utf-8-sig")
        for at in (1000, 9000, 17_000):
            c0, c1 = passage(text, at, 60)
            query = NEW_TEXT + text[c0:c1] + " " + NEW_TEXT
            a, b = lib.check(query, "one"), lib.check(query, "many")
            assert a["flagged"] and a["spans"] == b["spans"]
    # Boilerplate marks count texts over the whole index, whatever the segments.
    marked = {g["name"]: g["boilerplate"]["marked_tokens"] for g in lib.guards()}
    assert marked["one"] == marked["many"] > 0
    _check_flagged_against_a_direct_count(many.segments, monkeypatch)
    # past MAX_SEGMENTS, only the smallest are merged, never past the bound
    largest = max(s.token_count for s in many.segments)
    monkeypatch.setattr(guard_index_module, "MAX_SEGMENTS", 2)
    monkeypatch.setattr(guard_index_module, "MERGE_TOKENS", 3 * largest)
    merged = lib.guard_index("many", rebuild=True)
    again = lib.guard("many")
    assert merged["merged"] and merged["texts"] == len(one.texts())
    assert all(s.token_count <= 3 * largest for s in again.segments)
    assert 1 < len(again.segments) < len(many.segments)


def _check_flagged_against_a_direct_count(segments, monkeypatch) -> None:
    """The out-of-core text frequency (spill files by hash partition) flags exactly the k-grams
    a direct count over every text of every segment flags."""
    from collections import Counter

    from copytrail.guard import marks

    k, max_texts = 10, 1
    texts_holding: Counter = Counter()
    for seg in segments:
        h, valid = marks._kgrams(seg, k)
        starts = np.asarray(seg.doc_starts)
        for d in range(len(seg.doc_shas)):
            lo, hi = int(starts[d]), int(starts[d + 1])
            texts_holding.update(set(h[lo:hi][valid[lo:hi]].tolist()))
    expected = sorted(v for v, n in texts_holding.items() if n > max_texts)
    assert expected  # the example books share licence text
    for bits in (1, 2, 6):
        monkeypatch.setattr(marks, "PARTITION_BITS", bits)
        got = marks._flagged(segments, np.zeros(0, np.uint64), k, max_texts)
        assert got.tolist() == expected, bits


def test_a_refresh_killed_between_segments_is_taken_up_where_it_stopped(tmp_path, monkeypatch):
    """New texts are cut into segments by a plan that depends only on the texts; segments a
    killed refresh finished are taken up by the next, which builds only the rest and ends with
    the index an uninterrupted refresh makes. --rebuild takes up nothing."""
    import copytrail.guard.index as gi

    monkeypatch.setattr(gi, "SEGMENT_TEXT_BYTES", 200)
    docs = _docs([f"text {i} " + " ".join(f"w{i}x{j}" for j in range(30)) for i in range(12)])
    sizes = {sha: len(t) for sha, t in docs.items()}
    read = _reader(docs)
    groups = gi.plan_segments(sorted(docs), sizes)
    assert len(groups) >= 4

    def builder(root: Path, stop_after: int | None, asked: list):
        def build(todo: list[list[str]]):
            for n, group in enumerate(todo):
                if stop_after is not None and n == stop_after:
                    raise KeyboardInterrupt("killed")
                asked.append(group)
                yield gi.build_segment(root, read(group))

        return build

    whole = tmp_path / "whole"
    refresh(whole, {}, docs, read, build_segments=builder(whole, None, []), sizes=sizes)
    path = tmp_path / "g"
    with pytest.raises(KeyboardInterrupt):
        refresh(path, {}, docs, read, build_segments=builder(path, 2, []), sizes=sizes)
    assert not (path / gi.MANIFEST).exists() and len(list(path.glob("seg-*"))) == 2
    asked: list = []
    r = refresh(path, {}, docs, read, build_segments=builder(path, None, asked), sizes=sizes)
    assert r.reused == 2 and asked == groups[2:]

    def content(p: Path) -> list:
        g = GuardIndex.open(p)
        return [(s.doc_shas, np.asarray(s.tokens).tolist()) for s in g.segments]

    assert content(path) == content(whole)
    assert len(list(path.glob("seg-*"))) == len(GuardIndex.open(path).segments)
    # A segment the manifest names is never "taken up" as new, and --rebuild builds everything.
    asked.clear()
    r = refresh(
        path, {}, docs, read, rebuild=True, build_segments=builder(path, None, asked), sizes=sizes
    )
    assert r.reused == 0 and asked == groups
    assert content(path) == content(whole)
