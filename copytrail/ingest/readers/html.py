"""HTML and XHTML: visible text with block boundaries kept as line breaks, plus <title> and
<meta> fields (Dublin Core names as Project Gutenberg and many publishers write them)."""

from __future__ import annotations

import re

from copytrail.ingest.decode import decode_bytes
from copytrail.ingest.readers import Extraction, Refused, Unreadable

DEFAULT_MAX_DEPTH = 1024
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*?(/?)>")
# Elements that never hold children, and those a parser closes itself when a sibling of the same
# kind opens (<p>, <li>, <td>, ...): neither deepens the tree however many stay unclosed. A
# <table> does: an unclosed one nests the next inside it.
_NO_DEPTH = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "tfoot",
        "option",
        "optgroup",
        "colgroup",
        "rb",
        "rt",
        "rp",
        "html",
        "head",
        "body",
    ]
)

_BLOCKS = (
    "p,div,h1,h2,h3,h4,h5,h6,br,li,tr,td,th,pre,blockquote,hr,table,section,article,"
    "header,footer,dd,dt,figcaption"
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_META_NAMES = {
    "title": ("dc.title", "dcterms.title", "citation_title", "og:title"),
    "author": ("author", "dc.creator", "dcterms.creator", "citation_author"),
    "language": ("dc.language", "dcterms.language", "language"),
    "isbn": ("isbn", "citation_isbn", "dc.identifier", "book:isbn"),
}


def decode_html(data: bytes) -> tuple[str, str, int]:
    m = _META_CHARSET.search(data[:4096])
    declared = m.group(1).decode("ascii", "replace") if m else None
    d = decode_bytes(data, declared)
    return d.text, d.encoding, d.replacements


def nesting_depth(markup: str, limit: int) -> int:
    """How deep the markup nests elements, scanned in linear time without building a tree;
    stops counting past `limit`."""
    depth = deepest = 0
    for m in _TAG.finditer(markup):
        closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
        if name in _NO_DEPTH or self_closing:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
    return deepest


def html_to_text(
    markup: str, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[str, dict[str, list[str]], str | None]:
    """(text, meta fields, <html lang>) of an HTML document. Markup nested deeper than
    `max_depth` is refused before parsing: parse time grows superlinearly with depth."""
    from selectolax.lexbor import LexborHTMLParser

    depth = nesting_depth(markup, max_depth)
    if depth > max_depth:
        raise Refused(
            f"HTML nests elements more than {max_depth} deep (raise --max-html-depth); "
            "parsing it would take unbounded time and memory"
        )

    tree = LexborHTMLParser(markup)
    meta: dict[str, list[str]] = {}
    for node in tree.css("meta"):
        attrs = node.attributes
        name = (attrs.get("name") or attrs.get("property") or "").strip().lower()
        content = (attrs.get("content") or "").strip()
        if name and content:
            meta.setdefault(name, []).append(content)
    title_node = tree.css_first("title")
    if title_node is not None:
        t = " ".join(title_node.text().split())
        if t:
            meta.setdefault("html:title", []).append(t)
    root = tree.css_first("html")
    lang = (root.attributes.get("lang") or root.attributes.get("xml:lang")) if root else None
    tree.strip_tags(["script", "style", "noscript", "template", "head"])
    for node in tree.css(_BLOCKS):
        node.insert_before("\n")
    body = tree.body or tree.root
    text = body.text(separator="") if body is not None else ""
    return text, meta, lang


def _first(meta: dict[str, list[str]], names: tuple[str, ...]) -> list[str]:
    for n in names:
        if n in meta:
            return meta[n]
    return []


def read_html(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Extraction:
    markup, encoding, replacements = decode_html(data)
    if "<" not in markup[:65536]:
        raise Unreadable("no HTML markup found in the first 64 KiB")
    text, meta, lang = html_to_text(markup, max_depth)
    titles = _first(meta, _META_NAMES["title"]) or meta.get("html:title", [])
    langs = _first(meta, _META_NAMES["language"])
    return Extraction(
        text=text,
        media_type="text/html",
        title=titles[0] if titles else None,
        authors=_first(meta, _META_NAMES["author"]),
        isbns=_first(meta, _META_NAMES["isbn"]),
        language=(langs[0] if langs else lang) or None,
        replacements=replacements,
        extra={"encoding": encoding},
    )
