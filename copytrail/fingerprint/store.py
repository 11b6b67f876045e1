"""Fingerprints, computed once per distinct text and kept in Parquet beside the ledger.

Layout under LIBRARY/fingerprints/:
    texts-<batch>.parquet   text_key, text_sha256, words, norm_sha256, minhash (128 x uint32)
    bands-<batch>.parquet   text_key, band, key          (MinHash LSH band keys)
    winnow-<batch>.parquet  text_key, h, pos             (winnowed word k-gram hashes)

The `fingerprints` ledger table says which batch holds each text. A batch file is written to a
temporary name and renamed before its rows are registered, so a kill leaves at most an
unregistered file that readers never open.

The big tables join on integers: each text of a batch gets a `text_key`, handed out by a counter
in the ledger's `meta` table before the batch is written, so no two batches share a key. The
joins of an audit or a build run on 8-byte keys instead of 64-character digests, and only
`texts` maps a key back to its digest. Batches written before keys (text_sha256 in every file)
are given keys the first time they are attached: each file is rewritten, the texts first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Engine, insert, select, update

from copytrail.atomic import exclusive, write_atomic
from copytrail.catalog.schema import fingerprints
from copytrail.context import Context
from copytrail.engine.base import Executor
from copytrail.errors import CopytrailError
from copytrail.fingerprint import hashing
from copytrail.fingerprint.normalize import joined_words
from copytrail.joins import bounded_duckdb, run_with_arrow
from copytrail.ledger.db import write_transaction
from copytrail.ledger.schema import meta
from copytrail.store.blobs import BlobStore

TEXTS_PER_TASK = 32
TEXTS_PER_BATCH = 4000
LOOKUP_CHUNK = 500  # texts named in one indexed registry query
NAMED_LOOKUP_MAX = 50_000  # past this many named texts, one scan of the registry is cheaper
REGISTRY_CHUNK = 100_000  # registry rows moved to DuckDB at a time
NEXT_KEY = "fingerprint_next_key"  # meta: the next text key the counter hands out
KINDS = ("texts", "bands", "winnow")


def fingerprint_texts(store: BlobStore, task: list[str]) -> list[dict[str, Any]]:
    """Worker: fingerprint the texts named by their SHA-256."""
    fps = []
    for sha in task:
        fps.append((sha, hashing.fingerprint_joined(joined_words(store.get(sha)))))
    sigs = hashing.minhash_matrix([f.shingles for _, f in fps])
    bands = hashing.band_keys(sigs)
    return [
        {
            "sha": sha,
            "words": f.words,
            "norm": f.norm_sha256,
            "sig": sigs[i].tobytes(),
            "bands": bands[i],
            "wh": f.winnow_hashes,
            "wp": f.winnow_pos,
        }
        for i, (sha, f) in enumerate(fps)
    ]


class FingerprintStore:
    def __init__(self, root: Path, db: Engine, blobs: BlobStore, executor: Executor) -> None:
        self.root = root
        self.engine = db
        self.blobs = blobs
        self.executor = executor

    def registry(self, shas: Iterable[str] | None = None) -> dict[str, str]:
        """text SHA-256 -> the batch holding its fingerprints, for every text or for `shas`.
        Read through the driver's cursor: a million rows as plain tuples, without a result
        object per row. A few named texts are looked up by index, not read with the rest."""
        if shas is None:
            return {sha: batch for rows in self._registry_rows() for sha, batch in rows}
        wanted = sorted({s for s in shas if s})
        if len(wanted) > NAMED_LOOKUP_MAX:  # many: one pass over the registry, filtered
            keep = set(wanted)
            return {sha: b for rows in self._registry_rows() for sha, b in rows if sha in keep}
        if wanted:  # few: by the index, through SQLAlchemy's portable IN
            out: dict[str, str] = {}
            col = fingerprints.c.text_sha256
            with self.engine.connect() as conn:
                for i in range(0, len(wanted), LOOKUP_CHUNK):
                    q = select(col, fingerprints.c.batch).where(
                        col.in_(wanted[i : i + LOOKUP_CHUNK])
                    )
                    out.update((r[0], r[1]) for r in conn.execute(q))
            return out
        return {}

    def _registry_rows(self) -> Iterator[list[tuple[str, str]]]:
        """Every (text, batch) row, REGISTRY_CHUNK at a time, through the driver's cursor."""
        with self.engine.connect() as conn:
            cur = conn.connection.cursor()
            try:
                cur.execute("SELECT text_sha256, batch FROM fingerprints")
                while rows := cur.fetchmany(REGISTRY_CHUNK):
                    yield rows
            finally:
                cur.close()

    def missing(self, shas: Iterable[str]) -> list[str]:
        wanted = {s for s in shas if s}
        have = self.registry(wanted)
        return sorted(wanted - have.keys())

    def ensure(
        self, shas: Iterable[str], progress: Any = None, text_bytes: int | None = None
    ) -> int:
        """Fingerprint every text not yet done. Returns how many were computed. `text_bytes`,
        the size of the texts when the caller knows it, lets the executor keep small work inline."""
        # In the order the store holds them: a task's texts then share compressed blocks.
        todo = self.blobs.read_order(self.missing(shas))
        if not todo:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        tasks = [todo[i : i + TEXTS_PER_TASK] for i in range(0, len(todo), TEXTS_PER_TASK)]
        pending: list[dict[str, Any]] = []
        done = 0
        if progress:
            progress.start(len(todo))
        for results in self.executor.map(fingerprint_texts, tasks, self.blobs, text_bytes):
            pending.extend(results)
            done += len(results)
            if progress:
                progress.advance(len(results))
            if len(pending) >= TEXTS_PER_BATCH:
                self._write_batch(pending)
                pending = []
        if pending:
            self._write_batch(pending)
        if progress:
            progress.finish()
        return done

    def reserve_keys(self, n: int) -> int:
        """The first of `n` text keys no batch has had (a kill before they are used leaves a gap,
        never a key given twice)."""
        with write_transaction(self.engine) as conn:
            got = conn.execute(select(meta.c.value).where(meta.c.key == NEXT_KEY)).scalar()
            first = int(got) if got is not None else 1
            if got is None:
                conn.execute(insert(meta), [{"key": NEXT_KEY, "value": str(first + n)}])
            else:
                conn.execute(
                    update(meta).where(meta.c.key == NEXT_KEY).values(value=str(first + n))
                )
        return first

    def _write_batch(self, rows: list[dict[str, Any]]) -> None:
        batch = uuid.uuid4().hex
        n = len(rows)
        shas = pa.array([r["sha"] for r in rows], pa.string())
        first = self.reserve_keys(n)
        keys = pa.array(np.arange(first, first + n, dtype=np.int64))
        texts = pa.table(
            {
                "text_key": keys,
                "text_sha256": shas,
                "words": pa.array([r["words"] for r in rows], pa.int64()),
                "norm_sha256": pa.array([r["norm"] for r in rows], pa.string()),
                "minhash": pa.array([r["sig"] for r in rows], pa.binary(hashing.NUM_PERM * 4)),
            }
        )
        # Each text's digest repeated once per row of it, by one take (no Python string per row).
        bands = pa.table(
            {
                "text_key": keys.take(np.repeat(np.arange(n), hashing.LSH_BANDS)),
                "band": np.tile(np.arange(hashing.LSH_BANDS, dtype=np.int16), n),
                "key": np.concatenate([r["bands"] for r in rows]),
            }
        )
        counts = [len(r["wh"]) for r in rows]
        winnow = pa.table(
            {
                # Typed: a batch of texts too short to winnow must not write a NULL-typed column,
                # which DuckDB then cannot read together with the other batches.
                "text_key": keys.take(np.repeat(np.arange(n), counts)),
                "h": np.concatenate([r["wh"] for r in rows]) if rows else np.zeros(0, np.uint64),
                "pos": np.concatenate([r["wp"] for r in rows]) if rows else np.zeros(0, np.uint32),
            }
        )
        self.root.mkdir(parents=True, exist_ok=True)
        for name, table in (("texts", texts), ("bands", bands), ("winnow", winnow)):
            _replace(self.root / f"{name}-{batch}.parquet", table)
        with write_transaction(self.engine) as conn:
            have = set(
                conn.execute(
                    select(fingerprints.c.text_sha256).where(
                        fingerprints.c.text_sha256.in_([r["sha"] for r in rows])
                    )
                ).scalars()
            )
            new = [
                {
                    "text_sha256": r["sha"],
                    "batch": batch,
                    "words": r["words"],
                    "params": hashing.PARAMS_VERSION,
                }
                for r in rows
                if r["sha"] not in have
            ]
            if new:
                conn.execute(insert(fingerprints), new)

    def attach(self, db: Any, shas: Iterable[str] | None = None, progress: Any = None) -> int:
        """Create DuckDB views `texts` (text_key, text_sha256, words, norm_sha256, minhash),
        `bands` (text_key, band, key) and `winnow` (text_key, h, pos) over the stored batches,
        holding only the rows of the batch each text is registered in. A batch can hold rows of
        a text that another batch is registered for (a run killed between writing a batch and
        registering it, then re-run): those few stale rows are found once from the small
        `texts` files and left out by their keys, so the big views join nothing when there are
        none. With `shas`, the views hold those texts only, read from their batches alone
        (other texts of the same batches are left out the same way as stale rows). Returns how
        many texts the views hold. `progress` shows batches written before keys being keyed.

        The registry goes to a DuckDB table a chunk at a time, not into a Python dict: at a
        million texts the dict alone was most of a build's driver memory."""
        db.execute("CREATE TABLE fp_registry (text_sha256 VARCHAR, batch VARCHAR)")
        for chunk in self._registry_chunks(shas):
            run_with_arrow(db, "INSERT INTO fp_registry SELECT * FROM {}", chunk)
        batches = [
            b for (b,) in db.execute("SELECT DISTINCT batch FROM fp_registry ORDER BY 1").fetchall()
        ]
        self._give_keys(batches, progress)
        files = {kind: self.files(kind, batches) for kind in KINDS}
        db.register(
            "batch_files",
            pa.table(
                {
                    "batch": [b for _ in KINDS for b in batches],
                    "filename": [f for kind in KINDS for f in files[kind]],
                }
            ),
        )
        db.execute(f"""
            CREATE TABLE stale AS
            SELECT t.text_key, f.batch FROM read_parquet({files["texts"]!r}, filename=true) t
            JOIN batch_files f ON f.filename = t.filename
            ANTI JOIN fp_registry r ON r.text_sha256 = t.text_sha256 AND r.batch = f.batch
        """)
        stale = db.execute("SELECT count(*) FROM stale").fetchall()[0][0]
        # The counter never hands a key out twice, so a stale row is known by its key alone,
        # unless the ledger was put back to a copy older than the fingerprints folder: then a
        # stale key can also be a live one, and rows are told apart by key and batch.
        by_batch = (
            stale
            and db.execute(f"""
            SELECT count(*) FROM read_parquet({files["texts"]!r}) t
            SEMI JOIN stale s ON s.text_key = t.text_key
        """).fetchall()[0][0]
            > stale
        )
        for kind in KINDS:
            if not stale:
                db.execute(f"CREATE VIEW {kind} AS SELECT * FROM read_parquet({files[kind]!r})")
            elif not by_batch:
                db.execute(f"""
                    CREATE VIEW {kind} AS SELECT p.* FROM read_parquet({files[kind]!r}) p
                    ANTI JOIN stale s ON s.text_key = p.text_key
                """)
            else:
                db.execute(f"""
                    CREATE VIEW {kind} AS SELECT t.* EXCLUDE (filename, batch) FROM (
                        SELECT p.*, f.batch FROM read_parquet({files[kind]!r}, filename=true) p
                        JOIN batch_files f ON f.filename = p.filename
                    ) t ANTI JOIN stale s ON s.text_key = t.text_key AND s.batch = t.batch
                """)
        return db.execute("SELECT count(*) FROM fp_registry").fetchall()[0][0]

    def _give_keys(self, batches: list[str], progress: Any = None) -> None:
        """Key the batches written before text keys: every file gets the `text_key` of each
        row's text, its `texts` file first (keys from the counter), then its `bands` and
        `winnow` (each row's key looked up by its digest). Each file is replaced whole
        (temporary name, then rename) under a lock, so two processes never key a batch twice and
        a kill leaves files that the next attach finishes keying."""
        # Keying writes `winnow` last: a batch whose winnow file has keys is keyed throughout.
        old = [
            b
            for b in batches
            if "text_key" not in pq.read_schema(self.root / f"winnow-{b}.parquet").names
        ]
        if not old:
            return
        if progress:
            progress.start(len(old))
        with exclusive(self.root / ".keys.lock"):
            for b in old:
                texts_path = self.root / f"texts-{b}.parquet"
                texts = pq.read_table(texts_path)
                if "text_key" not in texts.column_names:
                    first = self.reserve_keys(texts.num_rows)
                    keys = np.arange(first, first + texts.num_rows, dtype=np.int64)
                    texts = texts.add_column(0, "text_key", pa.array(keys))
                    _replace(texts_path, texts)
                for kind in ("bands", "winnow"):
                    path = self.root / f"{kind}-{b}.parquet"
                    table = pq.read_table(path)
                    if "text_key" in table.column_names:
                        continue
                    at = pc.index_in(table["text_sha256"], value_set=texts["text_sha256"])
                    if at.null_count:
                        raise CopytrailError(
                            f"fingerprint file {path.name} names texts its batch does not hold:"
                            " the file is damaged, or was replaced by another batch's"
                        )
                    keyed = table.drop_columns(["text_sha256"]).add_column(
                        0, "text_key", texts["text_key"].take(at)
                    )
                    _replace(path, keyed)
                if progress:
                    progress.advance(1)
        if progress:
            progress.finish()

    def _registry_chunks(self, shas: Iterable[str] | None) -> Iterator[pa.Table]:
        """The registry (or the rows of `shas`) as Arrow tables of REGISTRY_CHUNK rows."""
        names = ["text_sha256", "batch"]
        if shas is not None:
            got = self.registry(shas)
            yield pa.table([list(got), list(got.values())], names=names)
            return
        for rows in self._registry_rows():
            yield pa.table([[r[0] for r in rows], [r[1] for r in rows]], names=names)

    @contextmanager
    def joins(self) -> Iterator[Any]:
        """A DuckDB connection for joins over the fingerprints, bounded in memory
        (`COPYTRAIL_JOIN_MEMORY`, copytrail/joins.py)."""
        with bounded_duckdb() as db:
            yield db

    def files(self, kind: str, batches: list[str] | None = None) -> list[str]:
        """The `kind` files of the registered batches (or of `batches`)."""
        if batches is None:
            batches = sorted(set(self.registry().values()))
        root = str(self.root)
        return [f"{root}/{kind}-{b}.parquet" for b in batches]


def _replace(final: Path, table: pa.Table) -> None:
    """Write `table` to `final` whole (atomic.write_atomic: a temporary name, then a rename)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(final, sink.getvalue().to_pybytes())


def fingerprint_store(ctx: Context) -> FingerprintStore:
    """The library's fingerprint store (cheap to make: the table belongs to the schema)."""
    return FingerprintStore(ctx.root / "fingerprints", ctx.db, ctx.store, ctx.executor)
