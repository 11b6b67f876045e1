"""The one boilerplate set that audit, build and guard share: passages many unrelated texts carry
(licences, Project Gutenberg headers, copyright pages) that are never evidence of a work and
never a reproduction of one.

It is the texts copytrail ships (fingerprint/boilerplate/*.txt), the passages declared for this
library (`copytrail boilerplate add FILE`, each an event), and any files a command adds for one
run (`audit --boilerplate FILE`). A passage is known by every word k-gram hash of its text (all of
them, not only winnowed ones: winnowing is local, so a text holding the passage may select
different k-grams near its edges).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from copytrail.catalog.records import next_id
from copytrail.catalog.schema import boilerplate
from copytrail.context import Context
from copytrail.errors import Conflict, InvalidInput
from copytrail.fingerprint import hashing
from copytrail.fingerprint.normalize import words
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now

SHIPPED_DIR = Path(__file__).parent / "boilerplate"
K = hashing.WINNOW_K  # words per k-gram, the audit's and the guard's
MAX_PASSAGE_BYTES = 8 << 20
NAME_CHARS = 200


def passage_hashes(text: str) -> np.ndarray:
    """Every word k-gram hash of a passage, sorted and unique."""
    return np.unique(hashing.kgram_hashes(hashing.word_ids(words(text)), K))


@dataclass
class Source:
    name: str
    origin: str  # shipped | library | file
    words: int
    hashes: np.ndarray  # sorted unique k-gram hashes


@dataclass
class BoilerplateSet:
    sources: list[Source]

    @property
    def hashes(self) -> np.ndarray:
        """Every k-gram hash of every source, sorted and unique."""
        got = getattr(self, "_all", None)
        if got is None:
            parts = [s.hashes for s in self.sources] or [np.zeros(0, np.uint64)]
            got = self._all = np.unique(np.concatenate(parts))
        return got

    @property
    def sha256(self) -> str:
        """One digest of the whole set, recorded where the set was used (guard manifests)."""
        return hashlib.sha256(self.hashes.tobytes()).hexdigest()

    def which(self, kgrams: np.ndarray) -> list[str]:
        """Names of the sources holding any of these k-gram hashes."""
        return [s.name for s in self.sources if np.isin(kgrams, s.hashes).any()]


def _shipped() -> list[Source]:
    out = []
    for p in sorted(SHIPPED_DIR.glob("*.txt")):
        text = p.read_bytes().decode("utf-8", errors="replace")
        out.append(Source(p.stem, "shipped", len(words(text)), passage_hashes(text)))
    return out


_SHIPPED: list[Source] | None = None


def shipped() -> list[Source]:
    global _SHIPPED
    if _SHIPPED is None:  # a few hundred KB of text, hashed once per process
        _SHIPPED = _shipped()
    return _SHIPPED


def boilerplate_set(ctx: Context, extra_files: list[str] | None = None) -> BoilerplateSet:
    """Shipped passages, the library's declared ones, and `extra_files` for this run only."""
    sources = list(shipped())
    with read_connection(ctx.db) as conn:
        rows = conn.execute(select(boilerplate).order_by(boilerplate.c.id)).all()
    for r in rows:
        text = ctx.store.get(r.text_sha256).decode("utf-8", errors="replace")
        sources.append(Source(r.name, "library", r.words, passage_hashes(text)))
    for f in extra_files or []:
        text = _read_passage(Path(f))
        sources.append(Source(Path(f).name, "file", len(words(text)), passage_hashes(text)))
    return BoilerplateSet(sources)


def _read_passage(path: Path) -> str:
    try:
        if os.path.getsize(path) > MAX_PASSAGE_BYTES:
            raise InvalidInput(f"{path} is over {MAX_PASSAGE_BYTES} bytes; a passage is smaller")
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise InvalidInput(f"cannot read the boilerplate file {path}: {e.strerror}") from e


def add_passage(ctx: Context, file: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """Declare the text of `file` boilerplate for this library: stored as a blob, recorded as a
    `declared` event. Guards pick it up at their next refresh."""
    path = Path(file)
    text = _read_passage(path)
    n_words = len(words(text))
    if n_words < K:
        raise InvalidInput(f"{path} has {n_words} words; a boilerplate passage needs {K} or more")
    name = (name or path.stem).strip()
    if not name or len(name) > NAME_CHARS:
        raise InvalidInput(f"a boilerplate passage needs a name of 1 to {NAME_CHARS} characters")
    if name in {s.name for s in shipped()}:
        raise Conflict(f"{name!r} is the name of a passage copytrail ships; choose another")
    sha, _ = ctx.store.put(text.encode("utf-8"))
    with write_transaction(ctx.db) as conn:
        if conn.execute(select(boilerplate.c.id).where(boilerplate.c.name == name)).first():
            raise Conflict(f"boilerplate {name!r} exists; see `copytrail boilerplate ls`")
        pid = next_id(conn, boilerplate.c.id)
        ev = EventWriter(conn, ctx.actor)
        seq = ev.append(
            "declared",
            {"boilerplate_id": pid},
            {"name": name, "text_sha256": sha, "words": n_words, "file": str(path)},
        )
        ev.flush()
        row = {
            "id": pid,
            "name": name,
            "text_sha256": sha,
            "words": n_words,
            "created": utc_now(),
            "actor": ctx.actor,
            "event_seq": seq,
        }
        conn.execute(boilerplate.insert(), [row])
    return row


def list_passages(ctx: Context) -> list[dict[str, Any]]:
    out = [
        {"name": s.name, "origin": s.origin, "words": s.words, "kgrams": len(s.hashes)}
        for s in shipped()
    ]
    with read_connection(ctx.db) as conn:
        for r in conn.execute(select(boilerplate).order_by(boilerplate.c.id)):
            out.append({"origin": "library", **r._asdict()})
    return out
