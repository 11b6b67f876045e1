"""Normalisation, winnowing and MinHash: the invariants every matcher relies on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrail.fingerprint import hashing
from copytrail.fingerprint.normalize import tokens, words

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
    got = db.execute("SELECT count(DISTINCT text_sha256) FROM winnow").fetchone()[0]
    assert got == 1
    assert db.execute("SELECT count(*) FROM texts").fetchone()[0] == 2
