"""Verbatim check: which stretches of a text occur word for word in a guard index.

The text's normalised words are matched against each segment's suffix array. Only anchors are
looked up: every `stride` words, the `k` words starting there. A shared run of `min_words` words
always contains an anchor with its k words inside the run (stride <= min_words - k + 1), so no
reportable span is missed, and a 2,000-character check costs about fifteen binary searches. Each
anchor's occurrences are then extended left and right word by word, vectorised over all
occurrences at once, which gives maximal spans and their counts.

The same object serves one-shot and streaming checks: `feed` takes the next piece of text and
only looks at the words it adds (open alignments grow, new anchors are looked up), so a server
can stop a generation as soon as a span crosses the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from copytrail.fingerprint.hashing import word_ids
from copytrail.fingerprint.normalize import token_spans
from copytrail.guard.budget import Budget
from copytrail.guard.segment import UNK, Segment

ANCHOR_WORDS = 8  # words looked up per anchor: rare enough that occurrences stay few
# Anchors at least this often, even for a high threshold: shorter runs (evidence of a
# near-verbatim copy) are then found too; every run of MAX_STRIDE + ANCHOR_WORDS - 1 words is.
MAX_STRIDE = 24
MAX_OCCURRENCES = 20_000  # occurrences of one anchor followed word by word; more are sampled
LONGEST_KEPT = 5  # spans under the threshold kept as "longest" evidence


@dataclass
class Occurrences:
    """One stretch of the query found at one or more places in one segment."""

    segment: int
    q_start: int  # query word index, inclusive
    q_end: int  # exclusive
    positions: np.ndarray  # token position in the segment where each occurrence starts
    total: int  # occurrences in the index (positions may be a sample when very common)
    open: bool = False  # reaches the end of the text received so far, so it may still grow

    @property
    def words(self) -> int:
        return self.q_end - self.q_start


def _extend(tokens: np.ndarray, starts: np.ndarray, want: np.ndarray, step: int) -> np.ndarray:
    """How many tokens match `want` walking from each start (step +1 right, -1 left)."""
    n = len(tokens)
    got = np.zeros(len(starts), dtype=np.int64)
    active = np.arange(len(starts))
    done = 0
    chunk = 8
    while len(active) and done < len(want):
        c = min(chunk, len(want) - done)
        idx = starts[active, None] + step * np.arange(done, done + c)[None, :]
        # Both ends of tokens are separators, never matched; np.clip costs more per call.
        if step > 0:
            np.minimum(idx, n - 1, out=idx)
        else:
            np.maximum(idx, 0, out=idx)
        eq = tokens[idx] == want[None, done : done + c]
        full = eq.all(axis=1)
        got[active] += np.where(full, c, eq.argmin(axis=1))
        active = active[full]
        done += c
        chunk = min(chunk * 4, 512)
    return got


class SegmentMatcher:
    """Matching state of one text (growing as it streams) against one segment."""

    def __init__(self, seg: Segment, seg_no: int, min_words: int, budget: Budget) -> None:
        self.seg = seg
        self.seg_no = seg_no
        self.budget = budget
        self.k = max(1, min(ANCHOR_WORDS, min_words))
        self.stride = max(1, min(min_words - self.k + 1, MAX_STRIDE))
        self._buf = np.zeros(256, dtype=np.uint32)  # grows by doubling: streams stay linear
        self._n = 0
        self.next_anchor = 0
        self.open: list[Occurrences] = []
        self.closed: list[Occurrences] = []

    @property
    def q(self) -> np.ndarray:
        """The text's token ids so far."""
        return self._buf[: self._n]

    def feed(self, ids: np.ndarray) -> list[Occurrences]:
        """Add words; return the runs that changed (grew or were found)."""
        start = self._n
        if start + len(ids) > len(self._buf):
            grown = np.zeros(max(2 * len(self._buf), start + len(ids)), dtype=np.uint32)
            grown[:start] = self._buf[:start]
            self._buf = grown
        self._buf[start : start + len(ids)] = ids
        self._n = start + len(ids)
        changed = self._grow_open(start) if len(ids) else []
        anchors = []
        while self.next_anchor + self.k <= len(self.q):
            anchors.append(self.next_anchor)
            self.next_anchor += self.stride
        changed.extend(self._anchors(anchors))
        return changed

    def finish(self) -> None:
        """The text is complete: a last anchor covers its tail, then nothing stays open."""
        last = len(self.q) - self.k
        if last >= 0 and self.next_anchor - self.stride < last:
            self._anchors([last])
        self.closed.extend(self.open)
        for o in self.open:
            o.open = False
        self.open = []

    @property
    def runs(self) -> list[Occurrences]:
        return self.closed + self.open

    def _grow_open(self, old_len: int) -> list[Occurrences]:
        still_open: list[Occurrences] = []
        changed: list[Occurrences] = []
        want = self.q[old_len:]
        for run in self.open:
            self.budget.spend(examined=len(run.positions))
            got = _extend(self.seg.tokens, run.positions + run.words, want, +1)
            for length in np.unique(got).tolist():
                sel = run.positions[got == length]
                part = Occurrences(
                    self.seg_no,
                    run.q_start,
                    run.q_end + length,
                    sel,
                    run.total if len(sel) == len(run.positions) else len(sel),
                    open=length == len(want),
                )
                (still_open if part.open else self.closed).append(part)
                changed.append(part)
        self.open = still_open
        return changed

    def _anchors(self, starts: list[int]) -> list[Occurrences]:
        # Anchors holding a word the index has never seen cannot match: skip them unsearched.
        starts = [i for i in starts if not (self.q[i : i + self.k] == UNK).any()]
        if not starts:
            return []
        self.budget.spend(examined=len(starts))
        patterns = np.stack([self.q[i : i + self.k] for i in starts])
        los, his = self.seg.sa_ranges(patterns)
        found: list[Occurrences] = []
        for i, lo, hi in zip(starts, los.tolist(), his.tolist(), strict=True):
            if hi > lo:
                found.extend(self._follow(i, lo, hi))
        return found

    def _follow(self, i: int, lo: int, hi: int) -> list[Occurrences]:
        """Extend the occurrences (suffix-array rows lo..hi) of the anchor at word i."""
        total = hi - lo
        length = self.k
        while hi - lo > MAX_OCCURRENCES and i + length < len(self.q):
            # Very common words: narrow with a longer stretch before following occurrences.
            length = min(len(self.q) - i, length * 2)
            lo2, hi2 = self.seg.sa_range(self.q[i : i + length])
            if lo2 == hi2:
                break
            lo, hi = lo2, hi2
        self.budget.spend(examined=min(hi - lo, MAX_OCCURRENCES))
        positions = np.sort(np.asarray(self.seg.sa[lo : min(hi, lo + MAX_OCCURRENCES)], np.int64))
        # Alignments (position - word index) that an earlier anchor already followed past this
        # word are not followed again.
        runs = self.runs
        self.budget.spend(examined=len(runs))  # the scan below reads every run kept so far
        live = [r.positions - r.q_start for r in runs if r.q_start <= i < r.q_end]
        if live:
            covered = np.concatenate(live)
            deltas = positions - i
            if len(covered) * len(deltas) <= 4096:  # small: a set beats np.isin's sorting
                seen = set(covered.tolist())
                keep = np.array([d not in seen for d in deltas.tolist()], dtype=bool)
            else:
                keep = ~np.isin(deltas, covered)
            positions = positions[keep]
        if not len(positions):
            return []
        tokens = self.seg.tokens
        right = self.k + _extend(tokens, positions + self.k, self.q[i + self.k :], +1)
        left = _extend(tokens, positions - 1, self.q[:i][::-1], -1)
        found: list[Occurrences] = []
        keys = left * (len(self.q) + 1) + right  # one integer per (left, right) extension
        distinct = np.unique(keys).tolist()
        self.budget.spend(runs=len(distinct))
        for key in distinct:
            lft, rgt = divmod(key, len(self.q) + 1)
            sel = positions[keys == key] - lft
            run = Occurrences(
                self.seg_no,
                i - lft,
                i + rgt,
                sel,
                total if len(sel) == len(positions) == total else len(sel),
                open=i + rgt == len(self.q),
            )
            (self.open if run.open else self.closed).append(run)
            found.append(run)
        return found


@dataclass
class QueryWords:
    """Normalised words of the text received so far, with character offsets."""

    hashes: list[np.ndarray] = field(default_factory=list)
    starts: list[np.ndarray] = field(default_factory=list)
    ends: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def add(self, hashes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.hashes.append(hashes)
        self.starts.append(starts)
        self.ends.append(ends)
        self.count += len(hashes)

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self.starts) > 1:
            self.starts = [np.concatenate(self.starts)]
            self.ends = [np.concatenate(self.ends)]
        if not self.starts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return self.starts[0], self.ends[0]


class StreamWords:
    """Cuts streamed text into words without splitting one across pieces: the last word of a
    piece (and an end-of-line hyphen after it) waits for the next piece or the end."""

    def __init__(self) -> None:
        self.pending = ""
        self.base = 0  # character offset of `pending` in the whole stream

    def feed(self, piece: str, final: bool = False) -> tuple[list[bytes], np.ndarray, np.ndarray]:
        text = self.pending + piece
        ws, starts, ends = token_spans(text)
        keep = len(ws) if final else max(0, len(ws) - 1)
        cut = int(starts[keep]) if keep < len(ws) else len(text)
        out = (ws[:keep], starts[:keep] + self.base, ends[:keep] + self.base)
        self.pending = text[cut:]
        self.base += cut
        return out

    @property
    def consumed(self) -> int:
        return self.base


class Check:
    """A verbatim check of one text against every segment of one guard index."""

    def __init__(
        self, segments: list[Segment], min_words: int, budget: Budget | None = None
    ) -> None:
        if min_words < 1:
            raise ValueError("min_words must be at least 1")
        self.min_words = min_words
        self.budget = budget or Budget()
        self.matchers = [
            SegmentMatcher(s, n, min_words, self.budget) for n, s in enumerate(segments)
        ]
        self.words = QueryWords()
        self._stream = StreamWords()
        self.finished = False

    def feed(self, piece: str) -> list[Occurrences]:
        """Add the next piece of the text; return the runs it created or grew."""
        return self._add(*self._stream.feed(piece))

    def finish(self) -> list[Occurrences]:
        changed = self._add(*self._stream.feed("", final=True))
        for m in self.matchers:
            m.finish()
        self.finished = True
        return changed

    def _add(self, ws: list[bytes], starts: np.ndarray, ends: np.ndarray) -> list[Occurrences]:
        if not ws:
            return []
        hashes = word_ids(ws)
        self.words.add(hashes, starts, ends)
        changed: list[Occurrences] = []
        for m in self.matchers:
            changed.extend(m.feed(m.seg.to_ids(hashes)))
        return changed

    def runs(self) -> list[Occurrences]:
        return [r for m in self.matchers for r in m.runs]

    def spans(self) -> list[Span]:
        """Stretches of the text of at least min_words words found in the index, longest first;
        one per stretch, whatever number of places and segments hold it."""
        return _grouped(r for r in self.runs() if r.words >= self.min_words)

    def longest(self, n: int = LONGEST_KEPT) -> list[Span]:
        return _grouped(self.runs())[:n]


@dataclass
class Span:
    q_start: int
    q_end: int
    runs: list[Occurrences]

    @property
    def words(self) -> int:
        return self.q_end - self.q_start

    @property
    def total(self) -> int:
        return sum(r.total for r in self.runs)


def _grouped(runs: Iterable[Occurrences]) -> list[Span]:
    by_range: dict[tuple[int, int], Span] = {}
    for r in runs:
        span = by_range.setdefault((r.q_start, r.q_end), Span(r.q_start, r.q_end, []))
        span.runs.append(r)
    return sorted(by_range.values(), key=lambda s: (-s.words, s.q_start))
