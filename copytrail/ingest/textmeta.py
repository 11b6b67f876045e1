"""Metadata read from extracted text: word count, language, ISBNs, and title/author header lines."""

from __future__ import annotations

import re

import numpy as np

from copytrail.ingest.isbn import find_isbns

# ISBNs sit on the title and copyright pages (front) and sometimes on the back cover.
ISBN_HEAD_CHARS = 40_000
ISBN_TAIL_CHARS = 8_000
LANG_SAMPLE_CHARS = 1_000
_HEADER_LINES = 120
_LETTER_RUNS = re.compile(r"[^\W\d_]+")  # removing them leaves everything but letters

_FIELD_NAMES = (b"title", b"author", b"authors", b"language", b"translator")  # as in _FIELD
_FIELD = re.compile(
    r"^[ \t]*(Title|Author|Authors|Language|Translator)[ \t]*:[ \t]*(\S.*?)[ \t]*\r?$", re.M | re.I
)


def count_words(text_utf8: bytes) -> int:
    """Whitespace-separated words, counted on UTF-8 bytes at C speed.

    Bytes <= 0x20 (ASCII space, tabs, newlines, controls) separate words; Unicode spaces do not.
    """
    if not text_utf8:
        return 0
    a = np.frombuffer(text_utf8, dtype=np.uint8)
    ws = a <= 32
    return int(np.count_nonzero(ws[:-1] & ~ws[1:])) + (0 if ws[0] else 1)


# The commonest English function words: in English prose they are about two words in five, in
# any other language a few in a hundred (Dutch "in", "was"; French and Spanish "a", "on").
_ENGLISH_FUNCTION_WORDS = frozenset(
    {
        "the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "with",
        "as", "his", "he", "be", "by", "at", "i", "you", "had", "not", "but", "from", "this",
        "her", "which", "she", "or", "have", "are", "an", "they", "were", "all", "their", "we",
        "my", "me", "him", "would", "there", "been", "one", "so", "if", "what", "when", "who",
        "will", "no", "do", "said",
    }
)
_LATIN_WORD = re.compile(r"[a-z']+")
_ENGLISH_SAMPLE_CHARS = 500
_ENGLISH_SHARE = 0.2


def _plainly_english(sample: str) -> bool:
    """English recognised by its function words, at a hundredth of the n-gram model's cost
    (ingest of web records spends most of its time here otherwise). Anything less clear-cut is
    left to the model."""
    sample = sample[:_ENGLISH_SAMPLE_CHARS]
    found = _LATIN_WORD.findall(sample.lower())
    if len(found) < 40:
        return False
    hits = sum(map(_ENGLISH_FUNCTION_WORDS.__contains__, found))
    return hits >= _ENGLISH_SHARE * len(found) and len(" ".join(found)) > 0.6 * len(sample)


def detect_language(text: str) -> str | None:
    """ISO 639-1 code from a sample taken past the front matter; None for too little text."""
    n = len(text)
    if n < 200:
        return None
    start = min(n // 3, 20_000) if n > 3 * LANG_SAMPLE_CHARS else 0
    sample = text[start : start + LANG_SAMPLE_CHARS]
    if _plainly_english(sample):
        return "en"
    if len(sample) - len(_LETTER_RUNS.sub("", sample)) < 100:
        return None
    import py3langid  # loaded on first use: its model costs ~0.2 s to load

    lang, _score = py3langid.classify(sample)
    return lang


def isbns_in_text(text: str) -> list[str]:
    if len(text) <= ISBN_HEAD_CHARS + ISBN_TAIL_CHARS:
        return find_isbns(text)
    found = find_isbns(text[:ISBN_HEAD_CHARS])
    found += [i for i in find_isbns(text[-ISBN_TAIL_CHARS:]) if i not in found]
    return found


def _field_hint(low: bytes) -> bool:
    """Whether a colon anywhere in `low` follows a field name and blanks, as on every field
    line. Only the colons are visited (a few in most texts, found at C speed); a regular
    expression trying the names at every position was three times slower, and searching for
    each name took five passes. Texts that merely use the words, a fifth of web records, stop
    here instead of being split into lines."""
    at = low.find(b":")
    while at >= 0:
        end = at
        while end and low[end - 1] in (32, 9):  # blanks between the name and its colon
            end -= 1
        if low[max(0, end - 10) : end].endswith(_FIELD_NAMES):
            return True
        at = low.find(b":", at + 1)
    return False


def header_fields(text: str) -> dict[str, str]:
    """`Title:` / `Author:` lines near the top (Project Gutenberg and many e-text headers)."""
    low = text[:20_000].encode("utf-8", "surrogatepass").lower()  # ASCII-only: fast
    if not _field_hint(low):
        return {}
    head = "\n".join(text[:20_000].splitlines()[:_HEADER_LINES])
    out: dict[str, str] = {}
    for m in _FIELD.finditer(head):
        key = m.group(1).lower()
        key = "author" if key == "authors" else key
        out.setdefault(key, m.group(2))
    return out


_AUTHOR_SEPARATORS = re.compile(r"\s*;\s*|\s+and\s+|\s*&\s*")


def split_authors(value: str | list | None) -> list[str]:
    """'A and B', 'A; B', ['A', 'B'] -> ['A', 'B']."""
    if not value:
        return []
    values = value if isinstance(value, list | tuple) else [value]
    parts = [p for v in values for p in _AUTHOR_SEPARATORS.split(str(v))]
    return [p.strip() for p in parts if p and p.strip()]
