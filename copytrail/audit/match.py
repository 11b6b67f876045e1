"""Find the works of a works list in the library: identifiers, metadata, and content.

Content matching never compares every work with every copy. Fingerprints are joined by hash in
DuckDB over Parquet: MinHash LSH band keys give whole-copy candidates, winnowed word k-grams give
partial-copy candidates (hashes shared by many texts, such as licence boilerplate, are ignored).
Only candidate pairs are aligned word by word, which yields the coverage and the exact spans.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from sqlalchemy import and_, func, select

from copytrail.audit import metadata as meta_match
from copytrail.audit.align import Tokenized, align, char_spans
from copytrail.catalog.schema import copies, copy_isbns, work_isbns
from copytrail.context import Context
from copytrail.fingerprint.boilerplate import boilerplate_set
from copytrail.fingerprint.store import fingerprint_store
from copytrail.store.blobs import BlobStore

METHOD_RANK = ["exact", "near_duplicate", "partial", "isbn", "asin", "metadata"]
NEAR_DUP_COVERAGE = 0.5  # both texts at least half covered by the other: another edition
WORK_DF_MAX = 3  # a hash in more works than this is shared boilerplate, not evidence
MIN_SHARED_HASHES = 2


@dataclass
class Match:
    work_pk: int
    copy_id: int
    methods: set[str] = field(default_factory=set)
    score: float | None = None
    coverage: float | None = None
    longest_span_words: int = 0
    spans: list[dict[str, int]] = field(default_factory=list)

    @property
    def method(self) -> str:
        return min(self.methods, key=METHOD_RANK.index)


def report_row(
    work: dict[str, Any],
    copy_id: int,
    context: dict[str, Any],
    method: str,
    methods: list[str],
    score: float | None,
    coverage: float | None,
    longest: int,
    spans: list,
) -> dict[str, Any]:
    """A match as reports, `where` and the API give it: the work, the copy with its context
    (status, digests, path, dataset, source), the evidence. One layout for every caller."""
    return {
        "work_id": work["work_id"],
        "work_pk": work["id"],
        "copy_id": copy_id,
        **context,
        "method": method,
        "methods": methods,
        "score": score,
        "coverage": coverage,
        "longest_span_words": longest,
        "spans": spans,
    }


# ---- alignment in workers ---------------------------------------------------------------------
def _text(store: BlobStore, sha: str) -> str:
    return store.get(sha).decode("utf-8", errors="replace")


_WORKS: OrderedDict[str, Tokenized] = OrderedDict()  # this worker's last few listed works
_WORKS_KEPT = 4
COPIES_PER_TASK = 256  # a work with many candidates is spread over all workers


def _work(store: BlobStore, sha: str) -> Tokenized:
    """A listed work tokenized and indexed once per worker, not once per task or copy."""
    work = _WORKS.get(sha)
    if work is None:
        work = _WORKS[sha] = Tokenized.of(_text(store, sha))
        if len(_WORKS) > _WORKS_KEPT:
            _WORKS.popitem(last=False)
    else:
        _WORKS.move_to_end(sha)
    return work


def align_task(store: BlobStore, task: tuple[str, list[int], list[str]]) -> list[dict]:
    """Align one work text with its candidate copy texts."""
    work_sha, distinctive, copy_shas = task
    work = _work(store, work_sha)
    dist = np.array(sorted(distinctive), dtype=np.int64)
    out = []
    for csha in copy_shas:
        copy = work if csha == work_sha else Tokenized.of(_text(store, csha))
        al = align(work, copy, dist)
        out.append(
            {
                "work_text": work_sha,
                "copy_text": csha,
                "coverage": al.coverage,
                "copy_coverage": al.copy_coverage,
                "longest": al.longest,
                "similarity": al.similarity,
                "spans": char_spans(al, work, copy),
                "covered_work": al.covered_work,
            }
        )
    return out


# ---- the audit --------------------------------------------------------------------------------
class Auditor:
    def __init__(
        self,
        ctx: Context,
        works: list[dict[str, Any]],
        dataset_ids: list[int] | None,
        min_words: int = 200,
        boilerplate_df: int | None = None,
        progress: Any = None,
        df_work_texts: list[str] | None = None,
        boilerplate_files: list[str] | None = None,
        copy_filter: Any = None,
    ) -> None:
        self.ctx = ctx
        self.works = works
        self.dataset_ids = dataset_ids
        self.min_words = min_words
        self.boilerplate_df = boilerplate_df
        # progress: a callable giving a progress bar for a named phase (or None for silence).
        self.progress = progress
        # Texts of the whole works list: a hash shared by several listed works is boilerplate
        # even when only one work is being looked up (`copytrail where`).
        self.df_work_texts = df_work_texts
        self.boilerplate_files = boilerplate_files
        # A condition on `copies` narrowing the scope (`where`: the copies no recorded audit
        # has matched). The fingerprint views then hold the scope's and the works' texts only.
        self.copy_filter = copy_filter
        self.matches: dict[tuple[int, int], Match] = {}
        self.stats: dict[str, Any] = {}

    def _match(self, work_pk: int, copy_id: int) -> Match:
        key = (work_pk, copy_id)
        if key not in self.matches:
            self.matches[key] = Match(work_pk, copy_id)
        return self.matches[key]

    def _scope_filter(self, q: Any) -> Any:
        q = q.where(copies.c.status != "deleted")
        if self.dataset_ids is not None:
            q = q.where(copies.c.dataset_id.in_(self.dataset_ids))
        if self.copy_filter is not None:
            q = q.where(self.copy_filter)
        return q

    # identifiers ------------------------------------------------------------------------------
    def match_identifiers(self, conn: Any) -> None:
        pks = [w["id"] for w in self.works]
        for chunk in (pks[i : i + 500] for i in range(0, len(pks), 500)):
            q = self._scope_filter(
                select(work_isbns.c.work_pk, copy_isbns.c.copy_id)
                .join(copy_isbns, copy_isbns.c.isbn13 == work_isbns.c.isbn13)
                .join(copies, copies.c.id == copy_isbns.c.copy_id)
                .where(work_isbns.c.work_pk.in_(chunk))
            )
            for r in conn.execute(q):
                self._match(r.work_pk, r.copy_id).methods.add("isbn")
        by_asin = {w["asin"]: w["id"] for w in self.works if w.get("asin")}
        if by_asin:
            q = self._scope_filter(
                select(copies.c.id, copies.c.extra).where(copies.c.extra.like('%"asin"%'))
            )
            for r in conn.execute(q):
                asin = str(orjson.loads(r.extra).get("asin", "")).upper()
                if asin in by_asin:
                    self._match(by_asin[asin], r.id).methods.add("asin")

    # metadata ---------------------------------------------------------------------------------
    def match_metadata(self, conn: Any) -> None:
        index = meta_match.TitleIndex()
        q = self._scope_filter(
            select(copies.c.id, copies.c.title, copies.c.authors).where(copies.c.title.is_not(None))
        )
        for r in conn.execute(q):
            index.add(r.id, r.title, orjson.loads(r.authors) if r.authors else [])
        for w in self.works:
            for copy_id, score in index.matches(w["title"], w["authors"]):
                m = self._match(w["id"], copy_id)
                m.methods.add("metadata")
                if m.score is None:
                    m.score = score

    # content ----------------------------------------------------------------------------------
    def match_content(self, conn: Any) -> None:
        q = self._scope_filter(
            select(copies.c.id, copies.c.text_sha256, copies.c.text_size).where(
                and_(copies.c.status == "ok", copies.c.text_sha256.is_not(None))
            )
        )
        scope = conn.execute(q).all()
        work_texts = [(w["id"], w["text_sha256"]) for w in self.works if w.get("text_sha256")]
        self.stats.update(copies_in_scope=len(scope), works_with_text=len(work_texts))
        if not scope or not work_texts:
            return
        fps = fingerprint_store(self.ctx)
        df_texts = sorted(set(self.df_work_texts or []) | {s for _, s in work_texts})
        size_of = {sha: size or 0 for _, sha, size in scope}
        computed = fps.ensure(
            {s for _, s, _ in scope} | set(df_texts),
            progress=self.progress("fingerprinting") if self.progress else None,
            # Works' texts have no recorded size; they are few beside the copies in scope.
            text_bytes=sum(size_of.values()),
        )
        self.stats["texts_fingerprinted_now"] = computed
        # Out of core past the join memory bound (fps.joins), so a large library spills to disk.
        with fps.joins() as db:
            narrow = None if self.copy_filter is None else {s for _, s, _ in scope} | set(df_texts)
            n_texts = fps.attach(
                db, narrow, self.progress("keying fingerprints") if self.progress else None
            )
            db.register(
                "scope_arrow",
                pa.table({"copy_id": [r[0] for r in scope], "text_sha256": [r[1] for r in scope]}),
            )
            db.register(
                "wt_arrow",
                pa.table(
                    {
                        "work_pk": [p for p, _ in work_texts],
                        "text_sha256": [s for _, s in work_texts],
                    }
                ),
            )
            # The joins below run on the fingerprints' integer text keys; digests come back
            # through `text_keys` at the end (read from the texts files once, not per lookup).
            db.execute("CREATE TABLE text_keys AS SELECT text_key, text_sha256 FROM texts")
            db.register("df_arrow", pa.table({"text_sha256": df_texts}))
            for table, arrow in (
                ("scope_texts", "scope_arrow"),
                ("work_texts", "wt_arrow"),
                ("df_texts", "df_arrow"),
            ):
                db.execute(f"""
                    CREATE TABLE {table} AS SELECT t.text_key FROM text_keys t
                    SEMI JOIN {arrow} a ON a.text_sha256 = t.text_sha256
                """)
            lib_df = self.boilerplate_df or max(50, int(n_texts * 0.01))
            known = boilerplate_set(self.ctx, self.boilerplate_files).hashes
            db.register("known_arrow", pa.table({"h": known}))
            # Not evidence of a work: known boilerplate, and passages several listed works share.
            db.execute(f"""
                CREATE TABLE not_distinctive AS
                SELECT h FROM known_arrow
                UNION
                SELECT h FROM winnow SEMI JOIN df_texts d ON d.text_key = winnow.text_key
                GROUP BY h HAVING count(DISTINCT text_key) > {WORK_DF_MAX}
            """)
            db.execute("""
                CREATE TABLE work_distinctive AS
                SELECT w.text_key, w.h, w.pos FROM winnow w JOIN work_texts USING (text_key)
                ANTI JOIN not_distinctive b ON b.h = w.h
            """)
            # Candidate pruning also skips the works' hashes found in very many library texts
            # (unknown boilerplate); a book with that many copies is still found whole through
            # exact and LSH candidates. Only the works' own hashes are counted: the library-wide
            # frequency of any other hash changes nothing, and counting them all was the one
            # aggregation over the whole winnow table.
            db.execute(f"""
                CREATE TABLE boiler AS
                SELECT h FROM winnow SEMI JOIN (SELECT DISTINCT h FROM work_distinctive) d
                ON d.h = winnow.h
                GROUP BY h HAVING count(DISTINCT text_key) > {lib_df}
            """)
            db.execute("""
                CREATE TABLE work_hashes AS
                SELECT w.* FROM work_distinctive w ANTI JOIN boiler b ON b.h = w.h
            """)
            pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
            candidates = {
                "exact": """
                    SELECT DISTINCT tw.text_key, tc.text_key FROM texts tw
                    JOIN work_texts USING (text_key)
                    JOIN texts tc ON tc.norm_sha256 = tw.norm_sha256
                    SEMI JOIN scope_texts s ON s.text_key = tc.text_key
                """,
                "lsh": """
                    SELECT DISTINCT bw.text_key, bc.text_key FROM bands bw
                    JOIN work_texts USING (text_key)
                    JOIN bands bc ON bc.band = bw.band AND bc.key = bw.key
                    SEMI JOIN scope_texts s ON s.text_key = bc.text_key
                """,
                "shared": f"""
                    SELECT wh.text_key, c.text_key FROM work_hashes wh
                    JOIN winnow c ON c.h = wh.h
                    SEMI JOIN scope_texts s ON s.text_key = c.text_key
                    GROUP BY 1, 2 HAVING count(*) >= {MIN_SHARED_HASHES}
                """,
            }
            for method, query in candidates.items():
                for wt, ct in db.execute(f"""
                    SELECT tw.text_sha256, tc.text_sha256 FROM ({query}) p (w, c)
                    JOIN text_keys tw ON tw.text_key = p.w JOIN text_keys tc ON tc.text_key = p.c
                """).fetchall():
                    pairs[(wt, ct)].add(method)
            distinctive: dict[str, list[int]] = defaultdict(list)
            for sha, pos in db.execute("""
                SELECT t.text_sha256, w.pos FROM work_distinctive w
                JOIN text_keys t USING (text_key)
            """).fetchall():
                distinctive[sha].append(int(pos))
            self.stats.update(
                candidate_text_pairs=len(pairs),
                boilerplate_hashes=db.execute(
                    "SELECT (SELECT count(*) FROM not_distinctive) + (SELECT count(*) FROM boiler)"
                ).fetchone()[0],
                boilerplate_df=lib_df,
            )

        by_work_text: dict[str, list[str]] = defaultdict(list)
        for wt, ct in pairs:
            by_work_text[wt].append(ct)
        tasks = [
            (wt, distinctive.get(wt, []), cts[i : i + COPIES_PER_TASK])
            for wt, cts in by_work_text.items()
            for i in range(0, len(cts), COPIES_PER_TASK)
        ]
        aligned_bytes = sum(size_of.get(ct, 0) for _wt, ct in pairs)
        results: dict[tuple[str, str], dict] = {}
        bar = self.progress("aligning candidates") if self.progress else None
        if bar:
            bar.start(len(pairs))
        for batch in self.ctx.executor.map(align_task, tasks, self.ctx.store, aligned_bytes):
            for r in batch:
                results[(r["work_text"], r["copy_text"])] = r
            if bar:
                bar.advance(len(batch))
        if bar:
            bar.finish()
        copies_by_text: dict[str, list[int]] = defaultdict(list)
        for cid, sha, _size in scope:
            copies_by_text[sha].append(cid)
        works_by_text: dict[str, list[int]] = defaultdict(list)
        for pk, sha in work_texts:
            works_by_text[sha].append(pk)
        for (wt, ct), flags in pairs.items():
            r = results[(wt, ct)]
            method = None
            if "exact" in flags:
                method = "exact"
            elif r["coverage"] >= NEAR_DUP_COVERAGE and r["copy_coverage"] >= NEAR_DUP_COVERAGE:
                method = "near_duplicate"
            elif r["longest"] >= self.min_words:
                method = "partial"
            if method is None:
                continue
            for pk in works_by_text[wt]:
                for cid in copies_by_text[ct]:
                    m = self._match(pk, cid)
                    m.methods.add(method)
                    m.score = round(1.0 if method == "exact" else r["similarity"], 4)
                    m.coverage = round(1.0 if method == "exact" else r["coverage"], 4)
                    m.longest_span_words = r["longest"]
                    m.spans = r["spans"]

    def run(self) -> list[Match]:
        with self.ctx.db.connect() as conn:
            # Copies are numbered in the order they are recorded: every copy up to this one
            # is matched here (a later `where` matches only the copies after it).
            self.stats["copies_through"] = conn.execute(select(func.max(copies.c.id))).scalar() or 0
            self.match_identifiers(conn)
            self.match_metadata(conn)
            self.match_content(conn)
        return sorted(self.matches.values(), key=lambda m: (m.work_pk, m.copy_id))
