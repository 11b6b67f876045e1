"""Normalised words: case, accents, punctuation, line wrapping and end-of-line hyphenation do not
change them, so editions, re-wraps and OCR-ish copies share words with the original.

`words` is the fast path for fingerprinting (C-level operations only). `tokens` gives the same
words with character offsets into the original text, for alignment and evidence spans.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

# "won-\n  derful" -> "wonderful": a hyphen at a line end joins the word parts.
_EOL_HYPHEN = re.compile(r"(?<=\w)-[ \t]*\r?\n[ \t]*(?=\w)")
_EOL_HYPHEN_B = re.compile(rb"(?<=[A-Za-z0-9\x80-\xff])-[ \t]*\r?\n[ \t]*(?=[A-Za-z0-9\x80-\xff])")
_MAYBE_EOL_HYPHEN = re.compile(rb"-[ \t]*\r?\n")  # cheap test before the exact substitution
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
_BYTE_TABLE_ARRAY = np.frombuffer(_BYTE_TABLE, np.uint8)
_IDENTITY_ARRAY = np.arange(256, dtype=np.uint8)
_TOKEN = re.compile(r"[^\W_]+(?:-[ \t]*\r?\n[ \t]*[^\W_]+)*")


# Letters NFKD does not decompose but that old editions and OCR spell out.
_LIGATURES = str.maketrans(
    {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th"}
)


def _fold(s: str) -> str:
    """Lower-case and strip accents: 'Träume' -> 'traume', 'Œuvre' -> 'oeuvre'."""
    s = unicodedata.normalize("NFKD", s.casefold()).translate(_LIGATURES)
    return _COMBINING.sub("", s)


_FOLDED: dict[bytes, list[bytes]] = {}  # runs seen before, shared by every text a process reads


def _folded_parts(part: bytes) -> list[bytes]:
    """Words inside one space-free run that holds non-ASCII bytes (accents, curly quotes)."""
    got = _FOLDED.get(part)
    if got is None:
        if len(_FOLDED) > 1_000_000:
            _FOLDED.clear()
        folded = _fold(part.decode("utf-8", "replace"))
        got = _FOLDED[part] = _NON_WORD.sub(" ", folded).encode().split()
    return got


def words(text: str) -> list[bytes]:
    """Normalised words of `text` as UTF-8 bytes.

    Works on bytes at C speed; only runs holding non-ASCII characters (accents, curly quotes,
    dashes) are decoded and folded, once per distinct run, which is a small share of most books.
    """
    b = text.encode("utf-8", errors="replace")
    if _MAYBE_EOL_HYPHEN.search(b):
        b = _EOL_HYPHEN_B.sub(b"", b)
    parts = b.translate(_BYTE_TABLE).split()
    if text.isascii():
        return parts
    arr = np.frombuffer(b, dtype=np.uint8)
    flags = _IS_WORD_BYTE[arr].astype(bool)
    starts = np.flatnonzero(np.diff(np.concatenate(([False], flags)).astype(np.int8)) == 1)
    if len(starts) == 0:
        return []
    high = np.flatnonzero(np.add.reduceat((arr >= 0x80).astype(np.int32), starts) > 0)
    out: list[bytes] = []
    prev = 0
    for i in high.tolist():
        out.extend(parts[prev:i])
        out.extend(_folded_parts(parts[i]))
        prev = i + 1
    out.extend(parts[prev:])
    return out


def joined_words(text: str | bytes) -> bytes:
    """`b" ".join(words(text))`, what fingerprints hash, made without a list of words: one
    compiled pass maps and collapses the bytes, then only the runs still holding non-ASCII
    bytes are folded (once per distinct run, as in `words`) and spliced in. `text` may be the
    stored UTF-8 bytes of a text (invalid bytes read as U+FFFD, as `str` would give them)."""
    from copytrail.fingerprint import kernels  # numba loads when fingerprinting starts

    if isinstance(text, str):
        b = text.encode("utf-8", errors="replace")
    elif text.isascii():
        b = text
    else:
        try:
            text.decode("utf-8")
            b = text
        except UnicodeDecodeError:
            b = text.decode("utf-8", errors="replace").encode("utf-8", errors="replace")
    buf = kernels.translate_collapse(np.frombuffer(b, np.uint8), _BYTE_TABLE_ARRAY, True)
    data = buf.tobytes()
    if data.isascii():
        return data
    starts, ends = kernels.high_runs(buf)
    folded = _FOLDED_JOINED
    if len(folded) > 1_000_000:
        folded.clear()
    pieces = []
    prev = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        pieces.append(data[prev:s])
        run = data[s:e]
        got = folded.get(run)
        if got is None:
            got = folded[run] = b" ".join(_folded_parts(run))
        pieces.append(got)
        prev = e
    pieces.append(data[prev:])
    # A run that folds to no word leaves two spaces (or one at an end): collapse again.
    spliced = np.frombuffer(b"".join(pieces), np.uint8)
    return kernels.translate_collapse(spliced, _IDENTITY_ARRAY, False).tobytes()


_FOLDED_JOINED: dict[bytes, bytes] = {}


def tokens(text: str) -> tuple[list[str], list[int], list[int]]:
    """(normalised words, start offsets, end offsets) into `text`; same words as `words`."""
    ws, starts, ends = token_spans(text)
    return [w.decode("utf-8") for w in ws], starts.tolist(), ends.tolist()


def token_spans(text: str) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Normalised words (UTF-8, as `words` gives them) with character offsets into `text`."""
    try:
        b = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: byte and character offsets cannot be mapped
        ws, st, en = _regex_tokens(text)
        return (
            [w.encode("utf-8", "replace") for w in ws],
            np.array(st, np.int64),
            np.array(en, np.int64),
        )
    return _fast_tokens(text, b)


def _regex_tokens(text: str) -> tuple[list[str], list[int], list[int]]:
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


_IS_WORD_BYTE = np.frombuffer(bytes(1 if b != 32 else 0 for b in _BYTE_TABLE), dtype=np.uint8)


def _fast_tokens(text: str, b: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Runs of word bytes are found with numpy on the UTF-8 bytes and mapped to character
    offsets; only the few runs holding non-ASCII bytes are looked into one by one."""
    joined = b
    hyphens = list(_EOL_HYPHEN_B.finditer(b)) if _MAYBE_EOL_HYPHEN.search(b) else []
    if hyphens:
        joined = _EOL_HYPHEN_B.sub(b"", b)
    arr = np.frombuffer(joined, dtype=np.uint8)
    flags = _IS_WORD_BYTE[arr].astype(bool)
    empty = np.zeros(0, np.int64)
    if not flags.any():
        return [], empty, empty
    edges = np.diff(np.concatenate(([False], flags, [False])).astype(np.int8))
    jstarts = np.flatnonzero(edges == 1)
    jends = np.flatnonzero(edges == -1)
    parts = joined.translate(_BYTE_TABLE).split()
    high = np.flatnonzero(np.add.reduceat((arr >= 0x80).astype(np.int32), jstarts) > 0)
    bstarts, bends = jstarts, jends
    if hyphens:
        # Map offsets in the joined bytes back to the original: add the removed "-\n" lengths
        # of every join before the position (a join never sits at a word boundary).
        lengths = np.array([m.end() - m.start() for m in hyphens])
        removed_before = np.concatenate(([0], np.cumsum(lengths)))
        new_pos = np.array([m.start() for m in hyphens]) - removed_before[:-1]
        bstarts = bstarts + removed_before[np.searchsorted(new_pos, bstarts, side="right")]
        bends = bends + removed_before[np.searchsorted(new_pos, bends - 1, side="right")]
    if text.isascii():  # byte offsets are character offsets
        return parts, bstarts, bends
    orig = np.frombuffer(b, dtype=np.uint8)
    char_at = np.append(np.cumsum((orig & 0xC0) != 0x80) - 1, len(text))
    cstarts = char_at[bstarts]
    cends = char_at[bends - 1] + 1
    if len(high) == 0:
        return parts, cstarts, cends
    # Splice the folded sub-words of the non-ASCII runs into the plain ones.
    out_w: list[bytes] = []
    out_s: list[np.ndarray] = []
    out_e: list[np.ndarray] = []
    prev = 0
    for i in high.tolist():
        out_w.extend(parts[prev:i])
        out_s.append(cstarts[prev:i])
        out_e.append(cends[prev:i])
        sub_w, sub_s, sub_e = [], [], []
        for m in _TOKEN.finditer(text, int(cstarts[i]), int(cends[i])):
            w = _NON_WORD.sub("", _fold(m.group()))
            if w:
                sub_w.append(w.encode())
                sub_s.append(m.start())
                sub_e.append(m.end())
        out_w.extend(sub_w)
        out_s.append(np.array(sub_s, np.int64))
        out_e.append(np.array(sub_e, np.int64))
        prev = i + 1
    out_w.extend(parts[prev:])
    out_s.append(cstarts[prev:])
    out_e.append(cends[prev:])
    return out_w, np.concatenate(out_s), np.concatenate(out_e)
