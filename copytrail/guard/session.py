"""A verbatim check, one-shot or streamed, answered with evidence."""

from __future__ import annotations

import time
from typing import Any

from copytrail.context import Context
from copytrail.errors import InvalidInput
from copytrail.guard.budget import Budget
from copytrail.guard.check import Check, Occurrences, Span
from copytrail.guard.evidence import Evidence
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
    ) -> None:
        if min_words < 1:
            raise InvalidInput("--min-words must be at least 1")
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
        spans = outermost(self.check.spans())
        new = [r for r in changed if r.words >= self.min_words]
        t0 = time.perf_counter()
        out: dict[str, Any] = {
            "guard": self.index.name,
            "min_words": self.min_words,
            "flagged": bool(spans),
            "final": final,
            "words": self.check.words.count,
            "new_spans": len(new),
            "spans": self._render(spans),
        }
        if final and not spans:  # a clean text: its longest shorter runs are the evidence
            out["longest"] = self._render(outermost(self.check.longest(3)))
        self.elapsed += time.perf_counter() - t0
        out["elapsed_ms"] = round(self.elapsed * 1000, 3)
        return out

    def _render(self, spans: list[Span]) -> list[dict[str, Any]]:
        """Evidence of each span, worked out once per session (streamed answers repeat spans)."""

        def key(s: Span) -> tuple:
            return (s.q_start, s.q_end, s.total)

        todo = [s for s in spans if key(s) not in self._rendered]
        if todo:
            done = self.evidence.render(todo, self.check.words, self._query(), self.full_evidence)
            for s, d in zip(todo, done, strict=True):
                self._rendered[key(s)] = d
        return [self._rendered[key(s)] for s in spans]


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
) -> dict[str, Any]:
    session = CheckSession(ctx, guard, min_words, evidence, budget)
    t0 = time.perf_counter()
    session.check.feed(text)  # no answer per piece: there is only one
    session.elapsed = time.perf_counter() - t0
    session.received = [text]
    return session.finish(fresh_clock=False)  # one text, one time budget


