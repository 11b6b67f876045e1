"""Boilerplate marks of a guard index: which indexed words lie in a passage that is no protected
text, known boilerplate (the shared set) or a passage more than N indexed texts hold.

Worked out when an index is built or refreshed, over every segment (a passage's text frequency is
a property of the whole index), and stored as one bit per token position in a file named by the
manifest, so a check reads a few bytes per span and costs what it cost before.
"""

from __future__ import annotations

import os
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


def compute(segments: list[Segment], known: np.ndarray, k: int, max_texts: int) -> list[np.ndarray]:
    """A boolean mask per segment over its token positions."""
    per_seg = [_kgrams(s, k) for s in segments]
    # Text frequency of every k-gram over the whole index: each text's distinct k-grams, then
    # how many texts hold each one (one sort per text, then one over the distinct ones).
    distinct = []
    for seg, (h, valid) in zip(segments, per_seg, strict=True):
        starts = np.asarray(seg.doc_starts)
        for d in range(len(seg.doc_shas)):
            lo, hi = int(starts[d]), int(starts[d + 1])
            distinct.append(_distinct(np.sort(h[lo:hi][valid[lo:hi]])))
    every = np.concatenate(distinct) if distinct else np.zeros(0, np.uint64)
    every.sort()
    run_starts = np.flatnonzero(np.concatenate(([True], every[1:] != every[:-1])))
    counts = np.diff(np.concatenate((run_starts, [len(every)])))
    shared = every[run_starts[counts > max_texts]]
    flagged = _distinct(np.sort(np.concatenate((shared, np.asarray(known, np.uint64)))))
    masks = []
    for seg, (h, valid) in zip(segments, per_seg, strict=True):
        masks.append(_cover(valid & _member(h, flagged), k, len(seg.tokens)))
    return masks


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


def write(path: Path, masks: list[np.ndarray]) -> tuple[str, list[int]]:
    """One file of packed bits for all segments; returns (file name, byte offset per segment)."""
    packed = [np.packbits(m) for m in masks]
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
