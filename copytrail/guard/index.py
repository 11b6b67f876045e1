"""A named guard index: a directory of immutable segments and a manifest naming the live ones.

Refreshing adds one segment for texts not yet indexed and rewrites the segments holding texts that
left the scope (deleted copies, removed works) from their own tokens, so a deleted copy's words
leave the index without re-reading any text. Small segments are kept merged into one, so a refresh
after each ingest costs time in proportion to what is new, and checks search few segments.
The manifest is replaced atomically and old segments are removed after it, so a reader or a
killed refresh only ever sees a complete index. A refresh killed after some of its new segments
were written leaves them beside the manifest; the next refresh plans the same segments (the
plan depends only on the texts and their sizes) and takes up each finished one instead of
building it again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from copytrail.atomic import exclusive
from copytrail.errors import InvalidInput, NotFound
from copytrail.fingerprint.hashing import word_ids
from copytrail.fingerprint.normalize import token_spans
from copytrail.guard.budget import Budget
from copytrail.guard.check import Check
from copytrail.guard.marks import Marks
from copytrail.guard.segment import (
    FILES,
    MARK_EVERY,
    IndexedText,
    Segment,
    build_segment,
    remove_tree,
    segment_texts,
)

FORMAT = 2  # 2: buckets.npy (boilerplate marks are optional: an older index has none)
MANIFEST = "manifest.json"
MAX_SEGMENTS = 8  # past this many, a refresh merges the smallest together (up to the bound)
SMALL_TIER = 8  # segments under 1/8 of the largest are merged together
# New texts go into segments of at most this much text, built in parallel by the executor: a
# segment build holds its words, suffix array and vocabulary (about 16 bytes a text byte), so
# this bounds its memory however large the scope. Merges never make a segment past
# MERGE_TOKENS words (about the same size).
SEGMENT_TEXT_BYTES = 256 << 20
MERGE_TOKENS = 48_000_000
TextReader = Callable[[list[str]], Iterable[IndexedText]]  # texts by SHA-256, in that order
# Builds one segment per group of SHA-256s (reading the texts itself), yielding their folders.
SegmentBuilder = Callable[[list[list[str]]], Iterable[Path]]


def plan_segments(added: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """`added` (in order) cut into runs of at most SEGMENT_TEXT_BYTES of text each."""
    groups: list[list[str]] = [[]]
    total = 0
    for sha in added:
        size = sizes.get(sha, 0)
        if groups[-1] and total + size > SEGMENT_TEXT_BYTES:
            groups.append([])
            total = 0
        groups[-1].append(sha)
        total += size
    return [g for g in groups if g]


Progress = Callable[[str, int, int | None], None]


def index_text(sha: str, text: str) -> IndexedText:
    ws, starts, _ends = token_spans(text)
    return IndexedText(sha, word_ids(ws), np.asarray(starts[::MARK_EVERY], np.int64))


@dataclass
class RefreshResult:
    added: int
    removed: int
    merged: bool
    seconds: float
    reused: int = 0  # segments a killed refresh had finished, taken up instead of built


class GuardIndex:
    def __init__(self, path: Path, manifest: dict[str, Any], segments: list[Segment]) -> None:
        self.path = path
        self.manifest = manifest
        self.segments = segments
        entry = manifest.get("boilerplate")
        self.marks = Marks.load(path, entry) if entry else None

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def open(cls, path: Path) -> GuardIndex:
        mf = path / MANIFEST
        if not mf.exists():
            raise NotFound(
                f"no guard index {path.name!r}; build it with: copytrail guard index "
                f"{path.name} --list WORKS_LIST (or --dataset D, or --all)"
            )
        manifest = read_manifest(path)
        if manifest.get("format") != FORMAT:
            raise InvalidInput(
                f"guard index {path.name!r} has format {manifest.get('format')}, this "
                f"copytrail reads {FORMAT}; rebuild it: copytrail guard index {path.name} --rebuild"
            )
        try:
            segments = [Segment.load(path / s) for s in manifest["segments"]]
        except (OSError, ValueError, KeyError) as e:
            raise InvalidInput(
                f"guard index {path.name!r} is damaged ({e}); rebuild it: "
                f"copytrail guard index {path.name} --rebuild"
            ) from e
        return cls(path, manifest, segments)

    # ---- facts -------------------------------------------------------------------------------
    def texts(self) -> set[str]:
        return {sha for s in self.segments for sha in s.doc_shas}

    def stats(self) -> dict[str, Any]:
        tokens = sum(s.token_count for s in self.segments)
        size = sum(s.bytes_on_disk for s in self.segments)
        return {
            "name": self.name,
            "scope": self.manifest.get("scope", {}),
            "texts": sum(len(s.doc_shas) for s in self.segments),
            "tokens": tokens,
            "segments": len(self.segments),
            "bytes": size,
            "bytes_per_token": round(size / tokens, 3) if tokens else None,
            "updated": self.manifest.get("updated"),
            "boilerplate": {
                k: v
                for k, v in (self.manifest.get("boilerplate") or {}).items()
                if k in ("max_texts", "set_sha256", "marked_tokens")
            },
        }

    def warm(self) -> int:
        """Read the index files once so the page cache holds them: the first checks after a
        start then do not wait on the disk. Returns the bytes read."""
        total = 0
        for seg in self.segments:
            for f in FILES:
                with open(seg.path / f, "rb", buffering=0) as fh:
                    while chunk := fh.read(16 * 1024 * 1024):
                        total += len(chunk)
        return total

    # ---- queries -----------------------------------------------------------------------------
    def check(self, min_words: int, budget: Budget | None = None) -> Check:
        return Check(self.segments, min_words, budget)

    def has_run(self, words: list[bytes]) -> bool:
        """Whether this run of normalised words occurs in any indexed text (the decoding-time
        guard asks this for every token it lets a model emit)."""
        if not words:
            return False
        hashes = word_ids(words)
        for seg in self.segments:
            lo, hi = seg.sa_range(seg.to_ids(hashes))
            if hi > lo:
                return True
        return False

    def phrase_positions(self, phrase: str) -> Iterator[tuple[int, np.ndarray]]:
        """(segment number, token positions) of every occurrence of the phrase."""
        ws, _s, _e = token_spans(phrase)
        if not ws:
            raise InvalidInput("the phrase has no words; search for words, e.g. 'it was the best'")
        hashes = word_ids(ws)
        for n, seg in enumerate(self.segments):
            ids = seg.to_ids(hashes)
            lo, hi = seg.sa_range(ids)
            if hi > lo:
                yield n, np.sort(np.asarray(seg.sa[lo:hi], np.int64))


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise InvalidInput(
            f"cannot read the manifest of guard index {path.name!r} ({e}); rebuild it: "
            f"copytrail guard index {path.name} --rebuild"
        ) from e


def refresh(
    path: Path,
    scope: dict[str, Any],
    wanted: Iterable[str],
    read_texts: TextReader,
    rebuild: bool = False,
    progress: Progress | None = None,
    boilerplate: BoilerplateMarking | None = None,
    build_segments: SegmentBuilder | None = None,
    sizes: dict[str, int] | None = None,
) -> RefreshResult:
    """Make the index at `path` hold exactly the texts in `wanted` (SHA-256s).

    New texts come from `read_texts`, asked for in SHA-256 order so the same library state always
    gives the same segments. With their `sizes` known, new texts are cut into segments of at most
    SEGMENT_TEXT_BYTES, which `build_segments` builds (in parallel) when there are several.
    """
    sizes = sizes or {}
    wanted = set(wanted)
    t0 = time.perf_counter()
    with exclusive(path / ".lock"):  # one refresh at a time; readers never wait
        for leftover in path.glob(".tmp-*"):  # from a refresh killed before its rename
            remove_tree(leftover)
        old: list[Segment] = []
        if (path / MANIFEST).exists() and not rebuild:
            try:
                old = GuardIndex.open(path).segments
            except InvalidInput:
                old = []
        have = {sha for s in old for sha in s.doc_shas}
        removed = have - wanted
        added = sorted(wanted - have)
        segments: list[Segment] = []
        for seg in old:
            gone = removed.intersection(seg.doc_shas)
            if not gone:
                segments.append(seg)
                continue
            keep = set(seg.doc_shas) - gone
            if keep:
                segments.append(Segment.load(build_segment(path, segment_texts(seg, keep))))
        groups = plan_segments(added, sizes) if added else []
        # --rebuild means "trust nothing on disk": it takes up no segment of an earlier run.
        done = {} if rebuild else _finished_segments(path, {s.name for s in old}, groups)
        todo = [g for g in groups if tuple(g) not in done]
        built: dict[tuple[str, ...], Segment] = {}
        if len(todo) > 1 and build_segments is not None:
            for group, folder in zip(todo, build_segments(todo), strict=True):
                built[tuple(group)] = Segment.load(folder)
        else:
            for group in todo:
                folder = build_segment(path, read_texts(group), progress)
                built[tuple(group)] = Segment.load(folder)
        segments.extend(done[k] if k in done else built[k] for k in map(tuple, groups))
        merged = False
        if len(segments) > MAX_SEGMENTS:
            segments, merged = _merge_smallest(path, segments)
        else:
            # Every segment costs each check a search, however small it is: segments under
            # 1/SMALL_TIER of the largest are kept merged into one (rewriting only them).
            largest = max((s.token_count for s in segments), default=0)
            small = [s for s in segments if s.token_count * SMALL_TIER < largest]
            if len(small) > 1:
                segments = [s for s in segments if s not in small] + [_merge(path, small)]
                merged = True
        previous = _manifest_or_empty(path).get("boilerplate")
        unchanged = (
            not added
            and not removed
            and not merged
            and previous is not None
            and boilerplate is not None
            and (previous["set_sha256"], previous["max_texts"])
            == (boilerplate.set_sha256, boilerplate.max_texts)
            and (path / previous["file"]).exists()
        )
        if unchanged:  # same texts, same boilerplate: the marks stand (a refresh stays free)
            entry = previous
        else:
            entry = _mark(path, segments, boilerplate) if boilerplate else None
        _write_manifest(path, scope, segments, entry)
        live = {s.name for s in segments}
        for d in path.glob("seg-*"):
            if d.name not in live:
                remove_tree(d)
        for f in path.glob("boiler-*.npy"):
            if entry is None or f.name != entry["file"]:
                f.unlink()
    return RefreshResult(
        len(added), len(removed), merged, time.perf_counter() - t0, reused=len(done)
    )


def _finished_segments(
    path: Path, live: set[str], groups: list[list[str]]
) -> dict[tuple[str, ...], Segment]:
    """Segments a killed refresh finished, by the texts they hold, for those this refresh plans
    to build: a segment folder appears only once complete (written apart, fsynced, renamed), so
    one not in the manifest holding exactly a planned group's texts, in order, is that group's
    segment. Texts are addressed by their SHA-256, so the same digests are the same texts."""
    wanted = {tuple(g) for g in groups}
    found: dict[tuple[str, ...], Segment] = {}
    for folder in sorted(path.glob("seg-*")):
        if folder.name in live or not all((folder / f).is_file() for f in FILES):
            continue
        try:
            shas = json.loads((folder / "docs.json").read_text())
            key = tuple(shas) if isinstance(shas, list) else ()
            if key in wanted and key not in found:
                seg = Segment.load(folder)
                if len(seg.doc_starts) == len(shas) + 1:
                    found[key] = seg
        except (OSError, ValueError, TypeError):
            continue  # damaged: built again, and removed with the other leftovers
    return found


def _manifest_or_empty(path: Path) -> dict[str, Any]:
    try:
        return read_manifest(path) if (path / MANIFEST).exists() else {}
    except InvalidInput:
        return {}


def _merge_smallest(path: Path, segments: list[Segment]) -> tuple[list[Segment], bool]:
    """Fewer segments: the smallest are merged together while the merged one stays within
    MERGE_TOKENS (segments past it stay as they are, so memory stays bounded)."""
    by_size = sorted(segments, key=lambda s: s.token_count)
    take: list[Segment] = []
    for seg in by_size:
        if take and sum(s.token_count for s in take) + seg.token_count > MERGE_TOKENS:
            break
        take.append(seg)
    if len(take) < 2:
        return segments, False
    return [s for s in segments if s not in take] + [_merge(path, take)], True


def _merge(path: Path, segments: list[Segment]) -> Segment:
    every = {sha for s in segments for sha in s.doc_shas}
    return Segment.load(build_segment(path, (t for s in segments for t in segment_texts(s, every))))


@dataclass
class BoilerplateMarking:
    known: np.ndarray  # k-gram hashes of the shared boilerplate set
    set_sha256: str
    k: int
    max_texts: int  # a passage in more indexed texts than this is boilerplate


def _mark(path: Path, segments: list[Segment], b: BoilerplateMarking) -> dict[str, Any]:
    from copytrail.guard import marks

    name, offsets, marked = marks.write_marks(path, segments, b.known, b.k, b.max_texts)
    return {
        "file": name,
        "offsets": offsets,
        "k": b.k,
        "max_texts": b.max_texts,
        "set_sha256": b.set_sha256,
        "marked_tokens": marked,
    }


def _write_manifest(
    path: Path,
    scope: dict[str, Any],
    segments: list[Segment],
    boilerplate: dict[str, Any] | None = None,
) -> None:
    from copytrail.ledger.events import utc_now

    manifest = {
        "format": FORMAT,
        "scope": scope,
        "segments": [s.name for s in segments],
        "updated": utc_now(),
    }
    if boilerplate:
        manifest["boilerplate"] = boilerplate
    tmp = path / f".tmp-{MANIFEST}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / MANIFEST)
