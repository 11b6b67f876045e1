"""Title and author similarity (rapidfuzz), robust to 'Austen, Jane' vs 'Jane Austen', subtitles,
case and punctuation. Blocking on rare title words keeps it linear: no work meets every copy."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from rapidfuzz import fuzz

TITLE_MIN = 90.0
AUTHOR_MIN = 85.0
_STOP = {
    "the",
    "a",
    "an",
    "of",
    "and",
    "in",
    "on",
    "to",
    "by",
    "for",
    "with",
    "de",
    "la",
    "le",
    "el",
    "der",
    "die",
    "das",
    "und",
    "ebook",
    "project",
    "gutenberg",
    "edition",
    "vol",
    "volume",
    "book",
    "novel",
    "complete",
}
_NON_WORD = re.compile(r"[\W_]+")


def norm(s: str | None) -> str:
    if not s:
        return ""
    s = unicodedata.normalize("NFKD", s.casefold().replace("&", " and "))
    s = "".join(c for c in s if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", s).split())


def title_variants(title: str | None) -> list[str]:
    """The full title, and the main title before a subtitle or ', by Author'."""
    if not title:
        return []
    out = [norm(title)]
    main = re.split(r"[:;(\[]|,\s*by\s|\s+by\s+|\s+-\s+", title, maxsplit=1, flags=re.I)[0]
    if norm(main) and norm(main) != out[0]:
        out.append(norm(main))
    return out


def author_norm(name: str) -> str:
    """'Austen, Jane' -> 'jane austen'; 'Jane Austen' stays; order-insensitive comparison later."""
    if "," in name:
        last, _, first = name.partition(",")
        name = f"{first} {last}"
    return norm(name)


def title_score(a: str | None, b: str | None) -> float:
    best = 0.0
    for x in title_variants(a):
        for y in title_variants(b):
            best = max(best, fuzz.token_sort_ratio(x, y), fuzz.ratio(x, y))
    return best


def author_score(a: Iterable[str], b: Iterable[str]) -> float:
    best = 0.0
    for x in a:
        for y in b:
            best = max(best, fuzz.token_set_ratio(author_norm(x), author_norm(y)))
    return best


def title_keys(title: str | None) -> set[str]:
    """Blocking keys: the distinctive words of the main title."""
    keys: set[str] = set()
    for v in title_variants(title):
        keys.update(w for w in v.split() if w not in _STOP and len(w) > 2)
    return keys


class TitleIndex:
    def __init__(self) -> None:
        self._by_key: dict[str, list[int]] = defaultdict(list)
        self.records: dict[int, tuple[str, list[str]]] = {}

    def add(self, ident: int, title: str | None, authors: list[str]) -> None:
        if not title:
            return
        self.records[ident] = (title, authors)
        for k in title_keys(title):
            self._by_key[k].append(ident)

    def matches(self, title: str | None, authors: list[str]) -> list[tuple[int, float]]:
        """(ident, score 0..1) of records whose title and author both match."""
        if not title or not authors:
            return []  # a title alone ('Emma') is too weak to name a work
        candidates: set[int] = set()
        for k in title_keys(title):
            ids = self._by_key.get(k, [])
            if len(ids) <= 100_000:
                candidates.update(ids)
        out = []
        for ident in candidates:
            t, a = self.records[ident]
            if not a:
                continue
            ts = title_score(title, t)
            if ts < TITLE_MIN:
                continue
            au = author_score(authors, a)
            if au >= AUTHOR_MIN:
                out.append((ident, round((ts + au) / 200, 4)))
        return out
