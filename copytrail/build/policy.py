"""A build policy: which copies may go into a corpus, and how it is tokenized and sharded.

datasets = ["gutenberg@2024-01", "books3@2020-10"]
exclude_kinds = ["shadow-library"]
languages = ["en"]                       # empty: any language
tokenizer = "tokenizer.json"             # relative to the policy file
shard_tokens = 50_000_000

[[exclude_works]]                        # opt-outs, takedowns, a class list
list = "opt-outs"
methods = ["exact", "near_duplicate", "partial", "isbn", "asin"]
min_coverage = 0.0                       # share of the work the copy holds
min_words = 200                          # shortest passage that makes a partial match

[filters]                                # Gopher-style quality rules
min_words = 50
mean_word_length = [3, 10]
max_symbol_ratio = 0.1                   # '#' and '...' per word
max_digit_ratio = 0.2                    # digits per character
min_alpha_words = 0.8                    # words holding a letter
max_duplicate_lines = 0.3                # characters in repeated lines
max_duplicate_paragraphs = 0.3

[dedup]
exact = true                             # same normalised text
near = true                              # MinHash LSH, estimated Jaccard >= threshold
near_threshold = 0.8
keep_order = ["purchased-scan", "licensed", "public-domain", "web-crawl", "shadow-library"]
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from copytrail.catalog.records import SOURCE_KINDS
from copytrail.errors import InvalidInput

MATCH_METHODS = ("exact", "near_duplicate", "partial", "isbn", "asin", "metadata")
DEFAULT_EXCLUDE_METHODS = ["exact", "near_duplicate", "partial", "isbn", "asin"]


@dataclass
class WorksExclusion:
    list: str
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE_METHODS))
    min_coverage: float = 0.0
    min_words: int = 200


@dataclass
class Filters:
    min_words: int = 50
    mean_word_length: tuple[float, float] = (3.0, 10.0)
    max_symbol_ratio: float = 0.1
    max_digit_ratio: float = 0.2
    min_alpha_words: float = 0.8
    max_duplicate_lines: float = 0.3
    max_duplicate_paragraphs: float = 0.3


@dataclass
class Dedup:
    exact: bool = True
    near: bool = True
    near_threshold: float = 0.8
    keep_order: list[str] = field(
        default_factory=lambda: [
            "purchased-scan",
            "licensed",
            "public-domain",
            "user-upload",
            "web-crawl",
            "third-party",
            "unknown",
            "shadow-library",
        ]
    )


@dataclass
class Policy:
    path: Path
    sha256: str
    datasets: list[str]
    tokenizer: Path
    exclude_kinds: list[str] = field(default_factory=list)
    exclude_works: list[WorksExclusion] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)
    dedup: Dedup = field(default_factory=Dedup)
    shard_tokens: int = 50_000_000

    def kind_rank(self, kind: str) -> int:
        order = self.dedup.keep_order
        return order.index(kind) if kind in order else len(order)


def _fail(path: Path, msg: str) -> InvalidInput:
    return InvalidInput(f"policy {path}: {msg}")


def _take(table: dict[str, Any], cls: type, path: Path, where: str) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = set(table) - known
    if unknown:
        raise _fail(path, f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")
    try:
        return cls(**table)
    except TypeError as e:
        raise _fail(path, f"{where}: {e}") from e


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read policy {p}: {e.strerror}") from e
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _fail(p, f"not valid TOML ({e})") from e
    top = {
        "datasets",
        "tokenizer",
        "exclude_kinds",
        "exclude_works",
        "languages",
        "filters",
        "dedup",
        "shard_tokens",
    }
    unknown = set(raw) - top
    if unknown:
        raise _fail(p, f"unknown key(s): {', '.join(sorted(unknown))}")
    datasets = raw.get("datasets")
    if not datasets or not all(isinstance(d, str) for d in datasets):
        raise _fail(p, 'name the datasets to draw from: datasets = ["name@version"]')
    if "tokenizer" not in raw:
        raise _fail(
            p, 'say which tokenizer: tokenizer = "tokenizer.json" (copytrail tokenizer train)'
        )
    tokenizer = Path(raw["tokenizer"])
    if not tokenizer.is_absolute():
        tokenizer = p.parent / tokenizer
    kinds = raw.get("exclude_kinds", [])
    bad = [k for k in kinds if k not in SOURCE_KINDS]
    if bad:
        raise _fail(p, f"unknown source kind(s) {bad}; kinds are {', '.join(SOURCE_KINDS)}")
    works = [_take(w, WorksExclusion, p, "[[exclude_works]]") for w in raw.get("exclude_works", [])]
    for w in works:
        bad = [m for m in w.methods if m not in MATCH_METHODS]
        if bad:
            raise _fail(p, f"unknown match method(s) {bad}; methods are {', '.join(MATCH_METHODS)}")
    filters = _take(raw.get("filters", {}), Filters, p, "[filters]")
    filters.mean_word_length = tuple(filters.mean_word_length)  # type: ignore[assignment]
    dedup = _take(raw.get("dedup", {}), Dedup, p, "[dedup]")
    if not 0 < dedup.near_threshold <= 1:
        raise _fail(p, "dedup.near_threshold must be in (0, 1]")
    shard_tokens = int(raw.get("shard_tokens", 50_000_000))
    if shard_tokens < 1000:
        raise _fail(p, "shard_tokens must be at least 1000")
    return Policy(
        path=p,
        sha256=hashlib.sha256(data).hexdigest(),
        datasets=list(datasets),
        tokenizer=tokenizer,
        exclude_kinds=list(kinds),
        exclude_works=works,
        languages=list(raw.get("languages", [])),
        filters=filters,
        dedup=dedup,
        shard_tokens=shard_tokens,
    )
