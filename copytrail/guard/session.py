"""A verbatim check, one-shot or streamed, answered with evidence."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from copytrail.context import Context
from copytrail.errors import InvalidInput
from copytrail.guard.budget import Budget
from copytrail.guard.check import Check, Occurrences, Span
from copytrail.guard.evidence import Evidence
from copytrail.guard.marks import Marks
from copytrail.guard.scope import open_guard

DEFAULT_MIN_WORDS = 50


class CheckSession:
    """One check, one-shot or streamed: `feed` pieces, `finish` at the end. Each call answers
    with the spans that crossed the threshold so far."""

    def __init__(
        self,
        ctx: Context,
        guard: str,
        min_words: int = DEFAULT_MIN_WORDS,
        evidence: bool = True,
        budget: Budget | None = None,
        include_boilerplate: bool = False,
    ) -> None:
        if min_words < 1:
            raise InvalidInput("--min-words must be at least 1")
        self.ctx = ctx
        self.include_boilerplate = include_boilerplate
        self.index = open_guard(ctx, guard)
        self.evidence = Evidence(ctx, self.index)
        self.full_evidence = evidence
        self._rendered: dict[tuple, dict[str, Any]] = {}
        self.min_words = min_words
        self.budget = budget or Budget()
        self.check: Check = self.index.check(min_words, self.budget)
        self.received: list[str] = []
        self.elapsed = 0.0

    def feed(self, piece: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.budget.restart_clock()
        self.received.append(piece)
        changed = self.check.feed(piece)
        self.elapsed += time.perf_counter() - t0
        return self._answer(changed, final=False)

    def finish(self, fresh_clock: bool = True) -> dict[str, Any]:
        t0 = time.perf_counter()
        if fresh_clock:
            self.budget.restart_clock()
        changed = self.check.finish()
        self.elapsed += time.perf_counter() - t0
        return self._answer(changed, final=True)

    def _query(self) -> str:
        """The text so far, joined only when a new span needs its excerpt: joining on every
        piece would cost quadratic time on a long stream of small pieces."""
        if len(self.received) > 1:
            self.received = ["".join(self.received)]
        return self.received[0] if self.received else ""

    def _answer(self, changed: list[Occurrences], final: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        spans, boiler = split_boilerplate(
            outermost(self.check.spans()), self.index.marks, self.min_words
        )
        new = [s for s in spans if _key(s) not in self._rendered]
        out: dict[str, Any] = {
            "guard": self.index.name,
            "min_words": self.min_words,
            "flagged": bool(spans),
            "final": final,
            "words": self.check.words.count,
            "new_spans": len(new),
            "spans": self._render(spans),
        }
        if self.include_boilerplate:
            out["boilerplate"] = [
                {**self._render([s])[0], "boilerplate": True, "which": self._which(s)}
                for s in boiler
            ]
        if final and not spans:  # a clean text: its longest shorter runs are the evidence
            # longest first; runs of min_words or more here lie in boilerplate: not evidence
            shorter = [s for s in self.check.longest(12) if s.words < self.min_words][:3]
            out["longest"] = self._render(outermost(shorter))
        self.elapsed += time.perf_counter() - t0
        out["elapsed_ms"] = round(self.elapsed * 1000, 3)
        return out

    def _which(self, span: Span) -> list[str]:
        """Which boilerplate a span is: the passages of the shared set it holds, or a passage
        more indexed texts hold than the index allows."""
        from copytrail.fingerprint.boilerplate import K, boilerplate_set
        from copytrail.fingerprint.hashing import kgram_hashes

        ids = np.concatenate(self.check.words.hashes)[span.q_start : span.q_end]
        found = boilerplate_set(self.ctx).which(kgram_hashes(ids, K))
        if not found:
            n = (self.index.manifest.get("boilerplate") or {}).get("max_texts")
            found = [f"a passage in more than {n} indexed texts"]
        return found

    def _render(self, spans: list[Span]) -> list[dict[str, Any]]:
        """Evidence of each span, worked out once per session (streamed answers repeat spans)."""

        todo = [s for s in spans if _key(s) not in self._rendered]
        if todo:
            done = self.evidence.render(todo, self.check.words, self._query(), self.full_evidence)
            for s, d in zip(todo, done, strict=True):
                self._rendered[_key(s)] = d
        return [self._rendered[_key(s)] for s in spans]


def _key(s: Span) -> tuple:
    return (s.q_start, s.q_end, s.total)


def split_boilerplate(
    spans: list[Span], marks: Marks | None, min_words: int
) -> tuple[list[Span], list[Span]]:
    """(protected spans, boilerplate spans). A span lying in boilerplate is not protected text;
    one that borders boilerplate keeps only its protected stretches of min_words or more."""
    if marks is None:
        return spans, []
    protected: list[Span] = []
    boiler: list[Span] = []
    for span in spans:
        run = span.runs[0]  # every run of a span covers the same words of the input
        start = int(run.positions[0]) + (span.q_start - run.q_start)
        covered = marks.covered(run.segment, start, span.words)
        if not covered.any():
            protected.append(span)
            continue
        kept = [(a, b) for a, b in _stretches(~covered) if b - a >= min_words]
        protected.extend(_trimmed(span, a, b) for a, b in kept)
        if not kept:
            boiler.append(span)
        else:  # the boilerplate the protected part borders, for those who ask
            boiler.extend(
                _trimmed(span, a, b) for a, b in _stretches(covered) if b - a >= min_words
            )
    return protected, boiler


def _stretches(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def _trimmed(span: Span, a: int, b: int) -> Span:
    """Words [a, b) of a span (relative to its start), with every place moved along."""
    runs = [
        Occurrences(
            r.segment,
            span.q_start + a,
            span.q_start + b,
            r.positions + a,
            r.total,
            open=r.open and b == span.words,
        )
        for r in span.runs
    ]
    return Span(span.q_start + a, span.q_start + b, runs)


def outermost(spans: list[Span]) -> list[Span]:
    """Drop spans inside a longer one: the same words of the input, also held (with a break or a
    different start) by other texts. The longer span already reports those words."""
    kept: list[Span] = []
    for s in spans:  # longest first
        if not any(k.q_start <= s.q_start and s.q_end <= k.q_end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.q_start)


def check_text(
    ctx: Context,
    text: str,
    guard: str,
    min_words: int = DEFAULT_MIN_WORDS,
    evidence: bool = True,
    budget: Budget | None = None,
    include_boilerplate: bool = False,
) -> dict[str, Any]:
    session = CheckSession(ctx, guard, min_words, evidence, budget, include_boilerplate)
    t0 = time.perf_counter()
    session.check.feed(text)  # no answer per piece: there is only one
    session.elapsed = time.perf_counter() - t0
    session.received = [text]
    return session.finish(fresh_clock=False)  # one text, one time budget
