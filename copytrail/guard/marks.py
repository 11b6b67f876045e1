"""Boilerplate marks of a guard index: which indexed words lie in a passage that is no protected
text, known boilerplate (the shared set) or a passage more than N indexed texts hold.

Worked out when an index is built or refreshed, over every segment (a passage's text frequency is
a property of the whole index), and stored as one bit per token position in a file named by the
manifest, so a check reads a few bytes per span and costs what it cost before.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import numpy as np

from copytrail.fingerprint.hashing import kgram_hashes
from copytrail.guard.segment import FIRST_ID, Segment

DEFAULT_MAX_TEXTS = 20  # a passage in more indexed texts than this is boilerplate


def word_hashes(seg: Segment) -> np.ndarray:
    """The word hash of every token position (0 at the separators between texts)."""
    tokens = np.asarray(seg.tokens)
    out = np.zeros(len(tokens), np.uint64)
    real = tokens >= FIRST_ID
    out[real] = np.asarray(seg.vocab)[tokens[real].astype(np.int64) - FIRST_ID]
    return out


def _kgrams(seg: Segment, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(k-gram hash, valid) for every start position; a k-gram crossing a separator is invalid."""
    tokens = np.asarray(seg.tokens)
    n = len(tokens) - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    seps = np.concatenate(([0], np.cumsum(tokens < FIRST_ID)))
    valid = seps[k : k + n] - seps[:n] == 0
    return kgram_hashes(word_hashes(seg), k), valid


def _cover(starts: np.ndarray, k: int, length: int) -> np.ndarray:
    """Positions covered by a k-gram starting at any flagged start."""
    counts = np.concatenate(([0], np.cumsum(starts, dtype=np.int64)))
    pos = np.arange(length)
    lo = np.maximum(pos - k + 1, 0)
    hi = np.minimum(pos + 1, len(starts))
    return counts[hi] - counts[lo] > 0


def write_marks(
    path: Path, segments: list[Segment], known: np.ndarray, k: int, max_texts: int
) -> tuple[str, list[int], int]:
    """Compute the marks and write them as one file of packed bits, holding one segment's
    k-grams at a time. Returns (file name, byte offset per segment, marked token count)."""
    flagged = _flagged(segments, known, k, max_texts)
    packed = []
    marked = 0
    for seg in segments:
        m = _mask(seg, flagged, k)
        marked += int(m.sum())
        packed.append(np.packbits(m))
    name, offsets = _write_packed(path, packed)
    return name, offsets, marked


def _mask(seg: Segment, flagged: np.ndarray, k: int) -> np.ndarray:
    h, valid = _kgrams(seg, k)
    return _cover(valid & _member(h, flagged), k, len(seg.tokens))


PARTITION_BITS = 6  # the text counts of 1/64 of the hash space are summed at a time


def _flagged(segments: list[Segment], known: np.ndarray, k: int, max_texts: int) -> np.ndarray:
    """Sorted k-gram hashes to mark: known boilerplate, and those more than max_texts indexed
    texts hold. Text frequency over the whole index is summed out of core: each segment's
    (hash, texts holding it) pairs go to spill files by the hash's top bits, then each
    partition is summed alone, so memory is one segment or one partition, not the index
    (a million records held 1.1 billion k-grams: summed in memory they took 24 GB)."""
    shared = []
    shift = np.uint64(64 - PARTITION_BITS)
    parts = 1 << PARTITION_BITS
    with tempfile.TemporaryDirectory(prefix="copytrail-marks-") as spill:
        for i, seg in enumerate(segments):
            values, counts = _segment_counts(seg, k)
            bounds = np.searchsorted(values >> shift, np.arange(parts + 1, dtype=np.uint64))
            for p in range(parts):
                lo, hi = int(bounds[p]), int(bounds[p + 1])
                if hi > lo:
                    np.save(f"{spill}/{p}-{i}-h.npy", values[lo:hi])
                    np.save(f"{spill}/{p}-{i}-n.npy", counts[lo:hi])
            del values, counts
        for p in range(parts):
            found = [i for i in range(len(segments)) if os.path.exists(f"{spill}/{p}-{i}-h.npy")]
            if not found:
                continue
            values = np.concatenate([np.load(f"{spill}/{p}-{i}-h.npy") for i in found])
            counts = np.concatenate([np.load(f"{spill}/{p}-{i}-n.npy") for i in found])
            uniq, inverse = np.unique(values, return_inverse=True)
            totals = np.bincount(inverse, weights=counts, minlength=len(uniq))
            shared.append(uniq[totals > max_texts])
    every = np.concatenate([*shared, np.asarray(known, np.uint64)])
    return _distinct(np.sort(every))


def _segment_counts(seg: Segment, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct k-gram hashes of one segment, how many of its texts hold each)."""
    h, valid = _kgrams(seg, k)
    starts = np.asarray(seg.doc_starts)
    per_text = []
    for d in range(len(seg.doc_shas)):
        lo, hi = int(starts[d]), int(starts[d + 1])
        per_text.append(_distinct(np.sort(h[lo:hi][valid[lo:hi]])))
    del h, valid
    every = np.concatenate(per_text) if per_text else np.zeros(0, np.uint64)
    del per_text
    every.sort()
    if len(every) == 0:
        return every, np.zeros(0, np.uint32)
    run_starts = np.flatnonzero(np.concatenate(([True], every[1:] != every[:-1])))
    counts = np.diff(np.concatenate((run_starts, [len(every)]))).astype(np.uint32)
    return every[run_starts], counts


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    if len(sorted_values) < 2:
        return sorted_values
    return sorted_values[np.concatenate(([True], sorted_values[1:] != sorted_values[:-1]))]


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values in sorted_set, by binary search (np.isin would sort both arrays again)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _write_packed(path: Path, packed: list[np.ndarray]) -> tuple[str, list[int]]:
    offsets = np.concatenate(([0], np.cumsum([len(p) for p in packed]))).astype(int).tolist()
    name = f"boiler-{uuid.uuid4().hex[:12]}.npy"
    tmp = path / f".tmp-{name}"  # ends in .npy, so np.save writes exactly this file
    np.save(tmp, np.concatenate(packed) if packed else np.zeros(0, np.uint8))
    os.replace(tmp, path / name)
    return name, offsets[:-1]


class Marks:
    """The stored marks of one index, read a few bytes at a time."""

    def __init__(self, bits: np.ndarray, offsets: list[int]) -> None:
        self.bits = bits
        self.offsets = offsets

    @classmethod
    def load(cls, path: Path, entry: dict) -> Marks:
        bits = np.asarray(np.load(path / entry["file"], mmap_mode="r"))
        return cls(bits, entry["offsets"])

    def covered(self, segment: int, start: int, length: int) -> np.ndarray:
        """Boolean: is each of the `length` positions from `start` boilerplate?"""
        base = self.offsets[segment] * 8
        first, last = (base + start) // 8, (base + start + length - 1) // 8 + 1
        bits = np.unpackbits(self.bits[first:last])
        skip = (base + start) - first * 8
        return bits[skip : skip + length].astype(bool)
