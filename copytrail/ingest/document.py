"""One document's bytes in, one copy record out: store the original and the text, read metadata.

This runs in worker processes. It writes blobs (content-addressed, so safe in parallel) and returns
a small dict the main process records in the ledger. Blobs are always written before the ledger
row that names them is committed, so a kill at any moment leaves no row pointing at a missing blob.
"""

from __future__ import annotations

import hashlib
from typing import Any

from copytrail.ingest import formats
from copytrail.ingest.isbn import normalize_isbn
from copytrail.ingest.limits import Limits
from copytrail.ingest.readers import Extraction, Refused, Unreadable
from copytrail.ingest.textmeta import (
    count_words,
    detect_language,
    header_fields,
    isbns_in_text,
    split_authors,
)
from copytrail.store import derive
from copytrail.store.blobs import BlobStore

CopyRecord = dict[str, Any]


def _reader(kind: str, limits: Limits):  # type: ignore[no-untyped-def]
    # Imported lazily so a worker only loads the parsers it needs.
    if kind in (formats.TEXT, formats.MARKDOWN, formats.UNKNOWN):
        from copytrail.ingest.readers.text import read_text

        return lambda data: read_text(data, formats.MEDIA_TYPES[kind])
    if kind == formats.HTML:
        from copytrail.ingest.readers.html import read_html

        return lambda data: read_html(data, limits.max_html_depth)
    if kind == formats.EPUB:
        from copytrail.ingest.readers.epub import read_epub

        return lambda data: read_epub(data, limits)
    if kind == formats.PDF:
        from copytrail.ingest.readers.pdf import read_pdf

        return read_pdf
    raise ValueError(f"no document reader for {kind}")


def refused_record(path: str, size: int, media_type: str, reason: str, **extra: Any) -> CopyRecord:
    """An item refused before its bytes were read: it has no hash and no blob."""
    return {
        "path": path,
        "sha256": None,
        "size": size,
        "media_type": media_type,
        "status": "refused",
        "reason": reason,
        "extra": extra,
    }


def unreadable_record(
    store: BlobStore, path: str, data: bytes, media_type: str, reason: str, **extra: Any
) -> CopyRecord:
    sha, _ = store.put(data)
    return {
        "path": path,
        "sha256": sha,
        "size": len(data),
        "media_type": media_type,
        "status": "unreadable",
        "reason": reason,
        "extra": extra,
    }


def finish_record(
    store: BlobStore,
    path: str,
    original: bytes,
    original_sha: str,
    ex: Extraction,
    extra: dict[str, Any],
    text_field: str | None = None,
) -> CopyRecord:
    """Store the text, derive metadata, and build the record for a readable document.
    `text_field`: the text is that field of the JSON original, so the store may keep only the
    recipe instead of the bytes."""
    text_bytes = derive.text_bytes(ex.text)  # lone surrogates from JSON input become U+FFFD
    if text_bytes == original:  # plain UTF-8 text: the text blob *is* the original blob
        text_sha = original_sha
    else:
        text_sha = hashlib.sha256(text_bytes).hexdigest()
        if text_field is None or not store.put_derived(text_sha, original_sha, text_field):
            store.put(text_bytes, text_sha)
    header = header_fields(ex.text) if not ex.title or not ex.authors else {}
    title = ex.title or header.get("title")
    authors = split_authors(ex.authors) if ex.authors else split_authors(header.get("author"))
    isbns: list[tuple[str, str]] = []
    for raw in ex.isbns:
        n = normalize_isbn(str(raw))
        if n and all(n != i for i, _ in isbns):
            isbns.append((n, "metadata"))
    for n in isbns_in_text(ex.text):
        if all(n != i for i, _ in isbns):
            isbns.append((n, "text"))
    language = ex.language or header.get("language") or detect_language(ex.text)
    return {
        "path": path,
        "sha256": original_sha,
        "size": len(original),
        "media_type": ex.media_type,
        "status": "ok",
        "reason": None,
        "text_sha256": text_sha,
        "text_size": len(text_bytes),
        "title": title,
        "authors": authors,
        "isbns": isbns,
        "language": _short_language(language),
        "words": count_words(text_bytes),
        "replacements": ex.replacements,
        "extra": {**ex.extra, **extra},
    }


def _short_language(value: str | None) -> str | None:
    """'en-US' / 'EN' / 'English' -> 'en' where obvious; keep the value otherwise."""
    if not value:
        return None
    v = value.strip().replace("_", "-")
    names = {"english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it"}
    if v.lower() in names:
        return names[v.lower()]
    return v.split("-", 1)[0].lower()[:16]


def process_document(
    store: BlobStore,
    path: str,
    data: bytes,
    kind: str | None = None,
    limits: Limits | None = None,
    **extra: Any,
) -> CopyRecord:
    """Record one document. Never raises for bad input: a failure is an `unreadable` record,
    a limit that fired a `refused` one (the bytes are kept either way)."""
    kind = kind or formats.detect(path, data[:1024])
    media_type = formats.MEDIA_TYPES.get(kind, "application/octet-stream")
    if not data:
        return unreadable_record(store, path, data, media_type, "empty file", **extra)
    sha, _ = store.put(data)
    try:
        ex = _reader(kind, limits or Limits())(data)
    except Refused as e:
        return {
            **unreadable_record(store, path, data, media_type, str(e), **extra),
            "status": "refused",
        }
    except Unreadable as e:
        return unreadable_record(store, path, data, media_type, str(e), **extra)
    except RecursionError:
        return unreadable_record(
            store, path, data, media_type, "document nests too deeply", **extra
        )
    except Exception as e:  # a reader bug or an exotic file must not stop a million-file ingest
        reason = f"reader failed: {type(e).__name__}: {e}"[:500]
        return unreadable_record(store, path, data, media_type, reason, **extra)
    return finish_record(store, path, data, sha, ex, extra)


def process_record(
    store: BlobStore,
    path: str,
    record: Any,
    text_field: str,
    original: bytes | None = None,
    text_derivable: bool = False,
    **extra: Any,
) -> CopyRecord:
    """One JSON Lines / Parquet record; a field is the text. The original is the record's own
    bytes when it has them (a JSON Lines line), else its canonical JSON (a Parquet row).
    `text_derivable`: the record was parsed from `original` by `derive.parse_record`, so the
    text is recoverable from the original and need not be stored twice."""
    from copytrail.canonical import canonical_json

    if original is None:
        original = canonical_json(record)
    sha = hashlib.sha256(original).hexdigest()
    store.put(original, sha)
    media_type = "application/json"
    if not isinstance(record, dict):
        return unreadable_record(
            store,
            path,
            original,
            media_type,
            f"record is a JSON {type(record).__name__}, not an object",
            **extra,
        )
    text = derive.field_value(record, text_field)
    if not isinstance(text, str):
        found = "missing" if text is None else f"a {type(text).__name__}, not a string"
        return unreadable_record(
            store,
            path,
            original,
            media_type,
            f"text field {text_field!r} is {found} (choose another with --text-field)",
            **extra,
        )
    meta = {k: v for k, v in record.items() if k != text_field}
    for nested in ("meta", "metadata"):
        if isinstance(record.get(nested), dict):
            meta = {**record[nested], **meta}
    isbn_values = _list(
        _first_of(meta, ("isbn", "isbns", "isbn13", "isbn_13", "isbn10", "isbn_10"))
    )
    ex = Extraction(
        text=text,
        media_type=media_type,
        title=_str(_first_of(meta, ("title", "book_title", "name"))),
        authors=_list(_first_of(meta, ("authors", "author", "creator", "creators"))),
        isbns=[str(i) for i in isbn_values],
        language=_str(_first_of(meta, ("language", "lang", "languages"))),
    )
    rec_id = _first_of(record, ("id", "_id", "doc_id", "document_id"))
    if rec_id is not None:
        extra = {**extra, "record_id": str(rec_id)}
    asin = _first_of(meta, ("asin", "ASIN"))
    if isinstance(asin, str) and asin.strip():
        extra = {**extra, "asin": asin.strip().upper()}
    return finish_record(
        store, path, original, sha, ex, extra, text_field if text_derivable else None
    )


def _first_of(d: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if d.get(k) not in (None, "", []):
            return d[k]
    return None


def _str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, list):
        return str(v[0]) if v else None
    return str(v)


def _list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, list | tuple):
        return [x for x in v if x not in (None, "")]
    if isinstance(v, str) and ";" in v:
        return [s.strip() for s in v.split(";") if s.strip()]
    return [v]
