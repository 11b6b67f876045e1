"""Each reader on real files: the shared Gutenberg corpus (text, HTML, PDF) and EPUBs we build."""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrail import samples
from copytrail.ingest import formats
from copytrail.ingest.decode import decode_bytes
from copytrail.ingest.readers import Unreadable
from copytrail.ingest.readers.epub import read_epub
from copytrail.ingest.readers.html import read_html
from copytrail.ingest.readers.pdf import read_pdf
from copytrail.ingest.readers.text import read_text
from copytrail.ingest.textmeta import count_words, detect_language, header_fields, split_authors

from .conftest import EXAMPLES

ALICE_LINE = "Alice was beginning to get very tired of sitting by her sister"


def _norm(s: str) -> str:
    return " ".join(s.split())


# ---- text --------------------------------------------------------------------------------------
def test_utf8_text_with_bom_and_gutenberg_header(corpus: Path):
    ex = read_text((corpus / "11" / "11-0.txt").read_bytes())
    assert ALICE_LINE in _norm(ex.text)
    assert ex.replacements == 0 and ex.extra["encoding"] == "utf-8-sig"
    assert header_fields(ex.text)["title"] == "Alice’s Adventures in Wonderland"


def test_latin1_text_is_detected_not_mangled():
    ex = read_text((EXAMPLES / "22367" / "22367-8.txt").read_bytes())
    assert "Als Gregor Samsa eines Morgens aus unruhigen Träumen erwachte" in _norm(ex.text)
    assert ex.replacements == 0 and ex.extra["encoding"] in ("cp1252", "latin-1")
    assert detect_language(ex.text) == "de"


def test_invalid_utf8_is_replaced_and_counted():
    data = ("Ünïcödé text " * 50).encode() + b"\xff\xfe broken \xc3 end"
    d = decode_bytes(data)
    assert d.encoding == "utf-8" and d.replacements == 3
    # A U+FFFD already in valid input is not counted as a replacement.
    assert decode_bytes("ok \ufffd ok".encode()).replacements == 0


def test_utf16_with_bom():
    data = codecs.BOM_UTF16_LE + "Call me Ishmael.".encode("utf-16-le")
    ex = read_text(data)
    assert ex.text == "Call me Ishmael." and ex.replacements == 0


def test_binary_is_unreadable():
    with pytest.raises(Unreadable, match="binary"):
        read_text(bytes(range(256)) * 10)


# ---- HTML --------------------------------------------------------------------------------------
def test_gutenberg_html_text_and_title(corpus: Path):
    ex = read_html((corpus / "11" / "11-h.htm").read_bytes())
    assert ALICE_LINE in _norm(ex.text)
    assert "Alice" in ex.title
    assert "<p" not in ex.text and "{" not in ex.text[:2000]  # no markup, no CSS
    # Block boundaries become line breaks; words are not glued together.
    assert "CHAPTER I." in ex.text and "Down the Rabbit-Hole" in ex.text


def test_html_meta_fields_and_declared_charset():
    html = (
        '<html lang="fr"><head><meta charset="iso-8859-1"><title>T</title>'
        '<meta name="author" content="Victor Hugo"><meta name="dc.title" content="Les Misérables">'
        '<meta name="citation_isbn" content="978-2-07-040850-4"><style>p{x}</style></head>'
        "<body><h1>Tome I</h1><p>Première partie</p><script>evil()</script></body></html>"
    ).encode("latin-1")
    ex = read_html(html)
    assert ex.title == "Les Misérables" and ex.authors == ["Victor Hugo"]
    assert ex.isbns == ["978-2-07-040850-4"] and ex.language == "fr"
    assert "Première partie" in ex.text and "evil" not in ex.text and "p{x}" not in ex.text
    assert "Tome I\n" in ex.text or "Tome I\nPremière" in ex.text.replace("\n\n", "\n")


# ---- PDF ---------------------------------------------------------------------------------------
def test_gutenberg_pdf(corpus: Path):
    ex = read_pdf((corpus / "11" / "11-pdf.pdf").read_bytes())
    assert ex.extra["pages"] > 10
    assert "Alice was beginning to get very tired" in _norm(ex.text)
    assert ex.title and "Alice" in ex.title


def test_generated_pdf_and_damage():
    pdf = samples.make_pdf(
        [["Hello from page one"], ["And page two (with parens)"]],
        title="Two Pages",
        author="A. Writer",
    )
    ex = read_pdf(pdf)
    assert ex.title == "Two Pages" and ex.authors == ["A. Writer"] and ex.extra["pages"] == 2
    assert "page one" in ex.text and "(with parens)" in ex.text
    with pytest.raises(Unreadable, match="PDF"):
        read_pdf(pdf[: len(pdf) // 2])
    with pytest.raises(Unreadable):
        read_pdf(b"%PDF-1.4 nothing else")


# ---- EPUB --------------------------------------------------------------------------------------
def _metamorphosis() -> str:
    return samples.gutenberg_body((EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8"))


def test_epub_text_in_spine_order_and_opf_metadata():
    body = _metamorphosis()
    chapters = body.split("\nII\n", 1)
    epub = samples.make_epub(
        "Metamorphosis",
        ["Franz Kafka", "David Wyllie"],
        chapters,
        language="en",
        isbn="0-553-21369-5",
    )
    ex = read_epub(epub)
    assert ex.title == "Metamorphosis" and ex.authors == ["Franz Kafka", "David Wyllie"]
    assert ex.language == "en" and any("0-553-21369-5" in i for i in ex.isbns)
    text = _norm(ex.text)
    first = text.find("One morning, when Gregor Samsa woke")
    second = text.find(_norm(chapters[1])[:60])
    assert 0 <= first < second
    assert len(text.split()) == pytest.approx(len(body.split()), rel=0.01)


def test_epub_drm_and_corruption_are_unreadable():
    with pytest.raises(Unreadable, match="encrypted"):
        read_epub(samples.make_epub("x", ["y"], ["z"], encrypt_content=True))
    epub = samples.make_epub("x", ["y"], ["z"])
    with pytest.raises(Unreadable, match="corrupt|zip"):
        read_epub(epub[: len(epub) // 2])
    no_container = samples.make_zip({"mimetype": b"application/epub+zip", "a.xhtml": b"<p>x</p>"})
    with pytest.raises(Unreadable, match="container"):
        read_epub(no_container)


def test_epub_font_obfuscation_is_not_drm():
    epub = samples.make_epub("x", ["y"], ["words here"])
    import io

    buf = io.BytesIO(epub)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(
            "META-INF/encryption.xml",
            '<encryption xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>'
            '<enc:CipherData><enc:CipherReference URI="OEBPS/font.otf"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>",
        )
    assert "words here" in read_epub(buf.getvalue()).text


# ---- detection and text metadata ---------------------------------------------------------------
def test_magic_beats_a_wrong_name():
    pdf = samples.make_pdf([["x"]])
    assert formats.detect("book.txt", pdf[:1024]) == formats.PDF
    epub = samples.make_epub("t", ["a"], ["b"])
    assert formats.detect("book.zip", epub[:1024]) == formats.EPUB
    assert formats.detect("data.jsonl.gz", b"\x1f\x8b\x08") == formats.JSONL
    assert formats.detect("page.bin", b"<!DOCTYPE html><html><body>") == formats.HTML
    assert formats.detect("x.unknown", b"plain words") == formats.UNKNOWN


def test_word_count_matches_split_on_ascii_whitespace():
    for s in ["", " ", "one", " two  words ", "a\tb\nc\r\nd", "ünïcode wörds  here"]:
        assert count_words(s.encode()) == len(s.split())


def test_split_authors():
    assert split_authors("Jane Austen; Charlotte Brontë") == ["Jane Austen", "Charlotte Brontë"]
    assert split_authors(["Austen, Jane", "A and B"]) == ["Austen, Jane", "A", "B"]
    assert split_authors(None) == []


def _header_fields_by_lines(text: str) -> dict[str, str]:
    """The reference: every one of the first lines tried against the field pattern."""
    from copytrail.ingest import textmeta

    head = "\n".join(text[:20_000].splitlines()[: textmeta._HEADER_LINES])
    out: dict[str, str] = {}
    for m in textmeta._FIELD.finditer(head):
        key = m.group(1).lower()
        out.setdefault("author" if key == "authors" else key, m.group(2))
    return out


_FIELDISH = st.lists(
    st.one_of(
        st.sampled_from(["Title", "AUTHOR", "authors", "Language", "translator", "Titles", "x"]),
        st.sampled_from([":", " :", "\t:", " ", ": ", "::", "\n", "\r\n", "\u2028", " \t "]),
        st.text(max_size=12),
    ),
    max_size=30,
).map("".join)


@given(_FIELDISH)
@settings(max_examples=400, deadline=None)
def test_header_fields_skip_only_texts_without_a_field_line(text: str):
    """The quick test that skips most texts (a field name, blanks, a colon) never skips a text
    whose lines hold a field."""
    assert header_fields(text) == _header_fields_by_lines(text)
