"""Quality rules in the manner of Gopher (Rae et al. 2021, appendix A): each returns the name of
the first rule a text breaks, or None. Decisions are data: the rule name is what the ledger
records as the copy's fate."""

from __future__ import annotations

import re
from collections import Counter

from copytrail.build.policy import Filters

_WORD = re.compile(r"\S+")
_HAS_ALPHA = re.compile(r"[^\W\d_]")
_PARAGRAPHS = re.compile(r"\n\s*\n")


def _duplicate_share(parts: list[str]) -> float:
    """Share of characters in parts that occur more than once."""
    parts = [p.strip() for p in parts if p.strip()]
    total = sum(len(p) for p in parts)
    if not total:
        return 0.0
    counts = Counter(parts)
    repeated = sum(len(p) * (n - 1) for p, n in counts.items() if n > 1)
    return repeated / total


def quality_rule(text: str, f: Filters) -> str | None:
    words = _WORD.findall(text)
    n = len(words)
    if n < f.min_words:
        return "quality:min_words"
    mean = sum(len(w) for w in words) / n
    lo, hi = f.mean_word_length
    if not lo <= mean <= hi:
        return "quality:mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / n > f.max_symbol_ratio:
        return "quality:symbol_ratio"
    digits = sum(c.isdigit() for c in text)
    if digits / max(1, len(text)) > f.max_digit_ratio:
        return "quality:digit_ratio"
    alpha = sum(1 for w in words if _HAS_ALPHA.search(w))
    if alpha / n < f.min_alpha_words:
        return "quality:alpha_words"
    if _duplicate_share(text.splitlines()) > f.max_duplicate_lines:
        return "quality:duplicate_lines"
    if _duplicate_share(_PARAGRAPHS.split(text)) > f.max_duplicate_paragraphs:
        return "quality:duplicate_paragraphs"
    return None
