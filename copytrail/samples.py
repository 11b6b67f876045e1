"""Builders for small sample files in the formats books really arrive in (EPUB, PDF, JSON Lines,
Parquet, archives). The demo uses them to make its inputs from the shipped Gutenberg books, and the
tests use them to make real files of every format. Deterministic: same input, same bytes."""

from __future__ import annotations

import gzip
import hashlib
import html
import io
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import orjson

_FIXED_DATE = (2024, 1, 1, 0, 0, 0)


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes | str, stored: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def make_epub(
    title: str,
    authors: Sequence[str],
    chapters: Sequence[str],
    language: str = "en",
    isbn: str | None = None,
    encrypt_content: bool = False,
) -> bytes:
    """An EPUB 3 with one XHTML document per chapter (paragraphs split on blank lines)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _zip_write(zf, "mimetype", "application/epub+zip", stored=True)
        _zip_write(
            zf,
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        creators = "".join(f"<dc:creator>{html.escape(a)}</dc:creator>" for a in authors)
        ident = f'<dc:identifier id="isbn">urn:isbn:{isbn}</dc:identifier>' if isbn else ""
        items = "".join(
            f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
            for i in range(len(chapters))
        )
        uid = hashlib.sha256(title.encode()).hexdigest()[:12]
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
        _zip_write(
            zf,
            "OEBPS/content.opf",
            '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" '
            'version="3.0" unique-identifier="uid"><metadata '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:identifier id="uid">sample-{uid}</dc:identifier>'
            f"{ident}"
            f"<dc:title>{html.escape(title)}</dc:title>{creators}"
            f"<dc:language>{language}</dc:language></metadata><manifest>{items}</manifest>"
            f"<spine>{spine}</spine></package>",
        )
        for i, ch in enumerate(chapters):
            paras = "".join(
                f"<p>{html.escape(p.strip())}</p>" for p in ch.split("\n\n") if p.strip()
            )
            _zip_write(
                zf,
                f"OEBPS/text/ch{i}.xhtml",
                '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                f"<head><title>Chapter {i + 1}</title></head><body>{paras}</body></html>",
            )
        if encrypt_content:
            _zip_write(
                zf,
                "META-INF/encryption.xml",
                '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
                '<enc:CipherData><enc:CipherReference URI="OEBPS/text/ch0.xhtml"/></enc:CipherData>'
                "</enc:EncryptedData></encryption>",
            )
    return buf.getvalue()


def _pdf_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(
    pages: Sequence[Sequence[str]], title: str | None = None, author: str | None = None
) -> bytes:
    """A minimal valid PDF 1.4 with a Helvetica text layer: one list of lines per page."""
    objs: list[bytes] = []
    n_pages = len(pages)
    # 1 catalog, 2 pages, 3 font, then (page, content) pairs, then info.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n_pages))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objs.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for i, lines in enumerate(pages):
        content = (
            "BT /F1 11 Tf 14 TL 50 780 Td "
            + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines)
            + " ET"
        )
        body = content.encode("cp1252", errors="replace")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
    info = []
    if title:
        info.append(f"/Title ({_pdf_escape(title)})")
    if author:
        info.append(f"/Author ({_pdf_escape(author)})")
    objs.append(("<< " + " ".join(info) + " >>").encode())
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, o in enumerate(objs):
        offsets.append(out.tell())
        out.write(f"{i + 1} 0 obj\n".encode() + o + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info {len(objs)} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def wrap_lines(text: str, width: int = 90) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return lines


def make_jsonl(records: Sequence[dict], compress: str | None = None) -> bytes:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if compress == "gzip":
        return gzip.compress(data, mtime=0)
    if compress == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def make_parquet(records: Sequence[dict], row_group_size: int = 1000) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(list(records)), buf, row_group_size=row_group_size)
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            _zip_write(zf, name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1704067200
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gutenberg_body(text: str) -> str:
    """The book between Project Gutenberg's START and END markers (the whole text if absent)."""
    start = text.find("*** START OF")
    if start != -1:
        start = text.find("\n", start) + 1
    end = text.find("*** END OF")
    return text[max(start, 0) : end if end != -1 else len(text)].strip()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
