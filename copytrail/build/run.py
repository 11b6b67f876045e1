"""`copytrail build CORPUS --policy FILE`: decide the fate of every copy of the policy's datasets,
tokenize the included ones into shards, and record it all.

Rules apply in this order and the first one that fires is the copy's fate: status (unreadable,
refused, deleted), source kind, works lists (the audit matcher, run now), language, quality,
then duplicates (kept copy chosen by the keep order). Included copies are written in copy-id
order, so the same library state and policy give byte-identical shards.

Memory is a page of copies, a batch of texts and the duplicates found, not the corpus: copies
are read from the ledger a page at a time, and what is known of each (pending, its fate, its
place in the shards) goes to DuckDB work tables, bounded by `COPYTRAIL_JOIN_MEMORY` and spilled
past it; fates.parquet, the lineage and the corpus_docs rows are written from them in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import insert, select

from copytrail.build.dedup import duplicates
from copytrail.build.filters import quality_rule
from copytrail.build.policy import Policy, load_policy
from copytrail.build.shards import ShardWriter, token_dtype
from copytrail.build.tokenizer import EOS, file_sha256, load_tokenizer
from copytrail.catalog.digest import DOC_COLUMNS, rows_bytes
from copytrail.catalog.queries import DATASET_NAME, DATASET_VERSION, copy_rows, dataset_id, labelled
from copytrail.catalog.records import next_id
from copytrail.catalog.schema import copies, corpora, corpus_docs, sources
from copytrail.context import Context
from copytrail.errors import Conflict, InvalidInput
from copytrail.fingerprint.store import NAMED_LOOKUP_MAX, fingerprint_store
from copytrail.joins import run_with_arrow
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now

ENCODE_BATCH = 64  # documents per tokenizer call (the Rust side spreads a batch over cores)
ENCODE_BATCH_BYTES = 8 << 20  # ... and at most this much text, whatever the documents' size
LINEAGE_ROWS = 50_000  # lineage rows held before they are written
FILTER_BATCH = 256  # texts per filter task
PAGE = 50_000  # copies read from the ledger at a time
FATE_ROWS = 1 << 20  # rows per row group of fates.parquet (pyarrow's default for one table)
DOC_INSERT_ROWS = 5000  # corpus_docs rows per INSERT

LINEAGE_SCHEMA = pa.schema(
    [
        ("shard", pa.int32()),
        ("token_start", pa.int64()),
        ("token_end", pa.int64()),
        ("copy_id", pa.int64()),
        ("text_sha256", pa.string()),
        ("dataset", pa.string()),
        ("source", pa.string()),
        ("source_kind", pa.string()),
        ("license", pa.string()),
    ]
)


@dataclass(frozen=True)
class FilterContext:
    """What filter workers share: the blob store and the policy's quality filters."""

    store: Any  # the library's BlobStore (build reads blobs only through it)
    filters: Any


def _encode_batches(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    """Included copies (copy_id, text_sha256, size, ...) in tokenizer calls of at most
    ENCODE_BATCH documents and ENCODE_BATCH_BYTES of text."""
    batch: list[tuple] = []
    nbytes = 0
    for r in rows:
        if batch and (len(batch) >= ENCODE_BATCH or nbytes + r[2] > ENCODE_BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append(r)
        nbytes += r[2]
    if batch:
        yield batch


@dataclass(frozen=True)
class EncodeContext:
    """What tokenizing workers share: the blob store and the tokenizer (its JSON, built into a
    tokenizer once per worker process)."""

    store: Any
    tokenizer_json: str
    tokenizer_sha256: str  # names the tokenizer in each worker's cache


_tokenizers: dict[str, Any] = {}  # per worker process: tokenizer digest -> tokenizer


def encode_task(ectx: EncodeContext, shas: list[str]) -> list[np.ndarray]:
    """Token ids of a batch of texts."""
    from tokenizers import Tokenizer

    key = ectx.tokenizer_sha256
    if key not in _tokenizers:
        _tokenizers.clear()
        _tokenizers[key] = Tokenizer.from_str(ectx.tokenizer_json)
    # Texts are read per batch: memory holds one batch, not the corpus. The fast call gives the
    # same ids without the offsets (which cost many times the text).
    encoded = _tokenizers[key].encode_batch_fast([ectx.store.get(s).decode("utf-8") for s in shas])
    return [np.asarray(e.ids, dtype=np.uint32) for e in encoded]


def filter_task(fctx: FilterContext, shas: list[str]) -> list[tuple[str, str | None]]:
    """(text, the quality rule that drops it or None) per text."""
    return [(sha, quality_rule(fctx.store.get(sha).decode("utf-8"), fctx.filters)) for sha in shas]


def corpus_root(ctx: Context) -> Path:
    return ctx.root / "corpora"


def _considered(ctx: Context, ids: list[int]) -> Iterator[list[dict[str, Any]]]:
    """The copies of the policy's datasets in copy-id order, a page at a time, each page a
    range of the primary key (`dataset_id + 0` keeps SQLite off the dataset index, through
    which it would read and sort every copy of the datasets for each page)."""
    last = -1
    while True:
        with read_connection(ctx.db) as conn:
            q = (
                copy_rows(
                    copies.c.id,
                    copies.c.status,
                    copies.c.text_sha256,
                    copies.c.text_size,
                    copies.c.language,
                    DATASET_NAME,
                    DATASET_VERSION,
                    sources.c.name.label("source"),
                    sources.c.kind,
                    sources.c.license,
                )
                .where((copies.c.dataset_id + 0).in_(ids), copies.c.id > last)
                .order_by(copies.c.id)
                .limit(PAGE)
            )
            page = [labelled(r) for r in conn.execute(q)]
        if not page:
            return
        yield page
        last = page[-1]["id"]


def _stream(db: Any, sql: str, n: int) -> Iterator[tuple]:
    """Rows of a DuckDB query, fetched n at a time on a cursor of their own (so the caller may
    write to the database between fetches)."""
    cur = db.cursor()
    try:
        cur.execute(sql)
        while rows := cur.fetchmany(n):
            yield from rows
    finally:
        cur.close()


def _append(db: Any, table: str, columns: dict[str, Any]) -> None:
    """Append rows given as columns to a DuckDB table, matched by column name (columns not
    given are NULL)."""
    if len(next(iter(columns.values()))):
        run_with_arrow(db, f"INSERT INTO {table} BY NAME SELECT * FROM {{}}", pa.table(columns))


def _works_exclusions(ctx: Context, policy: Policy, ids: list[int]) -> dict[int, tuple[str, str]]:
    """copy id -> (rule, detail) for copies the audit matcher ties to an excluded work."""
    from copytrail.audit.match import Auditor
    from copytrail.audit.run import list_works

    out: dict[int, tuple[str, str]] = {}
    for ex in policy.exclude_works:
        works = list_works(ctx, ex.list)
        by_pk = {w["id"]: w for w in works}
        found = Auditor(ctx, works, ids, min_words=ex.min_words).run()
        for m in sorted(found, key=lambda m: (m.copy_id, m.work_pk)):
            methods = m.methods & set(ex.methods)
            if not methods or m.copy_id in out:
                continue
            content = methods & {"exact", "near_duplicate", "partial"}
            if content and (m.coverage or 0.0) < ex.min_coverage:
                continue
            method = min(methods)
            out[m.copy_id] = (f"works-list:{ex.list}", f"{by_pk[m.work_pk]['work_id']} ({method})")
    return out


# The build's working tables, in a DuckDB database that spills to disk past its memory bound:
# the driver holds a page of copies, a batch of texts and the duplicates, never the corpus.
WORK_TABLES = """
    CREATE TABLE fates (copy_id BIGINT, fate VARCHAR, rule VARCHAR, detail VARCHAR,
        kept_copy_id BIGINT, shard INTEGER, token_start BIGINT, token_end BIGINT);
    CREATE TABLE pending (copy_id BIGINT, text_sha256 VARCHAR, size BIGINT,
        rank INTEGER, dataset VARCHAR, source VARCHAR, kind VARCHAR, license VARCHAR);
    CREATE TABLE verdicts (text_sha256 VARCHAR, rule VARCHAR);
"""
FATE_SCHEMA = pa.schema(
    [
        ("copy_id", pa.int64()),
        ("fate", pa.string()),
        ("rule", pa.string()),
        ("detail", pa.string()),
        ("kept_copy_id", pa.int64()),
    ]
)


def _early_fates(
    db: Any, pages: Iterator[list[dict[str, Any]]], policy: Policy, works: dict[int, tuple]
) -> int:
    """Fates decided from the copy's row alone (status, source kind, works lists, language)
    into `fates`; the rest into `pending`. Returns how many copies were considered."""
    considered = 0
    for page in pages:
        considered += len(page)
        out: dict[str, list] = {k: [] for k in ("copy_id", "fate", "rule", "detail")}
        keep: dict[str, list] = {
            k: [] for k in ("copy_id", "text_sha256", "size", "rank", "dataset", "source")
        }
        keep |= {"kind": [], "license": []}
        for r in page:
            rule = detail = None
            if r["status"] != "ok" or not r["text_sha256"]:
                rule = f"status:{r['status']}"
            elif r["kind"] in policy.exclude_kinds:
                rule = f"source-kind:{r['kind']}"
            elif r["id"] in works:
                rule, detail = works[r["id"]]
            elif policy.languages and r["language"] not in policy.languages:
                rule, detail = "language", r["language"]
            if rule:
                for k, v in zip(out, (r["id"], "excluded", rule, detail), strict=True):
                    out[k].append(v)
                continue
            row = (r["id"], r["text_sha256"], r["text_size"] or 0, policy.kind_rank(r["kind"]))
            row += (r["dataset"], r["source"], r["kind"], r["license"])
            for k, v in zip(keep, row, strict=True):
                keep[k].append(v)
        _append(db, "fates", out)
        _append(db, "pending", keep)
    return considered


def _quality(ctx: Context, db: Any, policy: Policy) -> int:
    """Quality filters on each distinct pending text, in the workers a batch at a time;
    copies whose text fails go to `fates`. Returns the bytes of the distinct texts filtered."""
    text_bytes = db.execute(
        "SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT text_sha256, size FROM pending)"
    ).fetchall()[0][0]
    shas = _stream(db, "SELECT DISTINCT text_sha256 FROM pending ORDER BY 1", FILTER_BATCH)
    tasks = ([s for (s,) in chunk] for chunk in iter(lambda: list(islice(shas, FILTER_BATCH)), []))
    worker = FilterContext(ctx.store, policy.filters)
    got: dict[str, list] = {"text_sha256": [], "rule": []}
    for batch in ctx.executor.map(filter_task, tasks, worker, text_bytes):
        for sha, rule in batch:
            if rule:
                got["text_sha256"].append(sha)
                got["rule"].append(rule)
    _append(db, "verdicts", got)
    db.execute("""
        INSERT INTO fates (copy_id, fate, rule)
        SELECT p.copy_id, 'excluded', v.rule FROM pending p JOIN verdicts v USING (text_sha256)
    """)
    return int(text_bytes)


def build_corpus(ctx: Context, name: str, policy_path: str | os.PathLike) -> dict[str, Any]:
    if not name or not all(c.isalnum() or c in "-_.@" for c in name) or name.startswith("."):
        raise InvalidInput(f"corpus name {name!r} must be letters, digits, '-', '_', '.' or '@'")
    policy = load_policy(policy_path)
    tok = load_tokenizer(policy.tokenizer)
    tok_sha = file_sha256(policy.tokenizer)
    with read_connection(ctx.db) as conn:
        if conn.execute(select(corpora.c.id).where(corpora.c.name == name)).first():
            raise Conflict(f"corpus {name!r} exists; build under a new name (e.g. {name}-2)")
        ds_ids = [dataset_id(conn, d) for d in policy.datasets]
    clock = _Clock()
    # Before the build's own DuckDB opens: the audit matcher opens one of its own, and two at
    # once could each take the whole join memory.
    works = _works_exclusions(ctx, policy, ds_ids)
    clock.lap("works lists")
    fps = fingerprint_store(ctx)
    with fps.joins() as db:
        db.execute(WORK_TABLES)
        considered = _early_fates(db, _considered(ctx, ds_ids), policy, works)
        clock.lap("select")
        text_bytes = _quality(ctx, db, policy)
        clock.lap("filters")
        db.execute("""
            CREATE TABLE survivors AS SELECT * FROM pending
            ANTI JOIN fates USING (copy_id) ORDER BY copy_id
        """)
        dups: dict[int, tuple[str, int]] = {}
        if policy.dedup.exact or policy.dedup.near:
            _ensure_fingerprints(fps, db)
            fps.attach(db)
            dups = duplicates(
                db, "survivors", policy.dedup.exact, policy.dedup.near, policy.dedup.near_threshold
            )
        _append(
            db,
            "fates",
            {
                "copy_id": list(dups),
                "fate": ["excluded"] * len(dups),
                "rule": [rule for rule, _kept in dups.values()],
                "kept_copy_id": [kept for _rule, kept in dups.values()],
            },
        )
        clock.lap("dedup")
        final, tmp = _prepare_dirs(ctx, name)
        writer = ShardWriter(
            tmp, token_dtype(tok.get_vocab_size()), tok.token_to_id(EOS), policy.shard_tokens
        )
        documents, included_bytes = _tokenize(ctx, db, tmp, writer, tok, tok_sha, clock)
        fate_summary = _write_fates(db, tmp)
        tokens = sum(s["tokens"] for s in writer.shards)
        manifest = {
            "corpus": name,
            "policy": {"path": str(policy.path), "sha256": policy.sha256},
            "tokenizer": {
                "path": str(policy.tokenizer),
                "sha256": tok_sha,
                "vocab_size": tok.get_vocab_size(),
                "eos_id": tok.token_to_id(EOS),
            },
            "dtype": writer.dtype.name,
            "shards": writer.shards,
            "lineage_sha256": file_sha256(tmp / "lineage.parquet"),
            "fates_sha256": file_sha256(tmp / "fates.parquet"),
            "documents": documents,
            "tokens": tokens,
            "considered": considered,
            "excluded_by_rule": fate_summary["excluded_by_rule"],
        }
        docs_sha256 = fate_summary["docs_sha256"]
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        (tmp / "manifest.json").write_bytes(body)
        manifest_sha = hashlib.sha256(body).hexdigest()
        os.rename(tmp, final)
        clock.lap("write")
        seq = _record(ctx, db, name, final, policy, tok_sha, manifest, manifest_sha, docs_sha256)
        clock.lap("record")
    return {
        **manifest,
        "manifest_sha256": manifest_sha,
        "path": str(final),
        "event_seq": seq,
        "timings": clock.seconds,  # not in the manifest: it must not change between builds
        "text_bytes_read": text_bytes,  # UTF-8 bytes of the distinct texts filtered
        "text_bytes_included": included_bytes,
    }


def _ensure_fingerprints(fps: Any, db: Any) -> None:
    """Fingerprint the survivors' texts not done yet, looked up a chunk at a time."""
    missing: list[str] = []
    shas = _stream(db, "SELECT DISTINCT text_sha256 FROM survivors", NAMED_LOOKUP_MAX)
    while chunk := [s for (s,) in islice(shas, NAMED_LOOKUP_MAX)]:
        missing += fps.missing(chunk)
    if missing:
        fps.ensure(missing)


def _prepare_dirs(ctx: Context, name: str) -> tuple[Path, Path]:
    root = corpus_root(ctx)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists():  # left by a build killed before it was recorded: no ledger row names it
        shutil.rmtree(final)
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return final, tmp


def _tokenize(
    ctx: Context, db: Any, tmp: Path, writer: ShardWriter, tok: Any, tok_sha: str, clock: Any
) -> tuple[int, int]:
    """Tokenize the included copies into shards and lineage; their fates go to `fates`.
    Returns (documents, bytes of text included)."""
    # A table of its own: `fates` gains the included copies while they are read.
    db.execute("""
        CREATE TABLE included AS SELECT copy_id, text_sha256, size, dataset, source, kind,
        license FROM survivors ANTI JOIN fates USING (copy_id) ORDER BY copy_id
    """)
    text_bytes = db.execute("SELECT coalesce(sum(size), 0) FROM included").fetchall()[0][0]
    rows = _stream(db, "SELECT * FROM included ORDER BY copy_id", LINEAGE_ROWS)
    # Tokenized by the executor's workers, written here in copy-id order: the same library
    # and policy give the same shards whichever engine ran the batches. The batches in flight
    # wait in `queued` until their tokens come back (ordered: oldest first).
    queued: deque[list[tuple]] = deque()

    def tasks() -> Iterator[list[str]]:
        for batch in _encode_batches(rows):
            queued.append(batch)
            yield [r[1] for r in batch]

    encoder = EncodeContext(ctx.store, tok.to_str(), tok_sha)
    lineage: dict[str, list] = {f.name: [] for f in LINEAGE_SCHEMA}
    placed: dict[str, list] = {k: [] for k in ("copy_id", "shard", "token_start", "token_end")}
    documents = 0
    with pq.ParquetWriter(tmp / "lineage.parquet", LINEAGE_SCHEMA) as lineage_out:
        for encoded in ctx.executor.map(encode_task, tasks(), encoder, text_bytes, ordered=True):
            batch = queued.popleft()
            clock.lap("tokenize")
            for r, ids in zip(batch, encoded, strict=True):
                shard, start, end = writer.add(ids)
                for k, v in zip(placed, (r[0], shard, start, end), strict=True):
                    placed[k].append(v)
                row = (shard, start, end, r[0], r[1], r[3], r[4], r[5], r[6])
                for k, v in zip(lineage, row, strict=True):
                    lineage[k].append(v)
                documents += 1
                if len(placed["copy_id"]) >= LINEAGE_ROWS:  # row groups of LINEAGE_ROWS rows
                    _flush_included(db, lineage_out, lineage, placed)
            clock.lap("write")
        writer.flush()
        _flush_included(db, lineage_out, lineage, placed)
    return documents, int(text_bytes)


def _flush_included(db: Any, out: Any, lineage: dict[str, list], placed: dict[str, list]) -> None:
    if not placed["copy_id"]:
        return
    out.write_table(pa.table(lineage, schema=LINEAGE_SCHEMA))
    n = len(placed["copy_id"])
    _append(
        db,
        "fates",
        {
            "copy_id": placed["copy_id"],
            "fate": ["included"] * n,
            "shard": placed["shard"],
            "token_start": placed["token_start"],
            "token_end": placed["token_end"],
        },
    )
    for d in (lineage, placed):
        for v in d.values():
            v.clear()


FATES_SQL = f"SELECT {', '.join(DOC_COLUMNS)} FROM fates ORDER BY copy_id"


def _write_fates(db: Any, tmp: Path) -> dict[str, Any]:
    """fates.parquet in copy-id order, streamed, with the digest of the corpus_docs rows and
    the count of each exclusion rule."""
    by_rule: Counter[str] = Counter()
    digest = hashlib.sha256()
    cur = db.cursor()
    try:
        reader = cur.sql(FATES_SQL).to_arrow_reader(FATE_ROWS)
        with pq.ParquetWriter(tmp / "fates.parquet", FATE_SCHEMA) as out:
            buffered: list[pa.RecordBatch] = []
            held = 0
            written = False
            for batch in reader:
                rows = batch.to_pylist()
                digest.update(rows_bytes(rows, DOC_COLUMNS))
                by_rule.update(r["rule"] for r in rows if r["fate"] == "excluded")
                buffered.append(batch)
                held += batch.num_rows
                # One contiguous row group per FATE_ROWS rows, as one table of them would be
                # written, whatever size DuckDB's batches come in.
                if held >= FATE_ROWS:
                    out.write_table(_fate_table(buffered))
                    buffered, held, written = [], 0, True
            if buffered or not written:
                out.write_table(_fate_table(buffered))
    finally:
        cur.close()
    return {"excluded_by_rule": dict(sorted(by_rule.items())), "docs_sha256": digest.hexdigest()}


def _fate_table(batches: list[pa.RecordBatch]) -> pa.Table:
    if not batches:
        return FATE_SCHEMA.empty_table()
    table = pa.Table.from_batches(batches).select(FATE_SCHEMA.names)
    return table.cast(FATE_SCHEMA).combine_chunks()


def _record(
    ctx: Context,
    db: Any,
    name: str,
    final: Path,
    policy: Policy,
    tok_sha: str,
    manifest: dict[str, Any],
    manifest_sha: str,
    docs_sha256: str,
) -> int:
    """The corpus's events, its row and one corpus_docs row per considered copy."""
    with write_transaction(ctx.db) as conn:
        corpus_id = next_id(conn, corpora.c.id)
        ev = EventWriter(conn, ctx.actor)
        subj = {"corpus_id": corpus_id, "corpus": name}
        seq = ev.append(
            "included",
            subj,
            {
                "documents": manifest["documents"],
                "tokens": manifest["tokens"],
                "lineage_sha256": manifest["lineage_sha256"],
            },
        )
        ev.append(
            "excluded",
            subj,
            {
                "copies": sum(manifest["excluded_by_rule"].values()),
                "by_rule": manifest["excluded_by_rule"],
                "fates_sha256": manifest["fates_sha256"],
                "docs_sha256": docs_sha256,
            },
        )
        ev.append(
            "produced",
            subj,
            {
                "artifact": "corpus",
                "path": str(final.resolve()),
                "manifest_sha256": manifest_sha,
                "policy_sha256": policy.sha256,
                "tokenizer_sha256": tok_sha,
            },
        )
        ev.flush()
        conn.execute(
            insert(corpora),
            [
                {
                    "id": corpus_id,
                    "name": name,
                    "path": str(final.resolve()),
                    "policy_sha256": policy.sha256,
                    "tokenizer_sha256": tok_sha,
                    "manifest_sha256": manifest_sha,
                    "documents": manifest["documents"],
                    "tokens": manifest["tokens"],
                    "created": utc_now(),
                    "actor": ctx.actor,
                    "event_seq": seq,
                }
            ],
        )
        cur = db.cursor()
        try:
            cur.execute(FATES_SQL)
            while rows := cur.fetchmany(DOC_INSERT_ROWS):
                conn.execute(
                    insert(corpus_docs),
                    [
                        {"corpus_id": corpus_id, **dict(zip(DOC_COLUMNS, r, strict=True))}
                        for r in rows
                    ],
                )
        finally:
            cur.close()
    return seq


class _Clock:
    """Seconds spent per stage (a stage may be entered several times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._t
        self._t = now


def corpus_show(ctx: Context, name: str) -> dict[str, Any]:
    """Composition: tokens and documents by source kind, dataset and license; exclusions by rule."""
    from copytrail.errors import NotFound

    with read_connection(ctx.db) as conn:
        c = conn.execute(select(corpora).where(corpora.c.name == name)).first()
        if c is None:
            raise NotFound(f"no corpus {name!r}; build one: copytrail build {name} --policy FILE")
        manifest = json.loads((Path(c.path) / "manifest.json").read_text())
    lineage = pq.read_table(Path(c.path) / "lineage.parquet").to_pylist()

    def grouped(key: str) -> list[dict[str, Any]]:
        acc: dict[str, list[int]] = {}
        for row in lineage:
            a = acc.setdefault(row[key] or "", [0, 0])
            a[0] += 1
            a[1] += row["token_end"] - row["token_start"]
        total = sum(t for _, t in acc.values()) or 1
        return [
            {key: k, "documents": d, "tokens": t, "share": round(t / total, 4)}
            for k, (d, t) in sorted(acc.items(), key=lambda kv: -kv[1][1])
        ]

    return {
        "corpus": name,
        "path": c.path,
        "created": c.created,
        "documents": c.documents,
        "tokens": c.tokens,
        "considered": manifest["considered"],
        "policy_sha256": c.policy_sha256,
        "tokenizer_sha256": c.tokenizer_sha256,
        "manifest_sha256": c.manifest_sha256,
        "shards": manifest["shards"],
        "by_source_kind": grouped("source_kind"),
        "by_dataset": grouped("dataset"),
        "by_license": grouped("license"),
        "excluded_by_rule": manifest["excluded_by_rule"],
    }
