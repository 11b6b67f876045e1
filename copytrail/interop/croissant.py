"""Croissant 1.1 (MLCommons) JSON-LD for a corpus or a dataset, with the Responsible-AI fields
copytrail knows and the provenance the ledger records.

A corpus: its files (shards, lineage, fates, manifest) with their SHA-256, record sets over the
lineage and fates tables, and provenance from its datasets and sources. A dataset: a listing of
its copies (NAME.copies.parquet, written beside the JSON: ids, paths, hashes of bytes and text) as
a record set; the bytes stay in the content-addressed store, which Croissant cannot address.
`mlcroissant` validates the result and loads its records (tests do both).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, func, select

from copytrail.atomic import write_atomic
from copytrail.catalog.queries import dataset_id, purpose_of_datasets
from copytrail.catalog.records import dataset_label
from copytrail.catalog.schema import copies, corpora, corpus_docs, datasets, sources
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import utc_now
from copytrail.ledger.schema import events

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "prov": "http://www.w3.org/ns/prov#",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
# How each kind of source was collected, in the RAI vocabulary's terms.
COLLECTION_TYPE = {
    "purchased-scan": "Physical data collection",
    "licensed": "Secondary Data Analysis",
    "public-domain": "Web Scraping",
    "web-crawl": "Web Scraping",
    "shadow-library": "Web Scraping",
    "third-party": "Secondary Data Analysis",
    "user-upload": "User-generated content data",
    "unknown": "Others",
}
_ARROW_TYPES = {"int": "sc:Integer", "uint": "sc:Integer", "string": "sc:Text",
                "large_string": "sc:Text", "double": "sc:Float", "float": "sc:Float",
                "bool": "sc:Boolean"}  # fmt: skip


def export(
    ctx: Context, out: str | os.PathLike, dataset: str | None = None, corpus: str | None = None
) -> dict[str, Any]:
    if (dataset is None) == (corpus is None):
        raise InvalidInput("describe one: --dataset D or --corpus C")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with read_connection(ctx.db) as conn:
        if corpus is not None:
            doc = _corpus(ctx, conn, corpus, out_path)
        else:
            doc = _dataset(ctx, conn, str(dataset), out_path)
    body = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    write_atomic(out_path, body.encode("utf-8"))
    return {
        "path": str(out_path),
        "name": doc["name"],
        "files": len(doc["distribution"]),
        "record_sets": [r["name"] for r in doc["recordSet"]],
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }


def _corpus(ctx: Context, conn: Connection, name: str, out: Path) -> dict[str, Any]:
    c = conn.execute(select(corpora).where(corpora.c.name == name)).first()
    if c is None:
        raise NotFound(f"no corpus {name!r}; see `copytrail corpus show NAME`")
    folder = Path(c.path)
    manifest_file = folder / "manifest.json"
    if not manifest_file.exists():
        raise NotFound(f"corpus {name!r}: its files are gone from {folder}")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    ds_ids = [
        r.dataset_id
        for r in conn.execute(
            select(copies.c.dataset_id)
            .join(corpus_docs, corpus_docs.c.copy_id == copies.c.id)
            .where(corpus_docs.c.corpus_id == c.id)
            .distinct()
        )
    ]
    files = [
        _file("manifest.json", folder / "manifest.json", "application/json", out,
              c.manifest_sha256),
        _file("lineage.parquet", folder / "lineage.parquet", "application/x-parquet", out,
              manifest["lineage_sha256"]),
        _file("fates.parquet", folder / "fates.parquet", "application/x-parquet", out,
              manifest["fates_sha256"]),
    ]  # fmt: skip
    for s in manifest["shards"]:
        files.append(
            _file(s["file"], folder / s["file"], "application/octet-stream", out, s["sha256"])
        )
        files.append(
            _file(s["index"], folder / s["index"], "application/octet-stream", out,
                  s["index_sha256"])
        )  # fmt: skip
    record_sets = [
        _record_set("lineage", folder / "lineage.parquet", "lineage.parquet",
                    "One row per included document: where its tokens are and where it came from"),
        _record_set("fates", folder / "fates.parquet", "fates.parquet",
                    "One row per considered copy: included or excluded, and by which rule"),
    ]  # fmt: skip
    excluded = manifest.get("excluded_by_rule", {})
    limits = [f"{n} copies excluded by rule {rule}" for rule, n in sorted(excluded.items())]
    ev = conn.execute(
        select(events.c.seq, events.c.hash).where(events.c.seq == c.event_seq)
    ).first()
    doc = _base(
        name=name,
        description=(
            f"Training corpus {name} built by copytrail: {c.documents} documents, {c.tokens} "
            f"tokens, from {manifest['considered']} copies considered under policy "
            f"{c.policy_sha256[:12]}."
        ),
        created=c.created,
        cite=f"copytrail corpus {name}, manifest SHA-256 {c.manifest_sha256}",
    )
    doc.update(_rai(conn, ds_ids, limits))
    doc["distribution"] = files
    doc["recordSet"] = record_sets
    doc["prov:wasDerivedFrom"] = _provenance(conn, ds_ids)
    doc["prov:wasGeneratedBy"] = {
        "@type": "prov:Activity",
        "name": f"copytrail build {name}",
        "prov:endedAtTime": c.created,
        "identifier": f"ledger event {ev.seq} (hash {ev.hash})" if ev else None,
    }
    return doc


def _dataset(ctx: Context, conn: Connection, ref: str, out: Path) -> dict[str, Any]:
    did = dataset_id(conn, ref)
    d = conn.execute(select(datasets).where(datasets.c.id == did)).first()
    listing = out.with_name(out.stem + ".copies.parquet")
    cols = ["id", "path", "sha256", "size", "media_type", "status", "text_sha256", "title",
            "language", "words", "created"]  # fmt: skip
    writer = None
    n = 0
    last = 0
    try:
        while True:
            rows = conn.execute(
                select(*(copies.c[k] for k in cols))
                .where(copies.c.dataset_id == did, copies.c.id > last)
                .order_by(copies.c.id)
                .limit(20_000)
            ).all()
            if not rows:
                break
            table = pa.Table.from_pylist([r._asdict() for r in rows], schema=_COPY_SCHEMA)
            if writer is None:
                writer = pq.ParquetWriter(listing, _COPY_SCHEMA)
            writer.write_table(table)
            n += len(rows)
            last = rows[-1].id
        if writer is None:
            pq.write_table(pa.Table.from_pylist([], schema=_COPY_SCHEMA), listing)
    finally:
        if writer is not None:
            writer.close()
    label = dataset_label(d.name, d.version)
    files = [_file("copies.parquet", listing, "application/x-parquet", out)]
    doc = _base(
        name=label,
        description=f"Dataset {label} as copytrail recorded it: {n} copies with their hashes.",
        created=d.created,
        cite=f"copytrail dataset {label}",
    )
    doc.update(_rai(conn, [did], []))
    doc["distribution"] = files
    doc["recordSet"] = [
        _record_set("copies", listing, "copies.parquet", "One row per copy, with its hashes")
    ]
    doc["prov:wasDerivedFrom"] = _provenance(conn, [did])
    return doc


_COPY_SCHEMA = pa.schema(
    [("id", pa.int64()), ("path", pa.string()), ("sha256", pa.string()), ("size", pa.int64()),
     ("media_type", pa.string()), ("status", pa.string()), ("text_sha256", pa.string()),
     ("title", pa.string()), ("language", pa.string()), ("words", pa.int64()),
     ("created", pa.string())]
)  # fmt: skip


def _base(name: str, description: str, created: str, cite: str) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", name),  # Croissant's allowed name characters
        "alternateName": name,
        "description": description,
        "citeAs": cite,
        "datePublished": created[:10],
        "dateCreated": created[:10],
        "version": "1.0.0",
        "license": "https://spdx.org/licenses/NOASSERTION",
        "url": "https://github.com/copytrail/copytrail",
        "creator": {"@type": "sc:Organization", "name": "copytrail"},
    }


def _file(ident: str, path: Path, fmt: str, out: Path, sha256: str | None = None) -> dict[str, Any]:
    return {
        "@type": "cr:FileObject",
        "@id": ident,
        "name": ident,
        "contentUrl": _relative(path, out),
        "contentSize": f"{path.stat().st_size} B" if path.exists() else None,
        "encodingFormat": fmt,
        "sha256": sha256 or _sha256(path),
    }


def _relative(path: Path, out: Path) -> str:
    """contentUrl relative to the JSON file, as Croissant resolves local files."""
    try:
        return os.path.relpath(path.resolve(), out.resolve().parent)
    except ValueError:  # another drive
        return str(path.resolve())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_set(name: str, parquet: Path, file_id: str, description: str) -> dict[str, Any]:
    schema = pq.read_schema(parquet)
    fields = []
    for col in schema:
        kind = str(col.type).rstrip("0123456789")
        fields.append(
            {
                "@type": "cr:Field",
                "@id": f"{name}/{col.name}",
                "name": col.name,
                "dataType": _ARROW_TYPES.get(kind, "sc:Text"),
                "source": {"fileObject": {"@id": file_id}, "extract": {"column": col.name}},
            }
        )
    return {
        "@type": "cr:RecordSet",
        "@id": name,
        "name": name,
        "description": description,
        "field": fields,
    }


def _sources_of(conn: Connection, ds_ids: list[int]) -> list[Any]:
    return conn.execute(
        select(datasets, sources.c.name.label("source"), sources.c.kind, sources.c.license,
               sources.c.provided_by, sources.c.acquired, sources.c.url)
        .join(sources, sources.c.id == datasets.c.source_id)
        .where(datasets.c.id.in_(ds_ids))
        .order_by(datasets.c.id)
    ).all()  # fmt: skip


def _rai(conn: Connection, ds_ids: list[int], limits: list[str]) -> dict[str, Any]:
    rows = _sources_of(conn, ds_ids)
    said = []
    for r in rows:
        who = f", provided by {r.provided_by}" if r.provided_by else ""
        when = f", acquired {r.acquired}" if r.acquired else ""
        said.append(
            f"{dataset_label(r.name, r.version)} from source {r.source} ({r.kind}{who}{when}; "
            f"licence: {r.license or 'not recorded'})"
        )
    dates = sorted(d for r in rows for d in (r.acquired, r.created) if d)
    out: dict[str, Any] = {
        "rai:dataCollection": "Copies recorded by copytrail with the hashes of their bytes and "
        "text, each ingestion an event in a hash-chained ledger: " + "; ".join(said),
        "rai:dataCollectionType": sorted({COLLECTION_TYPE.get(r.kind, "Others") for r in rows}),
    }
    if dates:
        out["rai:dataCollectionTimeframe"] = [_iso(dates[0]), _iso(dates[-1])]
    purposes = purpose_of_datasets(conn, utc_now())
    uses = sorted({purposes.get(i, "undeclared") for i in ds_ids} - {"undeclared"})
    if uses:
        out["rai:dataUseCases"] = ", ".join(uses)
    kinds = sorted({r.kind for r in rows})
    limits = [*limits, f"source kinds present: {', '.join(kinds) or 'none'}"]
    n_unreadable = conn.execute(
        select(func.count())
        .select_from(copies)
        .where(copies.c.dataset_id.in_(ds_ids), copies.c.status != "ok")
    ).scalar_one()
    if n_unreadable:
        limits.append(f"{n_unreadable} copies unreadable, refused or deleted (no text)")
    out["rai:dataLimitations"] = "; ".join(limits)
    return out


def _iso(value: str) -> str:
    """A date or datetime as a full ISO datetime (Croissant's timeframe wants DateTime)."""
    if len(value) == 10:
        return f"{value}T00:00:00Z"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).isoformat()
    except ValueError:
        return value


def _provenance(conn: Connection, ds_ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for r in _sources_of(conn, ds_ids):
        source = {
            "@type": "sc:Organization" if r.provided_by else "sc:Thing",
            "name": r.provided_by or r.source,
        }
        out.append(
            {
                "@type": "prov:Entity",
                "@id": f"copytrail:dataset/{dataset_label(r.name, r.version)}",
                "name": dataset_label(r.name, r.version),
                "description": f"source {r.source} ({r.kind}); ledger event {r.event_seq}",
                "url": r.url,
                "license": r.license,
                "sourceOrganization": source,
                "dateCreated": r.acquired or r.created[:10],
            }
        )
    return [{k: v for k, v in d.items() if v is not None} for d in out]
