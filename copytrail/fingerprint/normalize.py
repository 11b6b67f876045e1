"""Normalised words: case, accents, punctuation, line wrapping and end-of-line hyphenation do not
change them, so editions, re-wraps and OCR-ish copies share words with the original.

`words` is the fast path for fingerprinting (C-level operations only). `tokens` gives the same
words with character offsets into the original text, for alignment and evidence spans.
"""

from __future__ import annotations

import re
import unicodedata

# "won-\n  derful" -> "wonderful": a hyphen at a line end joins the word parts.
_EOL_HYPHEN = re.compile(r"(?<=\w)-[ \t]*\r?\n[ \t]*(?=\w)")
_EOL_HYPHEN_B = re.compile(rb"(?<=[A-Za-z0-9])-[ \t]*\r?\n[ \t]*(?=[A-Za-z0-9])")
_NON_WORD = re.compile(r"[\W_]+")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# ASCII letters and digits stay (lower-cased), other ASCII bytes separate words, and bytes of
# multi-byte UTF-8 characters are kept for a second, per-word look.
_BYTE_TABLE = bytes(
    (c + 32 if 65 <= c <= 90 else c)
    if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 128)
    else 32
    for c in range(256)
)
_TOKEN = re.compile(r"[^\W_]+(?:-[ \t]*\r?\n[ \t]*[^\W_]+)*")


def _fold(s: str) -> str:
    """Lower-case and strip accents: 'Träume' -> 'traume', 'Œuvre' -> 'oeuvre'."""
    s = unicodedata.normalize("NFKD", s.casefold())
    return _COMBINING.sub("", s)


def words(text: str) -> list[bytes]:
    """Normalised words of `text` as UTF-8 bytes.

    Works on bytes at C speed; only words holding non-ASCII characters (accents, curly quotes,
    dashes) are decoded and folded one by one, which is a small share of most books.
    """
    b = text.encode("utf-8", errors="replace")
    if b"-\n" in b or b"-\r\n" in b or b"- \n" in b:
        b = _EOL_HYPHEN_B.sub(b"", b)
    parts = b.translate(_BYTE_TABLE).split()
    if text.isascii():
        return parts
    out: list[bytes] = []
    for p in parts:
        if p.isascii():
            out.append(p)
        else:
            out.extend(_NON_WORD.sub(" ", _fold(p.decode("utf-8", "replace"))).encode().split())
    return out


def tokens(text: str) -> tuple[list[str], list[int], list[int]]:
    """(normalised words, start offsets, end offsets) into `text`; same words as `words`."""
    out, starts, ends = [], [], []
    ascii_text = text.isascii()
    for m in _TOKEN.finditer(text):
        w = m.group()
        if "\n" in w:
            w = _EOL_HYPHEN.sub("", w)
        w = w.lower() if ascii_text else _NON_WORD.sub("", _fold(w))
        if not w:
            continue
        out.append(w)
        starts.append(m.start())
        ends.append(m.end())
    return out, starts, ends
