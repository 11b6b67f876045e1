"""`copytrail build CORPUS --policy FILE`: decide the fate of every copy of the policy's datasets,
tokenize the included ones into shards, and record it all.

Rules apply in this order and the first one that fires is the copy's fate: status (unreadable,
refused, deleted), source kind, works lists (the audit matcher, run now), language, quality,
then duplicates (kept copy chosen by the keep order). Included copies are written in copy-id
order, so the same library state and policy give byte-identical shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import insert, select

from copytrail.build.dedup import Candidate, duplicates
from copytrail.build.filters import quality_rule
from copytrail.build.policy import Policy, load_policy
from copytrail.build.shards import ShardWriter, token_dtype
from copytrail.build.tokenizer import EOS, file_sha256, load_tokenizer
from copytrail.catalog.digest import DOC_COLUMNS, rows_digest
from copytrail.catalog.queries import DATASET_NAME, DATASET_VERSION, copy_rows, dataset_id, labelled
from copytrail.catalog.records import next_id
from copytrail.catalog.schema import copies, corpora, corpus_docs, sources
from copytrail.context import Context
from copytrail.errors import Conflict, InvalidInput
from copytrail.fingerprint.store import fingerprint_store
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now

ENCODE_BATCH = 64  # documents per tokenizer call (the Rust side spreads a batch over cores)
ENCODE_BATCH_BYTES = 8 << 20  # ... and at most this much text, whatever the documents' size
LINEAGE_ROWS = 50_000  # lineage rows held before they are written
FILTER_BATCH = 256  # texts per filter task

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


def _encode_batches(
    rows: list[dict[str, Any]], size_of: dict[str, int]
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    nbytes = 0
    for r in rows:
        if batch and (
            len(batch) >= ENCODE_BATCH or nbytes + size_of[r["text_sha256"]] > ENCODE_BATCH_BYTES
        ):
            yield batch
            batch, nbytes = [], 0
        batch.append(r)
        nbytes += size_of[r["text_sha256"]]
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


def filter_task(fctx: FilterContext, shas: list[str]) -> list[tuple[str, str | None, int]]:
    """(text, the quality rule that drops it or None, its length in characters) per text."""
    out = []
    for sha in shas:
        text = fctx.store.get(sha).decode("utf-8")
        out.append((sha, quality_rule(text, fctx.filters), len(text)))
    return out


def corpus_root(ctx: Context) -> Path:
    return ctx.root / "corpora"


def _considered(ctx: Context, policy: Policy) -> list[dict[str, Any]]:
    with read_connection(ctx.db) as conn:
        ids = [dataset_id(conn, d) for d in policy.datasets]
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
            .where(copies.c.dataset_id.in_(ids))
            .order_by(copies.c.id)
        )
        return [labelled(r) for r in conn.execute(q)]


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
    rows = _considered(ctx, policy)
    fates: dict[int, dict[str, Any]] = {}

    def exclude(cid: int, rule: str, detail: str | None = None, kept: int | None = None) -> None:
        fates[cid] = {"fate": "excluded", "rule": rule, "detail": detail, "kept_copy_id": kept}

    for r in rows:
        if r["status"] != "ok" or not r["text_sha256"]:
            exclude(r["id"], f"status:{r['status']}")
        elif r["kind"] in policy.exclude_kinds:
            exclude(r["id"], f"source-kind:{r['kind']}")
    clock.lap("select")
    for cid, (rule, detail) in _works_exclusions(ctx, policy, ds_ids).items():
        if cid not in fates:
            exclude(cid, rule, detail)
    clock.lap("works lists")
    to_filter: list[dict[str, Any]] = []
    for r in rows:
        if r["id"] in fates:
            continue
        if policy.languages and r["language"] not in policy.languages:
            exclude(r["id"], "language", r["language"])
            continue
        to_filter.append(r)
    # Quality filters run in the workers, a batch of texts at a time: no text is held here.
    shas = sorted({r["text_sha256"] for r in to_filter})
    size_of = {r["text_sha256"]: r["text_size"] or 0 for r in to_filter}
    verdicts: dict[str, str | None] = {}
    text_len: dict[str, int] = {}
    batches = [shas[i : i + FILTER_BATCH] for i in range(0, len(shas), FILTER_BATCH)]
    worker = FilterContext(ctx.store, policy.filters)
    for batch in ctx.executor.map(filter_task, batches, worker, sum(size_of.values())):
        for sha, rule, n in batch:
            verdicts[sha], text_len[sha] = rule, n
    for r in to_filter:
        rule = verdicts[r["text_sha256"]]
        if rule:
            exclude(r["id"], rule)
    clock.lap("filters")
    survivors = [
        Candidate(r["id"], r["text_sha256"], policy.kind_rank(r["kind"]))
        for r in rows
        if r["id"] not in fates
    ]
    dups = duplicates(
        fingerprint_store(ctx),
        survivors,
        policy.dedup.exact,
        policy.dedup.near,
        policy.dedup.near_threshold,
        text_bytes=sum(text_len[c.text_sha256] for c in survivors),
    )
    for cid, (rule, kept) in dups.items():
        exclude(cid, rule, kept=kept)
    clock.lap("dedup")

    root = corpus_root(ctx)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists():  # left by a build killed before it was recorded: no ledger row names it
        shutil.rmtree(final)
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    writer = ShardWriter(
        tmp, token_dtype(tok.get_vocab_size()), tok.token_to_id(EOS), policy.shard_tokens
    )
    included = [r for r in rows if r["id"] not in fates]
    lineage: list[dict[str, Any]] = []  # rows not yet written: lineage streams to Parquet
    lineage_out = pq.ParquetWriter(tmp / "lineage.parquet", LINEAGE_SCHEMA)
    documents = 0
    # Tokenized by the executor's workers, written here in copy-id order: the same library
    # and policy give the same shards whichever engine ran the batches.
    batches = list(_encode_batches(included, size_of))
    tasks = [[r["text_sha256"] for r in b] for b in batches]
    encoder = EncodeContext(ctx.store, tok.to_str(), tok_sha)
    text_bytes = sum(size_of[r["text_sha256"]] for r in included)
    encoded_batches = ctx.executor.map(encode_task, tasks, encoder, text_bytes, ordered=True)
    for batch, encoded in zip(batches, encoded_batches, strict=True):
        clock.lap("tokenize")
        for r, ids in zip(batch, encoded, strict=True):
            shard, start, end = writer.add(ids)
            fates[r["id"]] = {
                "fate": "included",
                "rule": None,
                "detail": None,
                "kept_copy_id": None,
                "shard": shard,
                "token_start": start,
                "token_end": end,
            }
            lineage.append(
                {
                    "shard": shard,
                    "token_start": start,
                    "token_end": end,
                    "copy_id": r["id"],
                    "text_sha256": r["text_sha256"],
                    "dataset": r["dataset"],
                    "source": r["source"],
                    "source_kind": r["kind"],
                    "license": r["license"],
                }
            )
            documents += 1
            if len(lineage) >= LINEAGE_ROWS:
                lineage_out.write_table(pa.Table.from_pylist(lineage, LINEAGE_SCHEMA))
                lineage = []
        clock.lap("write")
    writer.flush()
    if lineage:
        lineage_out.write_table(pa.Table.from_pylist(lineage, LINEAGE_SCHEMA))
    lineage_out.close()
    fate_rows = [
        {
            "copy_id": cid,
            "fate": f["fate"],
            "rule": f["rule"],
            "detail": f["detail"],
            "kept_copy_id": f["kept_copy_id"],
        }
        for cid, f in sorted(fates.items())
    ]
    fate_schema = pa.schema(
        [
            ("copy_id", pa.int64()),
            ("fate", pa.string()),
            ("rule", pa.string()),
            ("detail", pa.string()),
            ("kept_copy_id", pa.int64()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(fate_rows, fate_schema), tmp / "fates.parquet")
    tokens = sum(s["tokens"] for s in writer.shards)
    by_rule = Counter(f["rule"] for f in fates.values() if f["fate"] == "excluded")
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
        "considered": len(rows),
        "excluded_by_rule": dict(sorted(by_rule.items())),
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (tmp / "manifest.json").write_bytes(body)
    manifest_sha = hashlib.sha256(body).hexdigest()
    os.rename(tmp, final)
    clock.lap("write")

    with write_transaction(ctx.db) as conn:
        corpus_id = next_id(conn, corpora.c.id)
        ev = EventWriter(conn, ctx.actor)
        doc_rows = [
            {
                "corpus_id": corpus_id,
                "copy_id": cid,
                "fate": f["fate"],
                "rule": f["rule"],
                "detail": f["detail"],
                "kept_copy_id": f["kept_copy_id"],
                "shard": f.get("shard"),
                "token_start": f.get("token_start"),
                "token_end": f.get("token_end"),
            }
            for cid, f in sorted(fates.items())
        ]
        subj = {"corpus_id": corpus_id, "corpus": name}
        seq = ev.append(
            "included",
            subj,
            {
                "documents": documents,
                "tokens": tokens,
                "lineage_sha256": manifest["lineage_sha256"],
            },
        )
        ev.append(
            "excluded",
            subj,
            {
                "copies": sum(by_rule.values()),
                "by_rule": manifest["excluded_by_rule"],
                "fates_sha256": manifest["fates_sha256"],
                "docs_sha256": rows_digest(doc_rows, DOC_COLUMNS),
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
                    "documents": documents,
                    "tokens": tokens,
                    "created": utc_now(),
                    "actor": ctx.actor,
                    "event_seq": seq,
                }
            ],
        )
        for i in range(0, len(doc_rows), 5000):
            conn.execute(insert(corpus_docs), doc_rows[i : i + 5000])
    clock.lap("record")
    text_bytes = sum(size_of.values())  # UTF-8 bytes of the distinct texts filtered
    included_bytes = sum(size_of[r["text_sha256"]] for r in included)
    return {
        **manifest,
        "manifest_sha256": manifest_sha,
        "path": str(final),
        "event_seq": seq,
        "timings": clock.seconds,  # not in the manifest: it must not change between builds
        "text_bytes_read": text_bytes,
        "text_bytes_included": included_bytes,
    }


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
