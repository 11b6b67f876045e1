"""Compiled loops (numba) for the per-byte and per-word work of fingerprinting.

They compute exactly what the numpy and dict versions in `hashing` compute (the same word ids,
k-gram hashes and winnowed positions, which libraries have persisted), in one pass over the
bytes instead of a Python call per word or a numpy temporary per step. Compiled code is cached
beside this file (or in numba's user cache when the package is read-only), so a process pays
the compile once per machine, not per run.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _crc32_table() -> np.ndarray:
    """The table of zlib's CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320)."""
    table = np.zeros(256, np.uint32)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
        table[n] = c
    return table


CRC32 = _crc32_table()

_MUL = np.uint64(0x100000001B3)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True)
def joined_word_ids(buf: np.ndarray, table: np.ndarray, seed2: np.uint32) -> np.ndarray:
    """Word ids of `buf`, words joined by single spaces (one id per space-separated field, so
    an empty field is an empty word). id = crc32(w) | crc32(w, seed2) << 32, as zlib gives."""
    n = buf.shape[0]
    words = 1
    for i in range(n):
        if buf[i] == 32:
            words += 1
    out = np.empty(words, np.uint64)
    full = np.uint32(0xFFFFFFFF)
    c1 = full
    c2 = seed2 ^ full
    w = 0
    for i in range(n):
        b = buf[i]
        if b == 32:
            out[w] = np.uint64(c1 ^ full) | (np.uint64(c2 ^ full) << np.uint64(32))
            w += 1
            c1 = full
            c2 = seed2 ^ full
        else:
            c1 = table[(c1 ^ b) & np.uint32(0xFF)] ^ (c1 >> np.uint32(8))
            c2 = table[(c2 ^ b) & np.uint32(0xFF)] ^ (c2 >> np.uint32(8))
    out[w] = np.uint64(c1 ^ full) | (np.uint64(c2 ^ full) << np.uint64(32))
    return out


@njit(cache=True, nogil=True)
def _mix(h: np.uint64) -> np.uint64:
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def kgram_hashes(ids: np.ndarray, k: int) -> np.ndarray:
    """splitmix64 of the polynomial sum(ids[i + j] * _MUL^(k-1-j)) (mod 2^64) at every i, the
    polynomial rolled along (drop the first id's term, shift, add the next): exact in the ring
    of integers mod 2^64, so the same values as evaluating each k-gram afresh."""
    n = ids.shape[0] - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64)
    out = np.empty(n, np.uint64)
    top = np.uint64(1)  # _MUL^(k-1): the weight of the id leaving the window
    for _ in range(k - 1):
        top = top * _MUL
    h = np.uint64(0)
    for j in range(k):
        h = h * _MUL + ids[j]
    out[0] = _mix(h)
    for i in range(1, n):
        h = (h - ids[i - 1] * top) * _MUL + ids[i + k - 1]
        out[i] = _mix(h)
    return out


@njit(cache=True, nogil=True)
def winnow_positions(h: np.ndarray, w: int) -> np.ndarray:
    """Positions holding the minimum of at least one window of w consecutive hashes (every tied
    position of that minimum), in order. Needs len(h) > w."""
    n = h.shape[0]
    m = n - w + 1
    # mins[i] = min(h[i : i + w]) by a monotone deque of candidate positions.
    mins = np.empty(m, np.uint64)
    dq = np.empty(n, np.int64)
    head = 0
    tail = 0
    for p in range(n):
        while tail > head and h[dq[tail - 1]] > h[p]:
            tail -= 1
        dq[tail] = p
        tail += 1
        if dq[head] <= p - w:
            head += 1
        if p >= w - 1:
            mins[p - w + 1] = h[dq[head]]
    # p is selected when h[p] equals the minimum of some window i in [p - w + 1, p]: the
    # largest of those minima (a sliding maximum over mins) is then exactly h[p].
    keep = np.zeros(n, np.bool_)
    head = 0
    tail = 0
    for p in range(n):
        if p < m:
            while tail > head and mins[dq[tail - 1]] < mins[p]:
                tail -= 1
            dq[tail] = p
            tail += 1
        while dq[head] < p - w + 1:
            head += 1
        keep[p] = h[p] <= mins[dq[head]]
    return np.flatnonzero(keep)


@njit(cache=True, nogil=True)
def _eol_hyphen_end(b: np.ndarray, i: int, table: np.ndarray) -> int:
    """Where the text resumes when b[i] is a hyphen ending a line inside a word ("won-\n  der"
    -> "wonder": a word byte before it, [ \t]* \r? \n [ \t]* and a word byte after); else -1."""
    n = b.shape[0]
    if i == 0 or table[b[i - 1]] == 32:
        return -1
    j = i + 1
    while j < n and (b[j] == 32 or b[j] == 9):
        j += 1
    if j < n and b[j] == 13:
        j += 1
    if j >= n or b[j] != 10:
        return -1
    j += 1
    while j < n and (b[j] == 32 or b[j] == 9):
        j += 1
    if j >= n or table[b[j]] == 32:
        return -1
    return j


@njit(cache=True, nogil=True)
def _separator_length(b: np.ndarray, i: int) -> int:
    """Length of the UTF-8 punctuation at b[i] that folds to no word in any context (dashes,
    curly quotes, daggers, bullets, ellipsis U+2010..U+2026; no-break space, guillemets and
    middle dot), else 0. Treating them as spaces here spares the Python fold of nearly every
    run that holds non-ASCII bytes; tests check each one against the fold."""
    n = b.shape[0]
    if b[i] == 0xE2 and i + 2 < n and b[i + 1] == 0x80 and 0x90 <= b[i + 2] <= 0xA6:
        return 3
    if b[i] == 0xC2 and i + 1 < n:
        c = b[i + 1]
        if c == 0xA0 or c == 0xAB or c == 0xBB or c == 0xB7:
            return 2
    return 0


@njit(cache=True, nogil=True)
def translate_collapse(b: np.ndarray, table: np.ndarray, raw: bool) -> np.ndarray:
    """`b" ".join(bytes(b).translate(table).split())`: each byte mapped through `table` (which
    maps every separator to a space), runs of spaces collapsed to one, none at either end.
    `raw` (UTF-8 text as stored, table mapping word bytes to non-spaces): first drop a hyphen
    ending a line inside a word with the line break, as normalize._EOL_HYPHEN_B does, and read
    the punctuation of `_separator_length` as a space."""
    n = b.shape[0]
    out = np.empty(n, np.uint8)
    o = 0
    prev_space = True  # so that leading spaces write nothing
    i = 0
    while i < n:
        x = b[i]
        c = table[x]
        if raw and (x == 45 or x >= 0xC2):  # rare: keep the common path free of branches
            if x == 45:
                j = _eol_hyphen_end(b, i, table)
                if j >= 0:
                    i = j
                    continue
            else:
                skip = _separator_length(b, i)
                if skip:
                    c = 32
                    i += skip - 1
        # Every byte is written; the write position only moves past a space that does not
        # follow another, so a run of spaces leaves one (no data-dependent branch per byte).
        space = c == 32
        out[o] = c
        o += 1 - (space & prev_space)
        prev_space = space
        i += 1
    if o > 0 and out[o - 1] == 32:
        o -= 1
    return out[:o]


SEPARATORS = [chr(c) for c in range(0x2010, 0x2027)] + ["\u00a0", "\u00ab", "\u00bb", "\u00b7"]


@njit(cache=True, nogil=True)
def high_runs(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the space-separated runs of `buf` that hold a byte >= 0x80: jump from
    one such byte to the next (a tight scan) and widen each to its run."""
    n = buf.shape[0]
    high = 0
    for i in range(n):
        high += buf[i] >= 0x80
    starts = np.empty(high, np.int64)
    ends = np.empty(high, np.int64)
    k = 0
    i = 0
    while True:
        while i < n and buf[i] < 0x80:
            i += 1
        if i >= n:
            break
        s = i
        while s > 0 and buf[s - 1] != 32:
            s -= 1
        e = i
        while e < n and buf[e] != 32:
            e += 1
        starts[k] = s
        ends[k] = e
        k += 1
        i = e
    return starts[:k], ends[:k]


def warm() -> None:
    """Compile (or load from the cache) every kernel now, on tiny inputs."""
    b = np.frombuffer(b"won-\nder ful \xc3\xa9t\xc3\xa9", np.uint8)
    table = np.arange(256, dtype=np.uint8)
    high_runs(translate_collapse(b, table, True))
    ids = joined_word_ids(b, CRC32, np.uint32(0x9E3779B9))
    h = kgram_hashes(np.concatenate([ids] * 8), 2)
    winnow_positions(h, 3)
