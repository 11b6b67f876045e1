"""One immutable piece of a guard index: the normalised words of a set of texts, as a word-level
suffix array.

Files of a segment directory (all memory-mapped when loaded, so opening costs milliseconds):
- `vocab.npy`   uint64, sorted: the word hashes (fingerprint.hashing.word_ids) present here; a
                word's token id is its position + FIRST_ID. Query words not in it become UNK,
                which no indexed position holds, so they never match.
- `tokens.npy`  uint32: SEP, then each text's token ids followed by SEP. SEP never occurs in a
                query, so no match crosses from one text into the next.
- `sa.npy`      int32 (int64 past 2^31 tokens): suffix array of tokens (pydivsufsort).
- `docs.npy`    int64, one more than the texts: the token position where each text starts.
- `docs.json`   the texts' SHA-256 (the ledger's text blobs), in the same order.
- `buckets.npy` int64, one more than the token ids: the suffix-array row where suffixes starting
                with each token id begin, so a lookup starts inside its first word's bucket.
- `marks.npy`   int64: character offset of every MARK_EVERY-th word of each text, so evidence
                offsets need only a small window of the text re-read, not the whole book.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEP = 0
UNK = 1
FIRST_ID = 2
FILES = ("vocab.npy", "tokens.npy", "sa.npy", "docs.npy", "docs.json", "marks.npy", "buckets.npy")
MARK_EVERY = 64


@dataclass
class Segment:
    path: Path
    vocab: np.ndarray
    tokens: np.ndarray
    sa: np.ndarray
    doc_starts: np.ndarray
    doc_shas: list[str]
    marks: np.ndarray
    buckets: np.ndarray

    @classmethod
    def load(cls, path: Path) -> Segment:
        def arr(name: str) -> np.ndarray:
            # A plain ndarray over the mapping: numpy's memmap subclass costs microseconds
            # per indexing operation, which a check does thousands of times.
            return np.asarray(np.load(path / name, mmap_mode="r"))

        shas = json.loads((path / "docs.json").read_text())
        return cls(
            path,
            arr("vocab.npy"),
            arr("tokens.npy"),
            arr("sa.npy"),
            arr("docs.npy"),
            shas,
            arr("marks.npy"),
            arr("buckets.npy"),
        )

    @property
    def mark_starts(self) -> np.ndarray:
        """Where each text's marks begin in `marks` (computed, not stored)."""
        got = getattr(self, "_mark_starts", None)
        if got is None:
            lengths = np.diff(np.asarray(self.doc_starts)) - 1
            per_doc = -(-lengths // MARK_EVERY)
            got = self._mark_starts = np.concatenate(([0], np.cumsum(per_doc)))
        return got

    def doc_length(self, doc: int) -> int:
        return int(self.doc_starts[doc + 1] - self.doc_starts[doc] - 1)

    def text_marks(self, doc: int) -> np.ndarray:
        ms = self.mark_starts
        return np.asarray(self.marks[ms[doc] : ms[doc + 1]])

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def token_count(self) -> int:
        """Indexed words (separators excluded)."""
        return len(self.tokens) - len(self.doc_shas) - 1

    @property
    def bytes_on_disk(self) -> int:
        return sum((self.path / f).stat().st_size for f in FILES)

    def to_ids(self, hashes: np.ndarray) -> np.ndarray:
        """Word hashes of a query -> this segment's token ids (UNK where the word is absent)."""
        out = np.full(len(hashes), UNK, dtype=np.uint32)
        if len(self.vocab) == 0 or len(hashes) == 0:
            return out
        pos = np.searchsorted(self.vocab, hashes)
        pos_c = np.minimum(pos, len(self.vocab) - 1)
        hit = self.vocab[pos_c] == hashes
        out[hit] = (pos_c[hit] + FIRST_ID).astype(np.uint32)
        return out

    def doc_of(self, positions: np.ndarray) -> np.ndarray:
        """Index of the text holding each token position."""
        return np.searchsorted(self.doc_starts, positions, side="right") - 1

    def sa_range(self, pattern: np.ndarray) -> tuple[int, int]:
        """Suffix-array rows [lo, hi) whose suffix starts with `pattern`."""
        lo, hi = self.sa_ranges(np.asarray(pattern, np.uint32)[None, :])
        return int(lo[0]), int(hi[0])

    def sa_ranges(self, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) rows for each row of `patterns` (A x k token ids), by binary searches run
        side by side: each step is a few numpy operations over all A patterns, so checking a
        text costs about 2 x log2(n) vectorised steps, not that many per anchor in Python."""
        tokens, sa = self.tokens, self.sa
        n = len(tokens)
        first = patterns[:, 0].astype(np.int64)
        known = first < len(self.buckets) - 1
        first = np.where(known, first, 0)
        # Suffixes starting with token t fill rows buckets[t] .. buckets[t + 1].
        lo = np.where(known, self.buckets[first], 0)
        hi = np.where(known, self.buckets[first + 1], 0)
        if patterns.shape[1] == 1:
            return lo, hi
        # Lower and upper bounds are searched in the same loop: rows 0..A-1 find the first
        # suffix not below the pattern, rows A..2A-1 the first suffix above it.
        a = len(patterns)
        rest = np.concatenate((patterns[:, 1:], patterns[:, 1:]))
        or_equal = np.repeat([False, True], a)
        left = np.concatenate((lo, lo))
        right = np.concatenate((hi, hi))
        offsets = np.arange(1, patterns.shape[1], dtype=np.int64)
        rows = np.arange(2 * a)
        while True:
            active = np.flatnonzero(left < right)
            if not len(active):
                break
            mid = (left[active] + right[active]) // 2
            idx = sa[mid].astype(np.int64)[:, None] + offsets[None, :]
            np.minimum(idx, n - 1, out=idx)  # past the end reads the final separator
            window = tokens[idx]
            want = rest[active]
            diff = window != want
            col = diff.argmax(axis=1)
            r = rows[: len(active)]
            differs = diff[r, col]
            before = differs & (window[r, col] < want[r, col])
            go_right = before | (~differs & or_equal[active])
            left[active] = np.where(go_right, mid + 1, left[active])
            right[active] = np.where(go_right, right[active], mid)
        return left[:a], left[a:]


@dataclass
class IndexedText:
    sha256: str
    hashes: np.ndarray  # word hashes, one per normalised word
    marks: np.ndarray  # character offset of words 0, MARK_EVERY, 2 * MARK_EVERY, ...


def build_segment(
    root: Path,
    texts: Iterable[IndexedText],
    progress: Callable[[str, int, int | None], None] | None = None,
) -> Path:
    """Write a segment of texts under `root`; return its directory.

    Written into a temporary directory and renamed, so a killed build leaves no half segment.
    """
    from pydivsufsort import divsufsort

    shas: list[str] = []
    parts: list[np.ndarray] = []
    marks: list[np.ndarray] = []
    for t in texts:
        shas.append(t.sha256)
        parts.append(np.asarray(t.hashes, dtype=np.uint64))
        marks.append(np.asarray(t.marks, dtype=np.int64))
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    all_hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    vocab, inverse = np.unique(all_hashes, return_inverse=True)
    del all_hashes
    n = int(lengths.sum()) + len(parts) + 1
    tokens = np.zeros(n, dtype=np.uint32)  # zeros are the separators
    starts = np.empty(len(parts) + 1, dtype=np.int64)
    starts[: len(parts)] = 1 + np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    starts[len(parts)] = n
    if len(parts):
        # Position of every word: its text's start plus its offset within the text.
        within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
            np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths
        )
        positions = np.repeat(starts[: len(parts)], lengths) + within
        tokens[positions] = inverse.astype(np.uint32) + FIRST_ID
        del within, positions, inverse
    if progress:
        progress("sorting suffixes", 0, 1)
    sa = divsufsort(tokens)
    if progress:
        progress("sorting suffixes", 1, 1)
    sa = sa.astype(np.int32 if n < 2**31 else np.int64, copy=False)

    root.mkdir(parents=True, exist_ok=True)
    name = f"seg-{uuid.uuid4().hex[:12]}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    np.save(tmp / "vocab.npy", vocab)
    np.save(tmp / "tokens.npy", tokens)
    np.save(tmp / "sa.npy", sa)
    np.save(tmp / "docs.npy", starts)
    (tmp / "docs.json").write_text(json.dumps(shas))
    counts = np.bincount(tokens, minlength=len(vocab) + FIRST_ID)
    np.save(tmp / "buckets.npy", np.concatenate(([0], np.cumsum(counts))).astype(np.int64))
    np.save(tmp / "marks.npy", np.concatenate(marks) if marks else np.zeros(0, np.int64))
    for f in FILES:
        _fsync(tmp / f)
    final = root / name
    os.rename(tmp, final)
    return final


def segment_texts(seg: Segment, keep: set[str]) -> Iterable[IndexedText]:
    """The texts of `seg` that are in `keep`, as they were indexed: rebuilding a segment without
    some texts needs no access to the texts themselves."""
    vocab = np.asarray(seg.vocab)
    for i, sha in enumerate(seg.doc_shas):
        if sha in keep:
            ids = np.asarray(seg.tokens[seg.doc_starts[i] : seg.doc_starts[i + 1] - 1])
            yield IndexedText(sha, vocab[ids.astype(np.int64) - FIRST_ID], seg.text_marks(i))


def remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
