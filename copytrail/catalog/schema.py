"""The catalog: domain tables (sources, datasets, copies, works, audits, corpora, runs, holds, ...)
that index the log's events for fast questions. `verify` cross-checks them against the events.
They live on the log's `metadata`, so one `create_all` and one schema version cover the database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from copytrail.ledger.schema import ROW_KEY, metadata

SCHEMA_VERSION = 13  # 2: works lists, audits, matches; 3: works.text_source_sha256; 4: api_keys
# 5: corpora, corpus_docs; 6: runs; 7: holds, deletions (fingerprints joined the schema in 7)
# 8: boilerplate; 9: purchases, scans, purposes; 10: signed checkpoints, tree_nodes
# 11: run_reads; 12: event_subjects, copies.event_seq index (batched ingest events)
# 13: matches.methods, ix_matches_audit_work, ix_works_work_id (`where` from recorded audits)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("license", Text),
    Column("provided_by", Text),
    Column("acquired", String(40)),
    Column("url", Text),
    Column("notes", Text),
    Column("created", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),  # "" when unversioned
    Column("source_id", Integer, ForeignKey("sources.id"), nullable=False),
    Column("created", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    UniqueConstraint("name", "version", name="uq_dataset_name_version"),
)

copies = Table(
    "copies",
    metadata,
    Column("id", ROW_KEY, primary_key=True, autoincrement=False),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    # NULL only for items refused before their bytes were read (an oversized archive member).
    Column("sha256", String(64)),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("path", Text, nullable=False),
    Column("status", String(16), nullable=False),  # ok | unreadable | refused | deleted
    Column("reason", Text),
    Column("text_sha256", String(64)),
    Column("text_size", BigInteger),
    Column("title", Text),
    Column("authors", Text),  # JSON list
    Column("isbns", Text),  # JSON list of ISBN-13
    Column("language", String(16)),
    Column("words", BigInteger),
    Column("replacements", Integer),  # invalid byte sequences replaced while decoding
    Column("extra", Text),  # JSON: other metadata (identifiers, encoding, record fields, ...)
    Column("created", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    # Digest first: the one index serves "this file in this dataset" and "this file anywhere"
    # (a second index on sha256 alone cost ~85 bytes a copy). Libraries made before keep
    # UNIQUE (dataset_id, sha256) and ix_copies_sha256, which answer the same lookups.
    UniqueConstraint("sha256", "dataset_id", name="uq_copy_sha256_dataset"),
)
Index("ix_copies_text_sha256", copies.c.text_sha256)
Index("ix_copies_dataset_path", copies.c.dataset_id, copies.c.path)
Index("ix_copies_event_seq", copies.c.event_seq)  # the copies of one batch event

copy_isbns = Table(
    "copy_isbns",
    metadata,
    Column("copy_id", BigInteger, ForeignKey("copies.id"), nullable=False),
    Column("isbn13", String(13), nullable=False),
    Column("origin", String(16), nullable=False),  # metadata | text
    UniqueConstraint("copy_id", "isbn13", name="uq_copy_isbn"),
)
Index("ix_copy_isbns_isbn", copy_isbns.c.isbn13)

works_lists = Table(
    "works_lists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("created", String(40), nullable=False),
)

works = Table(
    "works",
    metadata,
    Column("id", ROW_KEY, primary_key=True, autoincrement=False),
    Column("list_id", Integer, ForeignKey("works_lists.id"), nullable=False),
    Column("work_id", String(200), nullable=False),
    Column("title", Text),
    Column("authors", Text),  # JSON list
    Column("isbns", Text),  # JSON list of ISBN-13
    Column("asin", String(20)),
    Column("text_sha256", String(64)),  # reference text blob, when given
    Column("text_source_sha256", String(64)),  # the reference file's own bytes (a blob too)
    Column("text_path", Text),
    Column("updated", String(40), nullable=False),
    UniqueConstraint("list_id", "work_id", name="uq_work_list_id"),
)
Index("ix_works_work_id", works.c.work_id)  # `where ID` without --list

work_isbns = Table(
    "work_isbns",
    metadata,
    Column("work_pk", BigInteger, ForeignKey("works.id"), nullable=False),
    Column("isbn13", String(13), nullable=False),
    UniqueConstraint("work_pk", "isbn13", name="uq_work_isbn"),
)
Index("ix_work_isbns_isbn", work_isbns.c.isbn13)

audits = Table(
    "audits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("list_id", Integer, ForeignKey("works_lists.id"), nullable=False),
    Column("datasets", Text, nullable=False),  # JSON list of dataset labels ([] = all)
    Column("params", Text, nullable=False),  # JSON
    Column("out_dir", Text, nullable=False),
    Column("time", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)

matches = Table(
    "matches",
    metadata,
    Column("audit_id", Integer, ForeignKey("audits.id"), nullable=False),
    Column("work_pk", BigInteger, ForeignKey("works.id"), nullable=False),
    Column("copy_id", BigInteger, ForeignKey("copies.id"), nullable=False),
    Column("method", String(32), nullable=False),
    Column("score", Float),
    Column("coverage", Float),
    Column("longest_span_words", Integer),
    Column("spans", Text),  # JSON
    Column("methods", Text),  # JSON list of every method that found it (NULL before schema 13)
)
Index("ix_matches_work", matches.c.work_pk)
Index("ix_matches_audit_work", matches.c.audit_id, matches.c.work_pk)
Index("ix_matches_copy", matches.c.copy_id)

# HTTP API keys. Only a SHA-256 of each key is kept: keys are 256-bit random strings, so a fast
# hash is enough (there is no password to guess), and a stolen ledger gives no usable key.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # checker | auditor | admin
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # first characters, to recognise a key
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("revoked", String(40)),
)

# Corpora built under a policy, and the fate of every copy each build considered.
corpora = Table(
    "corpora",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("tokenizer_sha256", String(64), nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("documents", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)

corpus_docs = Table(
    "corpus_docs",
    metadata,
    Column("corpus_id", Integer, ForeignKey("corpora.id"), nullable=False),
    Column("copy_id", BigInteger, ForeignKey("copies.id"), nullable=False),
    Column("fate", String(16), nullable=False),  # included | excluded
    Column("rule", String(100)),  # why excluded: source-kind:..., works-list:..., quality:..., ...
    Column("detail", Text),  # e.g. the matched work, the language found
    Column("kept_copy_id", BigInteger),  # for duplicates: the copy kept instead
    Column("shard", Integer),
    Column("token_start", BigInteger),
    Column("token_end", BigInteger),
    UniqueConstraint("corpus_id", "copy_id", name="uq_corpus_copy"),
)
Index("ix_corpus_docs_copy", corpus_docs.c.copy_id)

# Training runs: which model was trained on which corpus (and which of its shards).
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("model", String(200), nullable=False),
    Column("corpus_id", Integer, ForeignKey("corpora.id"), nullable=False),
    Column("shards", Text),  # JSON list of shard numbers; NULL = every shard
    Column("started", String(40)),
    Column("finished", String(40)),
    Column("notes", Text),
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)
Index("ix_runs_model", runs.c.model)

# Which tokens a run read, as intervals of equal count: tokens [token_start, token_end) of shard
# `shard` of the run's corpus were read `times` times (written by `copytrail train`).
run_reads = Table(
    "run_reads",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("shard", Integer, nullable=False),
    Column("token_start", BigInteger, nullable=False),
    Column("token_end", BigInteger, nullable=False),
    Column("times", Integer, nullable=False),
)
Index("ix_run_reads_run", run_reads.c.run_id, run_reads.c.shard, run_reads.c.token_start)

# Legal holds: while active, nothing they cover may be deleted.
holds = Table(
    "holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("matter", Text, nullable=False),
    Column("scope", String(16), nullable=False),  # dataset | source | work
    Column("ref", String(400), nullable=False),  # dataset label, source name, list:work_id
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("released", String(40)),
    Column("released_by", String(200)),
    Column("event_seq", BigInteger, nullable=False),
)

deletions = Table(
    "deletions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("reason", Text, nullable=False),
    Column("copies", Integer, nullable=False),
    Column("certificate", Text),  # path of the JSON certificate
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)

# Which Parquet batch under LIBRARY/fingerprints holds each text's fingerprints.
fingerprints = Table(
    "fingerprints",
    metadata,
    Column("text_sha256", String(64), primary_key=True),
    Column("batch", String(64), nullable=False),
    Column("words", Integer, nullable=False),
    Column("params", String(64), nullable=False),
)

# Passages declared boilerplate for this library (beside the ones copytrail ships): never
# evidence of a work in an audit or a build, never flagged by the guard.
boilerplate = Table(
    "boilerplate",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("text_sha256", String(64), nullable=False),  # the passage, a blob
    Column("words", Integer, nullable=False),
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)

# Acquisition records: what was bought (the print books behind scans), which scan came from which
# purchase line, what became of the print copy, and the declared purpose of sources and datasets.
purchases = Table(
    "purchases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("source_id", Integer, ForeignKey("sources.id"), nullable=False),
    Column("item_key", String(300), nullable=False),  # order id + ISBN-13 or title/author
    Column("order_id", String(200), nullable=False),
    Column("vendor", Text),
    Column("date", String(40), nullable=False),
    Column("isbn13", String(13)),
    Column("title", Text),
    Column("author", Text),
    Column("quantity", Integer, nullable=False),
    Column("format", String(16), nullable=False),  # print | ebook
    Column("price", Float),
    Column("currency", String(3)),
    Column("file_sha256", String(64), nullable=False),
    Column("line", Integer, nullable=False),
    Column("updated", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    UniqueConstraint("source_id", "item_key", name="uq_purchase_item"),
)
Index("ix_purchases_isbn", purchases.c.isbn13)

scans = Table(
    "scans",
    metadata,
    Column("copy_id", ROW_KEY, ForeignKey("copies.id"), primary_key=True),
    Column("purchase_id", Integer, ForeignKey("purchases.id")),  # NULL: no purchase found
    Column("match", Text),  # JSON: how the purchase line was found (method, score, key)
    Column("scan_date", String(40)),
    Column("print_fate", String(16)),  # destroyed | kept | resold | unknown
    Column("fate_date", String(40)),
    Column("updated", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)
Index("ix_scans_purchase", scans.c.purchase_id)

purposes = Table(
    "purposes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("scope", String(16), nullable=False),  # source | dataset
    Column("ref_id", Integer, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("text", Text),  # what "other" means, or a note
    Column("document_sha256", String(64)),  # the licence, invoice or approval, as a blob
    Column("document_name", Text),
    Column("effective", String(40), nullable=False),  # from when the purpose holds
    Column("created", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)
Index("ix_purposes_ref", purposes.c.scope, purposes.c.ref_id)
