"""Verified alignment between a work's text and a copy's text, giving exact evidence spans.

Seeds are word k-grams that occur once in the work and anywhere in the copy. Seeds on one
diagonal form exact runs; runs separated by a few mismatched words (OCR errors, a changed word,
an inserted line number) are merged into one span. Spans shorter than MIN_SPAN_WORDS are noise
(shared common phrases) and are dropped, as are spans holding nothing distinctive of the work
(licence boilerplate that many texts share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from copytrail.fingerprint import hashing
from copytrail.fingerprint.normalize import token_spans

SEED_K = 6
MAX_GAP = 6  # mismatched words bridged inside one span
MIN_SPAN_WORDS = 25


@dataclass
class Tokenized:
    words: list[bytes]
    starts: np.ndarray  # character offsets into the text
    ends: np.ndarray
    kgrams: np.ndarray
    ids: np.ndarray  # one id per word: spans are extended and joined by comparing these
    _unique: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def of(cls, text: str) -> Tokenized:
        ws, st, en = token_spans(text)
        ids = hashing.word_ids(ws)
        return cls(ws, st, en, hashing.kgram_hashes(ids, SEED_K), ids)

    def unique_kgrams(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted k-gram hashes occurring once, their word positions), computed once per text:
        a listed work is indexed once for all the copies aligned with it."""
        if self._unique is None:
            uniq, first, counts = np.unique(self.kgrams, return_index=True, return_counts=True)
            keep = counts == 1
            self._unique = (uniq[keep], first[keep])
        return self._unique


@dataclass
class Span:
    work_start: int  # word indices, end exclusive
    work_end: int
    copy_start: int
    copy_end: int

    @property
    def words(self) -> int:
        return self.work_end - self.work_start


@dataclass
class Alignment:
    spans: list[Span]
    work_words: int
    copy_words: int
    covered_work: int
    covered_copy: int

    @property
    def coverage(self) -> float:
        return self.covered_work / self.work_words if self.work_words else 0.0

    @property
    def copy_coverage(self) -> float:
        return self.covered_copy / self.copy_words if self.copy_words else 0.0

    @property
    def longest(self) -> int:
        return max((s.words for s in self.spans), default=0)

    @property
    def similarity(self) -> float:
        total = self.work_words + self.copy_words
        return (self.covered_work + self.covered_copy) / total if total else 0.0


def _runs(work: Tokenized, copy: np.ndarray) -> np.ndarray:
    """Exact runs as rows (work_start, work_end, copy_start, copy_end) in word indices. Costs
    O(copy log work): the work's unique k-grams are sorted once."""
    if len(work.kgrams) == 0 or len(copy) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    uniq, first = work.unique_kgrams()
    idx = np.searchsorted(uniq, copy)
    idx[idx >= len(uniq)] = 0
    hit = uniq[idx] == copy if len(uniq) else np.zeros(len(copy), bool)
    ci = np.flatnonzero(hit)
    if len(ci) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    wj = first[idx[ci]]
    brk = np.ones(len(ci), dtype=bool)
    brk[1:] = (np.diff(ci) != 1) | (np.diff(wj) != 1)
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], len(ci)) - 1
    return np.stack([wj[starts], wj[ends] + SEED_K, ci[starts], ci[ends] + SEED_K], axis=1)


def _equal_run(a: np.ndarray, ai: int, b: np.ndarray, bi: int, step: int) -> int:
    """How many words a[ai + k*step] == b[bi + k*step] hold for k = 0, 1, ... (step 1 or -1),
    compared a growing block at a time: the cost is the length of the run."""
    n, block = 0, 64
    while True:
        if step > 0:
            m = min(len(a) - ai - n, len(b) - bi - n, block)
            if m <= 0:
                return n
            eq = a[ai + n : ai + n + m] == b[bi + n : bi + n + m]
        else:
            m = min(ai - n + 1, bi - n + 1, block)
            if m <= 0:
                return n
            eq = (a[ai - n - m + 1 : ai - n + 1] == b[bi - n - m + 1 : bi - n + 1])[::-1]
        if eq.all():
            n += m
            block = min(block * 2, 1 << 16)
            continue
        return n + int(np.argmin(eq))


def _maximal_runs(work: Tokenized, copy: Tokenized) -> list[list[int]]:
    """Seed runs extended word by word along their diagonal as far as the texts agree, so a
    phrase the work repeats (which gives no unique seed) does not split a verbatim span."""
    out: list[list[int]] = []
    reach: dict[int, int] = {}  # diagonal -> copy end already covered on it
    for ws, we, cs, ce in _runs(work, copy.kgrams).tolist():
        diagonal = ws - cs
        if reach.get(diagonal, -1) >= ce:
            continue  # inside a run already extended
        back = _equal_run(work.ids, ws - 1, copy.ids, cs - 1, -1) if ws and cs else 0
        fwd = _equal_run(work.ids, we, copy.ids, ce, 1)
        run = [ws - back, we + fwd, cs - back, ce + fwd]
        reach[diagonal] = run[3]
        out.append(run)
    out.sort(key=lambda r: (r[2], r[0]))
    return out


def align(work: Tokenized, copy: Tokenized, distinctive: np.ndarray | None = None) -> Alignment:
    """Spans of `work` found in `copy`. `distinctive`: sorted word positions of the work's
    non-boilerplate winnowed k-grams; a span must contain one to count."""
    spans: list[Span] = []
    for ws, we, cs, ce in _maximal_runs(work, copy):
        if spans:
            s = spans[-1]
            gw, gc = ws - s.work_end, cs - s.copy_end
            if we <= s.work_end and ce <= s.copy_end and ws >= s.work_start:
                continue  # nothing new
            if (
                -SEED_K <= gw <= MAX_GAP
                and -SEED_K <= gc <= MAX_GAP
                and we > s.work_end
                and ce > s.copy_end
            ):
                s.work_end, s.copy_end = we, ce
                continue
        spans.append(Span(ws, we, cs, ce))
    kept = []
    for s in spans:
        if s.words < MIN_SPAN_WORDS:
            continue
        if distinctive is not None:
            lo = np.searchsorted(distinctive, s.work_start)
            if lo >= len(distinctive) or distinctive[lo] + hashing.WINNOW_K > s.work_end:
                continue
        kept.append(s)
    return Alignment(
        spans=kept,
        work_words=len(work.words),
        copy_words=len(copy.words),
        covered_work=_union([(s.work_start, s.work_end) for s in kept]),
        covered_copy=_union([(s.copy_start, s.copy_end) for s in kept]),
    )


def _union(ranges: list[tuple[int, int]]) -> int:
    total, end = 0, -1
    for a, b in sorted(ranges):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def char_spans(al: Alignment, work: Tokenized, copy: Tokenized) -> list[dict[str, int]]:
    """Spans as character offsets into the two original texts (end exclusive)."""
    return [
        {
            "work_start": int(work.starts[s.work_start]),
            "work_end": int(work.ends[s.work_end - 1]),
            "copy_start": int(copy.starts[s.copy_start]),
            "copy_end": int(copy.ends[s.copy_end - 1]),
            "words": s.words,
        }
        for s in sorted(al.spans, key=lambda s: s.work_start)
    ]
