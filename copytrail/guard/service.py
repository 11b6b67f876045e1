"""Guard indexes as the Library sees them: which texts a scope covers, building and refreshing,
and turning raw matches into evidence (works, copies, character offsets, snippets)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import and_, select

from copytrail.engine.local import map_with_store, worker_store
from copytrail.errors import InvalidInput, NotFound
from copytrail.fingerprint.normalize import token_spans
from copytrail.guard.check import Check, Occurrences, Span
from copytrail.guard.index import GuardIndex, Progress, index_text, read_manifest, refresh
from copytrail.guard.segment import MARK_EVERY, IndexedText, Segment
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter
from copytrail.ledger.schema import copies, datasets, matches, works, works_lists

if TYPE_CHECKING:
    from copytrail.library import Library

DEFAULT_MIN_WORDS = 50
MAX_SOURCES = 5  # places listed per span; the occurrence count is always given
HOLDERS_LISTED = 10  # copies listed per indexed text
HOLDERS_TTL = 30.0  # seconds a text's copies and works are remembered between checks
SNIPPET_CHARS = 80  # context either side of a search hit
EXCERPT_CHARS = 300  # of the checked text, per span
INLINE_BYTES = 16 * 1024 * 1024  # less text than this is read in-process (workers cost ~1 s)


def guard_root(lib: Library) -> Path:
    return lib.path / "guard"


def _valid_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise InvalidInput(
            f"guard name {name!r} must be letters, digits, '-', '_' or '.', e.g. 'protected'"
        )
    return name


def scope_texts(lib: Library, scope: dict[str, Any]) -> dict[str, int]:
    """SHA-256 -> size of every text the scope covers: readable copies of its datasets and the
    reference texts of its works lists. A text held by several copies is indexed once."""
    wanted: dict[str, int] = {}
    with read_connection(lib.engine) as conn:
        if scope.get("all") or scope.get("datasets"):
            q = select(copies.c.text_sha256, copies.c.text_size).where(
                and_(copies.c.status == "ok", copies.c.text_sha256.is_not(None))
            )
            if not scope.get("all"):
                ids = [lib._dataset_id(conn, d) for d in scope["datasets"]]
                q = q.where(copies.c.dataset_id.in_(ids))
            for sha, size in conn.execute(q):
                wanted[sha] = size or 0
        for name in scope.get("lists") or []:
            list_id = conn.execute(
                select(works_lists.c.id).where(works_lists.c.name == name)
            ).scalar()
            if list_id is None:
                raise NotFound(f"no works list {name!r}; see `copytrail works ls`")
            q = select(works.c.text_sha256).where(
                and_(works.c.list_id == list_id, works.c.text_sha256.is_not(None))
            )
            for (sha,) in conn.execute(q):
                wanted.setdefault(sha, 0)
    return wanted


def build(
    lib: Library,
    name: str,
    lists: list[str] | None = None,
    dataset_refs: list[str] | None = None,
    all_datasets: bool = False,
    rebuild: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Build or refresh guard index `name`. Without a scope, the saved scope is refreshed."""
    path = guard_root(lib) / _valid_name(name)
    if lists or dataset_refs or all_datasets:
        scope = {"lists": sorted(lists or []), "datasets": sorted(dataset_refs or [])}
        if all_datasets:
            scope = {"lists": scope["lists"], "all": True}
    elif (path / "manifest.json").exists():
        scope = read_manifest(path)["scope"]
    else:
        raise InvalidInput(
            f"guard index {name!r} does not exist yet; say what it protects: "
            "--list WORKS_LIST, --dataset D (repeatable) or --all"
        )
    wanted = scope_texts(lib, scope)
    if not wanted:
        raise InvalidInput(
            "the scope holds no text to index (no readable copies, no works with a text "
            "column); ingest or import works first"
        )

    def read_texts(shas: list[str]) -> Iterator[IndexedText]:
        total = sum(wanted[s] for s in shas)
        if progress:
            progress("reading texts", 0, total)
        # Workers read and tokenise; results are put back in the order asked for.
        small = total < INLINE_BYTES
        done: dict[str, IndexedText] = {}
        for t in map_with_store(_index_task, shas, lib.store, 1 if small else workers):
            done[t.sha256] = t
            if progress:
                progress("reading texts", wanted[t.sha256], total)
        for sha in shas:
            yield done.pop(sha)

    result = refresh(path, scope, wanted, read_texts, rebuild=rebuild, progress=progress)
    index = GuardIndex.open(path)
    stats = index.stats()
    listed = hashlib.sha256("\n".join(sorted(index.texts())).encode()).hexdigest()
    with write_transaction(lib.engine) as conn:
        ev = EventWriter(conn, lib.actor)
        seq = ev.append(
            "produced",
            {"guard": name},
            {
                "artifact": "guard-index",
                "scope": scope,
                "texts": stats["texts"],
                "tokens": stats["tokens"],
                "texts_sha256": listed,
                "added": result.added,
                "removed": result.removed,
            },
        )
        ev.flush()
    lib.forget_guard(name)
    return {
        **stats,
        "added": result.added,
        "removed": result.removed,
        "merged": result.merged,
        "seconds": round(result.seconds, 3),
        "texts_sha256": listed,
        "event_seq": seq,
    }


def _index_task(sha: str) -> IndexedText:
    return index_text(sha, worker_store().get(sha).decode("utf-8"))


def list_guards(lib: Library) -> list[dict[str, Any]]:
    root = guard_root(lib)
    out = []
    for d in sorted(root.glob("*")) if root.exists() else []:
        if (d / "manifest.json").exists():
            out.append(GuardIndex.open(d).stats())
    return out


class TextCache:
    """Recently read texts, bounded by total characters, so repeated hits on one book do not
    decompress it again."""

    def __init__(self, lib: Library, max_chars: int = 256 * 1024 * 1024) -> None:
        self.lib = lib
        self.max_chars = max_chars
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    def get(self, sha: str) -> str:
        text = self._texts.get(sha)
        if text is not None:
            self._texts.move_to_end(sha)
            return text
        text = self.lib.store.get(sha).decode("utf-8")
        self._texts[sha] = text
        self._size += len(text)
        while self._size > self.max_chars and len(self._texts) > 1:
            _k, old = self._texts.popitem(last=False)
            self._size -= len(old)
        return text


class Evidence:
    """Turns segment positions into places a person can look up: the text's SHA-256, the copies
    and works that hold it, and character offsets into it."""

    def __init__(self, lib: Library, index: GuardIndex, dataset_ids: list[int] | None = None):
        self.lib = lib
        self.index = index
        self.dataset_ids = dataset_ids
        # Shared by every check of this Library (a server's lifetime): hot books are read and
        # looked up once. Holders expire so copies ingested later show up.
        caches = lib.__dict__.setdefault("_evidence_caches", {})
        self.texts = caches.setdefault("texts", TextCache(lib))
        self._holders = caches.setdefault("holders", {})

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
        with read_connection(self.lib.engine) as conn:
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


class CheckSession:
    """One check, one-shot or streamed: `feed` pieces, `finish` at the end. Each call answers
    with the spans that crossed the threshold so far."""

    def __init__(
        self, lib: Library, guard: str, min_words: int = DEFAULT_MIN_WORDS, evidence: bool = True
    ) -> None:
        if min_words < 1:
            raise InvalidInput("--min-words must be at least 1")
        self.index = lib.guard(guard)
        self.evidence = Evidence(lib, self.index)
        self.full_evidence = evidence
        self._rendered: dict[tuple, dict[str, Any]] = {}
        self.min_words = min_words
        self.check: Check = self.index.check(min_words)
        self.received: list[str] = []
        self.elapsed = 0.0

    def feed(self, piece: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.received.append(piece)
        changed = self.check.feed(piece)
        self.elapsed += time.perf_counter() - t0
        return self._answer(changed, final=False)

    def finish(self) -> dict[str, Any]:
        t0 = time.perf_counter()
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
    lib: Library, text: str, guard: str, min_words: int = DEFAULT_MIN_WORDS, evidence: bool = True
) -> dict[str, Any]:
    session = CheckSession(lib, guard, min_words, evidence)
    t0 = time.perf_counter()
    session.check.feed(text)  # no answer per piece: there is only one
    session.elapsed = time.perf_counter() - t0
    session.received = [text]
    return session.finish()


def search(
    lib: Library,
    phrase: str,
    dataset_refs: list[str] | None = None,
    guards: list[str] | None = None,
    limit: int = 100,
    snippets: int = 3,
) -> dict[str, Any]:
    """Every copy holding the exact phrase (normalised words), with counts and snippets."""
    names = guards or [g["name"] for g in list_guards(lib)]
    if not names:
        raise NotFound(
            "no guard index to search; build one over the library first: "
            "copytrail guard index library --all"
        )
    dataset_ids = lib._dataset_ids(dataset_refs)
    t0 = time.perf_counter()
    per_text: dict[str, tuple[Evidence, Segment, int, np.ndarray]] = {}
    n_words = len(token_spans(phrase)[0])
    for name in names:
        index = lib.guard(name)
        ev = Evidence(lib, index, dataset_ids)
        for seg_no, positions in index.phrase_positions(phrase):
            seg = index.segments[seg_no]
            docs = seg.doc_of(positions)
            for doc in np.unique(docs).tolist():
                sha = seg.doc_shas[doc]
                if sha not in per_text:
                    per_text[sha] = (ev, seg, doc, positions[docs == doc] - seg.doc_starts[doc])
    results = []
    total = texts = 0
    for sha, (ev, seg, doc, words) in sorted(per_text.items(), key=lambda kv: -len(kv[1][3])):
        holders = ev.holders(sha)
        if not holders["copies"] and (dataset_ids is not None or not holders["works"]):
            continue  # text outside the datasets asked about
        total += len(words)
        texts += 1
        if len(results) >= limit:
            continue
        text = ev.texts.get(sha)
        shown = []
        for w in words[:snippets].tolist():
            c0, c1 = ev.char_span(seg, doc, int(w), n_words)
            shown.append(
                {
                    "start": c0,
                    "end": c1,
                    "before": text[max(0, c0 - SNIPPET_CHARS) : c0],
                    "match": text[c0:c1],
                    "after": text[c1 : c1 + SNIPPET_CHARS],
                }
            )
        results.append(
            {"text_sha256": sha, "occurrences": len(words), "snippets": shown, **holders}
        )
    return {
        "phrase": phrase,
        "words": n_words,
        "guards": names,
        "datasets": dataset_refs or [],
        "texts": texts,
        "copies": sum(len(r["copies"]) for r in results),
        "occurrences": total,
        "results": results,
        "elapsed_ms": round((time.perf_counter() - t0) * 1000, 3),
    }
