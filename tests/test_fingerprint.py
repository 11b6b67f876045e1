"""Normalisation, winnowing and MinHash: the invariants every matcher relies on."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from copytrail.catalog.schema import fingerprints
from copytrail.errors import InvalidInput
from copytrail.fingerprint import hashing, kernels, normalize
from copytrail.fingerprint.normalize import tokens, words
from copytrail.fingerprint.store import NEXT_KEY, fingerprint_store, fingerprint_texts
from copytrail.ledger.db import write_transaction
from copytrail.ledger.schema import meta

TEXT = st.text(alphabet="aZé C_dß-9 .,\n\t'’Œ\r", max_size=80)


@settings(max_examples=300)
@given(TEXT)
def test_tokens_are_the_words_with_offsets(text):
    ws, starts, ends = tokens(text)
    assert ws == [w.decode() for w in words(text)]
    assert all(0 <= s < e <= len(text) for s, e in zip(starts, ends, strict=True))


def test_normalisation_ignores_case_accents_punctuation_wrapping_and_hyphenation():
    a = "The Œuvre of Gregor — “Träume”, said he; it was won-\nderful."
    b = "the oeuvre of GREGOR traume said he\n  it was wonderful"
    assert words(a) == words(b)
    ws, starts, ends = tokens(a)
    assert a[starts[-1] : ends[-1]] == "won-\nderful" and ws[-1] == "wonderful"


def reference_winnow(h: np.ndarray, w: int) -> set[int]:
    if len(h) <= w:
        return {int(np.argmin(h))}
    out = set()
    for i in range(len(h) - w + 1):
        win = h[i : i + w]
        out |= {i + int(j) for j in np.flatnonzero(win == win.min())}
    return out


@settings(max_examples=200)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=120), st.integers(1, 12))
def test_winnowing_selects_every_window_minimum(values, w):
    h = np.array(values, dtype=np.uint64)
    got = set(hashing.winnow(h, w)[1].tolist())
    assert got == reference_winnow(h, w)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.sampled_from(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]),
        min_size=60,
        max_size=200,
    ),
    st.integers(0, 40),
)
def test_shared_run_of_w_plus_k_minus_1_words_shares_a_winnowed_hash(ws, cut):
    # The winnowing guarantee: any shared run of at least w + k - 1 words yields a shared hash.
    run = [f"w{i}".encode() for i in range(hashing.WINNOW_W + hashing.WINNOW_K - 1)]
    a = [w.encode() for w in ws[:cut]] + run + [w.encode() for w in ws[cut:]]
    b = [b"x"] * 7 + run + [b"y"] * 3
    fa, fb = hashing.fingerprint_words(a), hashing.fingerprint_words(b)
    assert set(fa.winnow_hashes.tolist()) & set(fb.winnow_hashes.tolist())


def test_minhash_estimates_jaccard_and_bands_collide_for_near_duplicates():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=4000, dtype=np.uint64)
    near = base.copy()
    near[:200] = rng.integers(0, 2**63, size=200, dtype=np.uint64)  # Jaccard ~ 0.9
    other = rng.integers(0, 2**63, size=4000, dtype=np.uint64)
    sig = hashing.minhash_matrix([base, near, other, np.zeros(0, np.uint64)])
    assert abs(hashing.estimated_jaccard(sig[0], sig[1]) - 3800 / 4200) < 0.1
    assert hashing.estimated_jaccard(sig[0], sig[2]) < 0.1
    bands = hashing.band_keys(sig)
    assert (bands[0] == bands[1]).any() and not (bands[0] == bands[2]).any()
    assert not (bands[3] == bands[0]).any()


def test_a_batch_of_texts_too_short_to_winnow_stays_readable(lib):
    """A batch with no winnowed hash at all once wrote a NULL-typed column that DuckDB could not
    read beside the other batches."""
    import duckdb

    short = lib.store.put(b"just a few words")[0]
    lib.fingerprints.ensure([short])
    long_text = " ".join(f"word{i}" for i in range(500))
    long = lib.store.put(long_text.encode())[0]
    lib.fingerprints.ensure([long])
    db = duckdb.connect()
    lib.fingerprints.attach(db)
    got = db.execute("SELECT count(DISTINCT text_key) FROM winnow").fetchone()[0]
    assert got == 1
    assert db.execute("SELECT count(*) FROM texts").fetchone()[0] == 2


def test_rows_of_a_text_in_a_batch_it_is_not_registered_in_are_left_out(lib):
    """A run killed after writing a batch but before registering it, then re-run, leaves a text
    in two batches: the views hold the rows of the registered one only, once."""
    import duckdb

    sha = lib.store.put(" ".join(f"word{i % 97}x{i}" for i in range(400)).encode())[0]
    other = lib.store.put(b"another text entirely, " * 60)[0]
    fps = lib.fingerprints
    fps.ensure([sha])
    first = fps.registry()[sha]
    # A second batch holding both texts registers only `other`: its rows of `sha` are stale.
    rows = fingerprint_texts(lib.store, [sha, other])
    fps._write_batch(rows)
    registry = fps.registry()
    assert registry[sha] == first and registry[other] != first
    db = duckdb.connect()
    fps.attach(db)
    per_text = dict(db.execute("SELECT text_sha256, count(*) FROM texts GROUP BY 1").fetchall())
    assert per_text == {sha: 1, other: 1}
    for r in rows:
        assert _rows_of(db, "winnow", r["sha"]) == len(r["wh"])
        assert _rows_of(db, "bands", r["sha"]) == hashing.LSH_BANDS


def _rows_of(db, kind: str, sha: str) -> int:
    return db.execute(
        f"SELECT count(*) FROM {kind} JOIN texts USING (text_key) WHERE text_sha256 = ?", [sha]
    ).fetchone()[0]


def _texts(lib, n: int) -> list[str]:
    return [
        lib.store.put(" ".join(f"t{k}w{i % 89}x{i}" for i in range(300)).encode())[0]
        for k in range(n)
    ]


def test_every_batch_keys_its_texts_apart_and_joins_run_on_the_keys(lib):
    """Each batch's texts get keys no other batch has (the counter in the ledger), in all
    three files; `texts` alone maps a key back to its digest."""
    import duckdb

    fps = lib.fingerprints
    shas = _texts(lib, 5)
    fps.ensure(shas[:2])
    fps.ensure(shas[2:])
    for kind in ("texts", "bands", "winnow"):
        for path in fps.root.glob(f"{kind}-*.parquet"):
            names = pq.read_schema(path).names
            assert names[0] == "text_key" and (kind == "texts") == ("text_sha256" in names)
    db = duckdb.connect()
    assert fps.attach(db) == 5
    keys = dict(db.execute("SELECT text_sha256, text_key FROM texts").fetchall())
    assert set(keys) == set(shas) and len(set(keys.values())) == 5
    for sha in shas:
        assert _rows_of(db, "bands", sha) == hashing.LSH_BANDS and _rows_of(db, "winnow", sha)
    assert fps.reserve_keys(1) > max(keys.values())


def test_batches_written_before_keys_are_keyed_on_attach(lib):
    """A library fingerprinted before text keys holds text_sha256 in every file: the first
    attach rewrites them with keys (texts first), a kill half-way is finished by the next, and
    the views hold the same rows as before."""
    import duckdb

    fps = lib.fingerprints
    shas = _texts(lib, 4)
    fps.ensure(shas[:2])
    fps.ensure(shas[2:])
    before = {}
    for path in fps.root.glob("*.parquet"):
        table = pq.read_table(path)
        before[path.name] = table.num_rows
        if path.name.startswith("texts-"):
            continue
        texts = pq.read_table(fps.root / path.name.replace(path.name.split("-")[0], "texts", 1))
        at = pc.index_in(table["text_key"], value_set=texts["text_key"])
        old = table.drop_columns(["text_key"]).add_column(
            0, "text_sha256", texts["text_sha256"].take(at)
        )
        pq.write_table(old, path)
    # One batch is left half keyed (its texts file has keys, its bands and winnow do not), the
    # other wholly unkeyed: as a kill during the upgrade, and a library from before it.
    unkeyed = sorted(fps.root.glob("texts-*.parquet"))[0]
    pq.write_table(pq.read_table(unkeyed).drop_columns(["text_key"]), unkeyed)
    db = duckdb.connect()
    assert fps.attach(db) == 4
    for path in fps.root.glob("*.parquet"):
        assert pq.read_schema(path).names[0] == "text_key"
        assert pq.read_table(path).num_rows == before[path.name]
    keys = dict(db.execute("SELECT text_sha256, text_key FROM texts").fetchall())
    assert set(keys) == set(shas) and len(set(keys.values())) == 4
    for sha in shas:
        assert _rows_of(db, "bands", sha) == hashing.LSH_BANDS and _rows_of(db, "winnow", sha)


def test_a_stale_key_equal_to_a_live_one_is_told_apart_by_its_batch(lib):
    """A ledger put back to a copy older than the fingerprints folder can hand out a key an
    unregistered (stale) batch already holds: the live rows with that key stay in the views."""
    import duckdb

    fps = lib.fingerprints
    a, b = _texts(lib, 2)
    first = fps.reserve_keys(0)
    fps._write_batch(fingerprint_texts(lib.store, [a]))  # written, never registered: stale
    with write_transaction(fps.engine) as conn:
        conn.execute(delete(fingerprints))
        conn.execute(update(meta).where(meta.c.key == NEXT_KEY).values(value=str(first)))
    fps.ensure([b])  # registered, with the stale batch's key
    reg = fps.registry()
    assert list(reg) == [b]
    texts = {p.name: pq.read_table(p) for p in fps.root.glob("texts-*.parquet")}
    assert [t["text_key"].to_pylist() for t in texts.values()] == [[first], [first]]
    db = duckdb.connect()
    assert fps.attach(db) == 1
    assert db.execute("SELECT text_sha256 FROM texts").fetchall() == [(b,)]
    assert _rows_of(db, "bands", b) == hashing.LSH_BANDS
    assert db.execute("SELECT count(*) FROM bands").fetchone()[0] == hashing.LSH_BANDS


# ---- compiled kernels: the hashes are persisted, so they must equal the reference exactly -----

ANY_TEXT = st.text(max_size=120)  # any code point, lone surrogates included


PUNCTUATED = st.text(
    alphabet=st.sampled_from(list("aZé C-9 .\n’Œ\u0301") + kernels.SEPARATORS), max_size=60
)


@settings(max_examples=400)
@given(st.one_of(TEXT, ANY_TEXT, PUNCTUATED))
def test_joined_words_are_the_words_joined_by_spaces(text):
    expected = b" ".join(words(text))
    assert normalize.joined_words(text) == expected
    # The same from the stored bytes, invalid UTF-8 read as U+FFFD as a str would have it.
    stored = text.encode("utf-8", errors="surrogatepass")
    assert normalize.joined_words(stored) == b" ".join(
        words(stored.decode("utf-8", errors="replace"))
    )


def test_the_separators_the_kernel_skips_fold_to_no_word():
    for c in kernels.SEPARATORS:
        assert normalize._NON_WORD.sub("", normalize._fold(c)) == "", hex(ord(c))
        assert words(f"a{c}b") == [b"a", b"b"] and normalize.joined_words(f"a{c}b") == b"a b"


def test_joined_words_join_hyphenated_line_ends_like_the_regex():
    for text in [
        "won-\n  derful",
        "won- \r\n\tder",
        "a-\n-\nb",
        "a-\nb-\nc",
        "-\nx",
        "x-\n",
        "é-\nb",
    ]:
        assert normalize.joined_words(text) == b" ".join(words(text)), text


def test_word_ids_are_the_two_crc32s_pinned():
    ws = [b"the", "träume".encode(), b"wonderful"]
    assert [hex(x) for x in hashing.word_ids(ws)] == [
        "0xb08acf573c456de6",
        "0xc7f2152810acb153",
        "0xe46ee5bbf91ef529",
    ]
    six = [b"it", b"was", b"the", b"best", b"of", b"times"]
    assert hex(int(hashing.kgram_hashes(hashing.word_ids(six), 5)[0])) == "0x7d697b26b7f2fcab"


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=12).filter(lambda w: b" " not in w), max_size=40))
def test_word_ids_kernel_equals_zlib(ws):
    expected = [zlib.crc32(w) | (zlib.crc32(w, 0x9E3779B9) << 32) for w in ws]
    assert hashing.word_ids(ws).tolist() == expected


def test_word_ids_of_words_holding_spaces_fall_back_to_one_by_one():
    ws = [b"a b", b"c"]
    assert hashing.word_ids(ws).tolist() == [
        zlib.crc32(w) | (zlib.crc32(w, 0x9E3779B9) << 32) for w in ws
    ]


@settings(max_examples=200)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=80),
    st.integers(1, 12),
)
def test_kgram_and_winnow_kernels_equal_the_numpy_reference(values, k):
    ids = np.array(values, dtype=np.uint64)
    got = hashing.kgram_hashes(ids, k)
    assert got.tolist() == hashing.kgram_hashes_numpy(ids, k).tolist()
    for w in (1, 2, k, 30):
        a, b = hashing.winnow(got, w), hashing.winnow_numpy(got, w)
        assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()


@settings(max_examples=100, deadline=None)
@given(st.one_of(TEXT, ANY_TEXT))
def test_fingerprint_of_joined_words_equals_fingerprint_of_words(text):
    a = hashing.fingerprint_joined(normalize.joined_words(text))
    b = hashing.fingerprint_words(words(text))
    assert (a.words, a.norm_sha256) == (b.words, b.norm_sha256)
    assert a.shingles.tolist() == b.shingles.tolist()
    assert a.winnow_hashes.tolist() == b.winnow_hashes.tolist()
    assert a.winnow_pos.tolist() == b.winnow_pos.tolist()


def test_fingerprint_joins_are_bounded_in_memory_and_leave_no_spill_folder(lib, monkeypatch):
    fps = fingerprint_store(lib.ctx)
    monkeypatch.setenv("COPYTRAIL_JOIN_MEMORY", "700MB")
    with fps.joins() as db:
        limit = db.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        spill = db.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        assert os.path.isdir(spill)
    assert limit.replace(" ", "").upper() in {"700.0MB", "667.5MIB", "700MB"}, limit
    assert not os.path.exists(spill)
    monkeypatch.setenv("COPYTRAIL_JOIN_MEMORY", "lots; DROP TABLE x")
    with pytest.raises(InvalidInput, match="COPYTRAIL_JOIN_MEMORY"), fps.joins():
        pass
