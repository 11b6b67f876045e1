"""A corpus as a Hugging Face `datasets.Dataset`: one row per included document, its text next
to its lineage (copy id, dataset, source, source kind, licence, shard and token range), so a
training script that uses `datasets` keeps the copy ids with the text. Nothing is fetched from
the Hub: the library sets the offline switches before `datasets` is imported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from copytrail.catalog.schema import corpora
from copytrail.context import Context
from copytrail.errors import NotFound
from copytrail.ledger.db import read_connection

COLUMNS = {
    "copy_id": "int64",
    "text": "string",
    "text_sha256": "string",
    "dataset": "string",
    "source": "string",
    "source_kind": "string",
    "license": "string",
    "shard": "int32",
    "token_start": "int64",
    "token_end": "int64",
}


def _datasets() -> Any:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    return datasets


def _rows(lineage: str, store_url: str, manifest_sha256: str) -> Any:  # noqa: ARG001
    """Generator for Dataset.from_generator (the manifest hash keys its cache)."""
    import pyarrow.parquet as pq

    from copytrail.store.blobs import BlobStore

    store = BlobStore(store_url)
    pf = pq.ParquetFile(lineage)
    for g in range(pf.num_row_groups):
        for row in pf.read_row_group(g).to_pylist():
            try:
                text = store.get(row["text_sha256"]).decode("utf-8")
            except FileNotFoundError:  # deleted since the build: the row stays, the text is gone
                text = None
            yield {k: (text if k == "text" else row.get(k)) for k in COLUMNS}


def corpus_dataset(ctx: Context, name: str) -> Any:
    """The corpus's documents as a `datasets.Dataset`, written to an Arrow cache under the
    library (memory stays flat however large the corpus)."""
    with read_connection(ctx.db) as conn:
        c = conn.execute(select(corpora).where(corpora.c.name == name)).first()
    if c is None:
        raise NotFound(f"no corpus {name!r}; see `copytrail corpus show NAME`")
    lineage = Path(c.path) / "lineage.parquet"
    if not lineage.exists():
        raise NotFound(f"corpus {name!r}: its files are gone from {c.path}")
    ds = _datasets()
    features = ds.Features({k: ds.Value(t) for k, t in COLUMNS.items()})
    out = ds.Dataset.from_generator(
        _rows,
        features=features,
        gen_kwargs={
            "lineage": str(lineage),
            "store_url": ctx.store.url,
            "manifest_sha256": c.manifest_sha256,
        },
        cache_dir=str(ctx.root / "hf-cache"),
    )
    out.info.description = json.dumps(
        {"copytrail_corpus": name, "manifest_sha256": c.manifest_sha256, "event_seq": c.event_seq}
    )
    return out


def save_corpus(ctx: Context, name: str, out: str | os.PathLike) -> dict[str, Any]:
    """`datasets.save_to_disk` of the corpus: `datasets.load_from_disk(out)` reads it back."""
    d = corpus_dataset(ctx, name)
    d.save_to_disk(str(out))
    return {"path": str(out), "corpus": name, "rows": d.num_rows, "columns": list(d.column_names)}
