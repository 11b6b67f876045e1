"""Guard indexes in a library: where they live, which texts a scope covers, building and
refreshing them, and opening them (one loaded index per name, reloaded after a refresh)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select

from copytrail.catalog.queries import dataset_id
from copytrail.catalog.schema import copies, works, works_lists
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.fingerprint.boilerplate import K as boilerplate_k
from copytrail.fingerprint.boilerplate import boilerplate_set
from copytrail.guard import marks
from copytrail.guard.index import (
    MANIFEST,
    BoilerplateMarking,
    GuardIndex,
    Progress,
    index_text,
    read_manifest,
    refresh,
)
from copytrail.guard.segment import IndexedText, build_segment
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import append_event
from copytrail.store.blobs import BlobStore


def guard_root(ctx: Context) -> Path:
    return ctx.root / "guard"


MAX_NAME_CHARS = 100
MAX_OPEN_GUARDS = 16  # loaded indexes kept per library; the least recently used is released


def _is_valid_name(name: str) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_CHARS
        and name.isascii()
        and all(c.isalnum() or c in "-_." for c in name)
        and name[0] != "."
    )


def valid_name(name: str) -> str:
    """A guard name is one plain path component: it can never name a place outside the
    library's guard folder."""
    if not _is_valid_name(name):
        raise InvalidInput(
            f"guard name {name[:MAX_NAME_CHARS]!r} must be 1 to {MAX_NAME_CHARS} ASCII letters, "
            "digits, '-', '_' or '.', not starting with '.', e.g. 'protected'"
        )
    return name


def scope_texts(ctx: Context, scope: dict[str, Any]) -> dict[str, int]:
    """SHA-256 -> size of every text the scope covers: readable copies of its datasets and the
    reference texts of its works lists. A text held by several copies is indexed once."""
    wanted: dict[str, int] = {}
    with read_connection(ctx.db) as conn:
        if scope.get("all") or scope.get("datasets"):
            q = select(copies.c.text_sha256, copies.c.text_size).where(
                and_(copies.c.status == "ok", copies.c.text_sha256.is_not(None))
            )
            if not scope.get("all"):
                ids = [dataset_id(conn, d) for d in scope["datasets"]]
                q = q.where(copies.c.dataset_id.in_(ids))
            for sha, size in conn.execute(q):
                wanted[sha] = size or 0
        for name in scope.get("lists") or []:
            list_id = conn.execute(
                select(works_lists.c.id).where(works_lists.c.name == name)
            ).scalar()
            if list_id is None:
                raise NotFound(f"no works list {name!r}; see `copytrail works ls`")
            q = select(works.c.text_sha256).where(
                and_(works.c.list_id == list_id, works.c.text_sha256.is_not(None))
            )
            for (sha,) in conn.execute(q):
                wanted.setdefault(sha, 0)
    return wanted


def build(
    ctx: Context,
    name: str,
    lists: list[str] | None = None,
    dataset_refs: list[str] | None = None,
    all_datasets: bool = False,
    rebuild: bool = False,
    progress: Progress | None = None,
    boilerplate_texts: int | None = None,
) -> dict[str, Any]:
    """Build or refresh guard index `name`. Without a scope, the saved scope is refreshed.
    Passages in more than `boilerplate_texts` indexed texts (default: the index's setting, else
    20), and the library's boilerplate set, are marked as boilerplate, never flagged."""
    path = guard_root(ctx) / valid_name(name)
    saved = read_manifest(path) if (path / MANIFEST).exists() else {}
    max_texts = boilerplate_texts or (saved.get("boilerplate") or {}).get("max_texts")
    max_texts = max_texts or marks.DEFAULT_MAX_TEXTS
    if max_texts < 1:
        raise InvalidInput("--boilerplate-texts must be at least 1")
    if lists or dataset_refs or all_datasets:
        scope = {"lists": sorted(lists or []), "datasets": sorted(dataset_refs or [])}
        if all_datasets:
            scope = {"lists": scope["lists"], "all": True}
    elif saved:
        scope = saved["scope"]
    else:
        raise InvalidInput(
            f"guard index {name!r} does not exist yet; say what it protects: "
            "--list WORKS_LIST, --dataset D (repeatable) or --all"
        )
    wanted = scope_texts(ctx, scope)
    if not wanted:
        raise InvalidInput(
            "the scope holds no text to index (no readable copies, no works with a text "
            "column); ingest or import works first"
        )

    def read_texts(shas: list[str]) -> Iterator[IndexedText]:
        total = sum(wanted[s] for s in shas)
        if progress:
            progress("reading texts", 0, total)
        # Workers read and tokenise; an ordered map hands texts back in the order asked for,
        # holding only those in flight (not every text of the index) in memory.
        for t in ctx.executor.map(_index_task, shas, ctx.store, total, ordered=True):
            if progress:
                progress("reading texts", wanted[t.sha256], total)
            yield t

    def build_segments(groups: list[list[str]]) -> Iterator[Path]:
        # Each worker reads its texts and builds one bounded segment in the index folder.
        job = SegmentJob(ctx.store, str(path))
        total = sum(wanted[s] for g in groups for s in g)
        if progress:
            progress("building segments", 0, len(groups))
        for name in ctx.executor.map(_segment_task, groups, job, total, ordered=True):
            if progress:
                progress("building segments", 1, len(groups))
            yield path / name

    known = boilerplate_set(ctx)
    marking = BoilerplateMarking(known.hashes, known.sha256, boilerplate_k, max_texts)
    result = refresh(
        path,
        scope,
        wanted,
        read_texts,
        rebuild=rebuild,
        progress=progress,
        boilerplate=marking,
        build_segments=build_segments,
        sizes=wanted,
    )
    index = GuardIndex.open(path)
    stats = index.stats()
    listed = hashlib.sha256("\n".join(sorted(index.texts())).encode()).hexdigest()
    seq = append_event(
        ctx.db,
        ctx.actor,
        "produced",
        {"guard": name},
        {
            "artifact": "guard-index",
            "scope": scope,
            "texts": stats["texts"],
            "tokens": stats["tokens"],
            "texts_sha256": listed,
            "added": result.added,
            "removed": result.removed,
            "boilerplate": {"max_texts": max_texts, "set_sha256": known.sha256},
        },
    )
    forget_guard(ctx, name)
    return {
        **stats,
        "added": result.added,
        "removed": result.removed,
        "merged": result.merged,
        "reused_segments": result.reused,
        "seconds": round(result.seconds, 3),
        "texts_sha256": listed,
        "event_seq": seq,
    }


def _index_task(store: BlobStore, sha: str) -> IndexedText:
    return index_text(sha, store.get(sha).decode("utf-8"))


@dataclass(frozen=True)
class SegmentJob:
    """What a worker building a segment needs: the store to read texts, the index folder."""

    store: BlobStore
    path: str


def _segment_task(job: SegmentJob, shas: list[str]) -> str:
    """Read, tokenise and index a group of texts as one segment; its folder's name."""
    texts = (_index_task(job.store, sha) for sha in shas)
    return build_segment(Path(job.path), texts).name


def list_guards(ctx: Context) -> list[dict[str, Any]]:
    root = guard_root(ctx)
    out = []
    for d in sorted(root.glob("*")) if root.exists() else []:
        if (d / MANIFEST).exists() and _is_valid_name(d.name):
            out.append(open_guard(ctx, d.name).stats())
    return out


def open_guard(ctx: Context, name: str) -> GuardIndex:
    """The loaded index (memory-mapped), from the library's caches; reloaded when a refresh
    replaced its manifest. The name is checked here, where it becomes a path."""
    root = guard_root(ctx)
    path = root / valid_name(name)
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        raise InvalidInput(f"guard {name!r} points outside this library; it cannot be opened")
    try:
        stamp = (path / MANIFEST).stat().st_mtime_ns
    except FileNotFoundError:
        stamp = None
    loaded = _open_guards(ctx)
    with loaded.lock:
        hit = loaded.get(name)
        if hit is not None and hit[0] == stamp:
            loaded.move_to_end(name)
            return hit[1]
    index = GuardIndex.open(path)  # raises NotFound for a guard that does not exist: not kept
    with loaded.lock:
        loaded[name] = (stamp, index)
        loaded.move_to_end(name)
        while len(loaded) > MAX_OPEN_GUARDS:
            loaded.popitem(last=False)  # its maps close when the last check using it ends
    return index


def forget_guard(ctx: Context, name: str) -> None:
    loaded = _open_guards(ctx)
    with loaded.lock:
        loaded.pop(name, None)


class _OpenGuards(OrderedDict):
    """Loaded indexes by canonical name, least recently used first."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


def _open_guards(ctx: Context) -> _OpenGuards:
    return ctx.caches.get("guards", _OpenGuards)
