"""Evidence for guard answers: turning positions in an index into places a person can look up
(the text's SHA-256, the copies and works that hold it, character offsets and snippets)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import and_, select

from copytrail.catalog.schema import copies, datasets, matches, works, works_lists
from copytrail.context import Context
from copytrail.fingerprint.normalize import token_spans
from copytrail.guard.check import Span
from copytrail.guard.index import GuardIndex
from copytrail.guard.segment import MARK_EVERY, Segment
from copytrail.ledger.db import read_connection
from copytrail.store.blobs import BlobStore

MAX_SOURCES = 5  # places listed per span; the occurrence count is always given
HOLDERS_LISTED = 10  # copies listed per indexed text
HOLDERS_TTL = 30.0  # seconds a text's copies and works are remembered between checks
EXCERPT_CHARS = 300  # of the checked text, per span


class TextCache:
    """Recently read texts, bounded by total characters, so repeated hits on one book do not
    decompress it again."""

    def __init__(self, store: BlobStore, max_chars: int = 256 * 1024 * 1024) -> None:
        self.store = store
        self.max_chars = max_chars
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    def get(self, sha: str) -> str:
        text = self._texts.get(sha)
        if text is not None:
            self._texts.move_to_end(sha)
            return text
        text = self.store.get(sha).decode("utf-8")
        self._texts[sha] = text
        self._size += len(text)
        while self._size > self.max_chars and len(self._texts) > 1:
            _k, old = self._texts.popitem(last=False)
            self._size -= len(old)
        return text


class Evidence:
    """Turns segment positions into places a person can look up: the text's SHA-256, the copies
    and works that hold it, and character offsets into it."""

    def __init__(self, ctx: Context, index: GuardIndex, dataset_ids: list[int] | None = None):
        self.ctx = ctx
        self.index = index
        self.dataset_ids = dataset_ids
        # Shared by every check of this Library (a server's lifetime): hot books are read and
        # looked up once. Holders expire so copies ingested later show up.
        self.texts = ctx.caches.get("evidence-texts", lambda: TextCache(ctx.store))
        self._holders = ctx.caches.get("evidence-holders", dict)

    def char_span(self, seg: Segment, doc: int, word: int, n_words: int) -> tuple[int, int]:
        """Character offsets of words [word, word + n_words) of a text, read from a window
        between two stored marks rather than the whole text."""
        text = self.texts.get(seg.doc_shas[doc])
        marks = seg.text_marks(doc)
        first, last = word // MARK_EVERY, (word + n_words - 1) // MARK_EVERY + 1
        c0 = int(marks[first])
        c1 = int(marks[last]) if last < len(marks) else len(text)
        _ws, starts, ends = token_spans(text[c0:c1])
        rel = word - first * MARK_EVERY
        return c0 + int(starts[rel]), c0 + int(ends[rel + n_words - 1])

    def holders(self, sha: str) -> dict[str, Any]:
        """Copies (readable, in scope) and works whose text this is, and works an audit matched
        those copies to."""
        return self.holders_many([sha])[sha]

    def holders_many(self, shas: list[str]) -> dict[str, dict[str, Any]]:
        """holders() of several texts with three queries in all, not three per text."""
        scope = tuple(self.dataset_ids) if self.dataset_ids is not None else None
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for sha in dict.fromkeys(shas):
            hit = self._holders.get((sha, scope))
            if hit is not None and now - hit[0] < HOLDERS_TTL:
                out[sha] = hit[1]
            else:
                missing.append(sha)
        if not missing:
            return out
        copies_of: dict[str, list[dict[str, Any]]] = {sha: [] for sha in missing}
        works_of: dict[str, dict[tuple[str, str], str | None]] = {sha: {} for sha in missing}
        copy_text: dict[int, str] = {}
        with read_connection(self.ctx.db) as conn:
            q = (
                select(
                    copies.c.id,
                    copies.c.text_sha256,
                    copies.c.title,
                    copies.c.path,
                    datasets.c.name,
                    datasets.c.version,
                )
                .join(datasets, datasets.c.id == copies.c.dataset_id)
                .where(and_(copies.c.text_sha256.in_(missing), copies.c.status == "ok"))
                .order_by(copies.c.id)
            )
            if self.dataset_ids is not None:
                q = q.where(copies.c.dataset_id.in_(self.dataset_ids))
            for r in conn.execute(q):
                listed = copies_of[r.text_sha256]
                listed.append(
                    {
                        "id": r.id,
                        "dataset": f"{r.name}@{r.version}" if r.version else r.name,
                        "title": r.title,
                        "path": r.path,
                    }
                )
                copy_text[r.id] = r.text_sha256
            wq = (
                select(works.c.work_id, works.c.title, works.c.text_sha256, works_lists.c.name)
                .join(works_lists)
                .where(works.c.text_sha256.in_(missing))
            )
            for r in conn.execute(wq):
                works_of[r.text_sha256][(r.name, r.work_id)] = r.title
            if copy_text:
                mq = (
                    select(works.c.work_id, works.c.title, works_lists.c.name, matches.c.copy_id)
                    .select_from(matches.join(works, works.c.id == matches.c.work_pk))
                    .join(works_lists)
                    .where(
                        and_(
                            matches.c.copy_id.in_(list(copy_text)),
                            matches.c.method.in_(["exact", "near_duplicate"]),
                        )
                    )
                )
                for r in conn.execute(mq):
                    works_of[copy_text[r.copy_id]].setdefault((r.name, r.work_id), r.title)
        if len(self._holders) > 100_000:
            self._holders.clear()
        for sha in missing:
            listed = copies_of[sha]
            got = {
                "copies": listed[:HOLDERS_LISTED],
                "more_copies": len(listed) > HOLDERS_LISTED,
                "works": [
                    {"list": k[0], "id": k[1], "title": t} for k, t in sorted(works_of[sha].items())
                ],
            }
            self._holders[(sha, scope)] = (now, got)
            out[sha] = got
        return out

    def places(self, span: Span) -> list[tuple[Segment, int, int, str]]:
        """(segment, text number, word offset, text SHA-256) of up to MAX_SOURCES texts."""
        out: list[tuple[Segment, int, int, str]] = []
        for run in span.runs:
            seg = self.index.segments[run.segment]
            seen: set[int] = set()
            docs = seg.doc_of(run.positions)
            for pos, doc in zip(run.positions.tolist(), docs.tolist(), strict=True):
                if doc in seen:
                    continue
                seen.add(doc)
                out.append((seg, doc, pos - int(seg.doc_starts[doc]), seg.doc_shas[doc]))
                if len(out) >= MAX_SOURCES:
                    return out
        return out

    def render(
        self, spans: list[Span], words: Any, query: str, full: bool = True
    ) -> list[dict[str, Any]]:
        """Spans as JSON. Every place names its text (SHA-256) and word offset; with `full`,
        also the copies and works holding it, and the first place of each span gets character
        offsets (one window of one text read per span keeps a hit's answer fast). Without
        `full`: no ledger lookups and no text read, the fastest answer for a serving filter."""
        starts, ends = words.offsets()
        placed = [self.places(s) for s in spans]
        holders = self.holders_many([p[3] for ps in placed for p in ps]) if full else {}
        out = []
        for span, ps in zip(spans, placed, strict=True):
            q0, q1 = int(starts[span.q_start]), int(ends[span.q_end - 1])
            sources = []
            for n, (seg, doc, word, sha) in enumerate(ps):
                place: dict[str, Any] = {"text_sha256": sha, "word": word}
                if full:
                    if n == 0:
                        place["start"], place["end"] = self.char_span(seg, doc, word, span.words)
                    place |= holders[sha]
                sources.append(place)
            excerpt = query[q0:q1]
            out.append(
                {
                    "start": q0,
                    "end": q1,
                    "words": span.words,
                    "occurrences": span.total,
                    "excerpt": excerpt
                    if len(excerpt) <= EXCERPT_CHARS
                    else excerpt[:EXCERPT_CHARS] + "…",
                    "sources": sources,
                }
            )
        return out
