"""Hashes over normalised words, vectorised with numpy.

- word ids: two CRC32s of the word's bytes (stable across processes, unlike hash()).
- the per-byte and per-word loops are compiled (`kernels`); numpy references stay for tests.
- k-gram hashes: a polynomial over k consecutive word ids, then a 64-bit finaliser.
- winnowing (Schleimer, Wilkerson, Aiken 2003, the MOSS method): the minimum hash of every window
  of w consecutive k-grams. Any run of w + k - 1 shared words yields at least one shared hash.
- MinHash signatures of word-shingle sets computed by rensa (Rust), and LSH band keys over them.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np

SHINGLE_WORDS = 5  # MinHash shingles: word 5-grams
NUM_PERM = 128
LSH_BANDS = 32  # 32 bands x 4 rows: pairs at Jaccard 0.5 collide in a band with p ~ 0.87
MINHASH_SEED = 20241
WINNOW_K = 10  # words per winnowed k-gram
WINNOW_W = 30  # window: guarantees detection of any shared run of 39+ words
PARAMS_VERSION = f"v1-s{SHINGLE_WORDS}-p{NUM_PERM}-b{LSH_BANDS}-k{WINNOW_K}-w{WINNOW_W}"

_MUL = np.uint64(0x100000001B3)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


SECOND_SEED = 0x9E3779B9  # the second CRC's starting value: two CRCs make a 64-bit word id


def _kernels() -> ModuleType:
    # Imported on first use: loading numba would cost every CLI start about 0.2 s.
    from copytrail.fingerprint import kernels

    return kernels


_IDS: dict[bytes, int] = {}  # vocabulary cache of the fallback path
_IDS_MAX = 2_000_000


def word_ids(ws: list[bytes]) -> np.ndarray:
    """One 64-bit id per word: crc32(w) | crc32(w, 0x9E3779B9) << 32."""
    if not ws:
        return np.zeros(0, dtype=np.uint64)
    ids = joined_word_ids(b" ".join(ws))
    if len(ids) == len(ws):
        return ids
    return _word_ids_one_by_one(ws)  # a word holding a space (never from `words`)


def joined_word_ids(joined: bytes) -> np.ndarray:
    """Word ids of words joined by single spaces, in one compiled pass over the bytes."""
    if not joined:
        return np.zeros(0, dtype=np.uint64)
    k = _kernels()
    return k.joined_word_ids(np.frombuffer(joined, np.uint8), k.CRC32, np.uint32(SECOND_SEED))


def _word_ids_one_by_one(ws: list[bytes]) -> np.ndarray:
    table = _IDS
    if len(table) > _IDS_MAX:
        table.clear()
    ids = list(map(table.get, ws))
    if None in ids:
        for i, (w, v) in enumerate(zip(ws, ids, strict=True)):
            if v is None:
                v = table.get(w)
                if v is None:
                    v = table[w] = zlib.crc32(w) | (zlib.crc32(w, SECOND_SEED) << 32)
                ids[i] = v
    return np.array(ids, dtype=np.uint64)


def _mix(h: np.ndarray) -> np.ndarray:
    # splitmix64 finaliser: spreads the polynomial's bits so minima are uniform.
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def kgram_hashes(ids: np.ndarray, k: int) -> np.ndarray:
    """splitmix64(polynomial over k consecutive ids) at every word position."""
    return _kernels().kgram_hashes(np.ascontiguousarray(ids, dtype=np.uint64), k)


def kgram_hashes_numpy(ids: np.ndarray, k: int) -> np.ndarray:
    """The same as `kgram_hashes` with numpy operations: the reference the kernel is tested
    against (the hashes are persisted, so the two must never differ)."""
    n = len(ids) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = ids[:n].copy()
        for j in range(1, k):
            h = h * _MUL + ids[j : j + n]  # wraps modulo 2^64 on purpose
        return _mix(h)


def _sliding(x: np.ndarray, w: int, fn: np.ufunc, pad: np.uint64) -> np.ndarray:
    """fn-reduction of every window of w consecutive values (van Herk / Gil-Werman: O(n))."""
    n = len(x)
    blocks = -(-n // w)
    padded = np.full(blocks * w, pad, dtype=x.dtype)
    padded[:n] = x
    b = padded.reshape(blocks, w)
    prefix = fn.accumulate(b, axis=1).ravel()
    suffix = fn.accumulate(b[:, ::-1], axis=1)[:, ::-1].ravel()
    return fn(suffix[: n - w + 1], prefix[w - 1 : n])


def winnow(h: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(selected hashes, their k-gram positions). Short texts keep their single minimum.

    A position is selected when it holds the minimum of some window containing it.
    """
    if len(h) == 0:
        return h, np.zeros(0, dtype=np.uint32)
    if len(h) <= w:
        i = int(np.argmin(h))
        return h[i : i + 1], np.array([i], dtype=np.uint32)
    pos = _kernels().winnow_positions(np.ascontiguousarray(h, dtype=np.uint64), w)
    return h[pos], pos.astype(np.uint32)


def winnow_numpy(h: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The same as `winnow` with numpy operations (the tests' reference): a position is
    selected when its hash is <= the largest of the minima of the windows that contain it."""
    if len(h) == 0:
        return h, np.zeros(0, dtype=np.uint32)
    if len(h) <= w:
        i = int(np.argmin(h))
        return h[i : i + 1], np.array([i], dtype=np.uint32)
    top = np.uint64(np.iinfo(np.uint64).max)
    mins = _sliding(h, w, np.minimum, top)  # mins[i]: minimum of window i .. i+w-1
    # For position p the windows containing it are i in [p-w+1, p]; pad mins at both ends.
    padded = np.concatenate([np.zeros(w - 1, np.uint64), mins, np.zeros(w - 1, np.uint64)])
    best = _sliding(padded, w, np.maximum, np.uint64(0))[: len(h)]
    pos = np.flatnonzero(h <= best)
    return h[pos], pos.astype(np.uint32)


@dataclass
class TextFingerprint:
    words: int
    norm_sha256: str
    shingles: np.ndarray  # uint64 k-gram hashes for MinHash
    winnow_hashes: np.ndarray
    winnow_pos: np.ndarray


def fingerprint_words(ws: list[bytes]) -> TextFingerprint:
    """Fingerprint of a text given as its normalised words (`normalize.words`)."""
    return fingerprint_joined(b" ".join(ws), word_ids(ws))


def fingerprint_joined(joined: bytes, ids: np.ndarray | None = None) -> TextFingerprint:
    """Fingerprint of a text given as its normalised words joined by single spaces
    (`normalize.joined_words`); `ids`, when the caller has them, are its word ids."""
    if ids is None:
        ids = joined_word_ids(joined)
    wh, wp = winnow(kgram_hashes(ids, WINNOW_K), WINNOW_W)
    return TextFingerprint(
        words=len(ids),
        norm_sha256=hashlib.sha256(joined).hexdigest(),
        # Duplicates do not change a minimum, so the shingle hashes need no de-duplication.
        shingles=kgram_hashes(ids, SHINGLE_WORDS) if len(ids) >= SHINGLE_WORDS else ids,
        winnow_hashes=wh,
        winnow_pos=wp,
    )


def minhash_matrix(shingle_sets: list[np.ndarray]) -> np.ndarray:
    """MinHash signatures (rows x NUM_PERM, uint32) of many shingle sets in one rensa call."""
    import rensa

    if not shingle_sets:
        return np.zeros((0, NUM_PERM), dtype=np.uint32)
    lengths = np.array([len(s) for s in shingle_sets], dtype=np.uint64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.uint64)
    flat = (
        np.concatenate(shingle_sets).astype(np.uint64) if lengths.sum() else np.zeros(0, np.uint64)
    )
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, NUM_PERM, MINHASH_SEED)
    sig = np.array(m.to_rows(), dtype=np.uint32).reshape(len(shingle_sets), NUM_PERM)
    sig[lengths == 0] = np.iinfo(np.uint32).max  # empty sets match nothing
    return sig


def band_keys(sig: np.ndarray) -> np.ndarray:
    """(rows x LSH_BANDS) uint64 keys: equal key in any band makes a candidate pair."""
    rows = sig.reshape(len(sig), LSH_BANDS, NUM_PERM // LSH_BANDS).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = np.zeros((len(sig), LSH_BANDS), dtype=np.uint64)
        for j in range(rows.shape[2]):
            h = h * _MUL + rows[:, :, j]
        return _mix(h + np.arange(LSH_BANDS, dtype=np.uint64))


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))
