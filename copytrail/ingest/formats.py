"""What a file is: by its name first, then by its first bytes (mislabelled files are common)."""

from __future__ import annotations

TEXT, MARKDOWN, HTML, EPUB, PDF = "text", "markdown", "html", "epub", "pdf"
JSONL, PARQUET, ARROW, ZIP, TAR = "jsonl", "parquet", "arrow", "zip", "tar"
UNKNOWN = "unknown"

CONTAINERS = (JSONL, PARQUET, ARROW, ZIP, TAR)

MEDIA_TYPES = {
    TEXT: "text/plain",
    MARKDOWN: "text/markdown",
    HTML: "text/html",
    EPUB: "application/epub+zip",
    PDF: "application/pdf",
    JSONL: "application/jsonl",
    PARQUET: "application/vnd.apache.parquet",
    ARROW: "application/vnd.apache.arrow.stream",  # Hugging Face datasets' save_to_disk files
    ZIP: "application/zip",
    TAR: "application/x-tar",
    UNKNOWN: "application/octet-stream",
}

_SUFFIXES = [
    (
        (
            ".jsonl",
            ".ndjson",
            ".jsonl.gz",
            ".ndjson.gz",
            ".jsonl.zst",
            ".jsonl.zstd",
            ".json.gz",
            ".json.zst",
        ),
        JSONL,
    ),
    ((".parquet",), PARQUET),
    ((".arrow",), ARROW),
    ((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst"), TAR),
    ((".zip",), ZIP),
    ((".epub",), EPUB),
    ((".pdf",), PDF),
    ((".htm", ".html", ".xhtml", ".xht"), HTML),
    ((".md", ".markdown"), MARKDOWN),
    ((".txt", ".text", ".rst", ".csv", ".tsv", ".json", ".yaml", ".yml", ".xml", ".tex"), TEXT),
]


def kind_from_name(name: str) -> str:
    low = name.lower()
    for suffixes, kind in _SUFFIXES:
        if low.endswith(suffixes):
            return kind
    return UNKNOWN


def kind_from_magic(head: bytes) -> str:
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return EPUB if head[30:58] == b"mimetypeapplication/epub+zip" else ZIP
    if head.startswith(b"PAR1"):
        return PARQUET
    if head.startswith(b"ARROW1"):
        return ARROW
    if len(head) > 262 and head[257:262] == b"ustar":
        return TAR
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml")) and b"<html" in head.lower():
        return HTML
    return UNKNOWN


def detect(name: str, head: bytes) -> str:
    """Kind of a document. Magic bytes override the name when they are unambiguous."""
    by_magic = kind_from_magic(head)
    by_name = kind_from_name(name)
    if by_magic != UNKNOWN and not (by_magic == ZIP and by_name == EPUB):
        # A .txt that is really a PDF is a PDF; an .epub without the mimetype first is still EPUB.
        return by_magic
    # Compressed JSON Lines and tar: the gzip/zstd/bz2 magic says nothing more than the name.
    return by_name
