"""Content-addressed blob store over fsspec.

A blob is named by the SHA-256 of its uncompressed bytes. It lives either *loose*, zstd-compressed
at `<root>/ab/cd/abcd....zst` (written to a temporary name and renamed into place), or in a *pack*
(store/packs.py) when it was written inside `packing()`, as bulk ingest does: a million records
are then a few hundred files. Readers look in both. Writing the same bytes twice is a no-op, which
makes concurrent writers and re-runs safe.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import fsspec
import numpy as np
import zstandard

from copytrail.store import packs

TMP_PREFIX = ".tmp-"
SUFFIX = ".zst"


class BlobStore:
    # `level` compresses loose blobs (over packs.LARGE_BLOB; packs have their own parameters).
    # Level 1: on this class of machine zstd runs ~180 MB/s at level 1 and ~85 MB/s at level 3
    # on book text (ratio 2.5 vs 2.9); ingest throughput matters more than 15% of disk.
    def __init__(self, url: str, level: int = 1) -> None:
        self.url = url.rstrip("/")
        # Object stores: no cached listings. Other processes (workers, other machines) add and
        # remove packs, and a stale listing would call a new blob missing or a removed one live.
        remote = "://" in self.url and not self.url.startswith(("file://", "memory://"))
        options = {"use_listings_cache": False} if remote else {}
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **options)
        self.root = self.root.rstrip("/")
        self.level = level
        self._local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol
        # zstd contexts are not thread-safe (verify checks blobs from a thread pool).
        self._local_ctx = threading.local()
        self._made_dirs: set[str] = set()
        self.pack_dir = f"{self.root}/{packs.PACK_DIR}"
        self._index: packs.PackIndex | None = None
        self._index_lock = threading.Lock()
        self._writer: packs.PackWriter | None = None
        self._reader = packs.BlockReader(self.fs, self.pack_dir, self._local)

    # fsspec filesystems are picklable; compressor contexts are not, so rebuild them.
    def __getstate__(self) -> dict:
        return {"url": self.url, "level": self.level}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["level"])  # type: ignore[misc]

    @property
    def _cctx(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local_ctx, "c", None)
        if c is None:
            c = self._local_ctx.c = zstandard.ZstdCompressor(level=self.level)
        return c

    @property
    def _dctx(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local_ctx, "d", None)
        if d is None:
            d = self._local_ctx.d = zstandard.ZstdDecompressor()
        return d

    @property
    def shareable_across_processes(self) -> bool:
        """memory:// lives in one process; workers must not write to their own private copy."""
        return self.fs.protocol not in ("memory",) and "memory" not in self.fs.protocol

    @property
    def is_local(self) -> bool:
        """Blobs are files on this machine's disk: looking for one costs no round trip."""
        return self._local

    def path(self, sha256: str) -> str:
        return f"{self.root}/{sha256[:2]}/{sha256[2:4]}/{sha256}{SUFFIX}"

    # -- packs ------------------------------------------------------------------------------

    def _pack_index(self, refresh: bool = False) -> packs.PackIndex:
        with self._index_lock:
            if self._index is None:
                self._index = packs.load_index(self.fs, self.pack_dir)
            elif refresh:
                names = packs.pack_listing(self.fs, self.pack_dir)
                if packs.live_packs(names) != self._index.listing:
                    self._index = packs.load_index(self.fs, self.pack_dir, names)
            return self._index

    def _pack_rows(self, sha256: str, refresh: bool = True) -> list[int]:
        key = bytes.fromhex(sha256)
        rows = self._pack_index().find(key)
        if not rows and refresh:
            rows = self._pack_index(refresh=True).find(key)
        return rows

    @contextmanager
    def packing(self) -> Iterator[BlobStore]:
        """Blobs put inside go to one new pack (sealed on exit, even on error) instead of loose
        files. Sealing happens before the caller records anything that names the blobs."""
        if self._writer is not None:  # nested: the outer context seals
            yield self
            return
        self._writer = packs.PackWriter(self.fs, self.pack_dir, self._local)
        try:
            yield self
        finally:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()

    def put_derived(self, sha256: str, source_sha256: str, dotted_field: str) -> bool:
        """Record text `sha256` as the JSON field `dotted_field` of the original `source_sha256`
        without storing its bytes. Only inside `packing()`, for an original put in the same
        context; False when it cannot (the caller then stores the text)."""
        w = self._writer
        if w is None:
            return False
        return w.add_derived(bytes.fromhex(sha256), bytes.fromhex(source_sha256), dotted_field)

    def consolidate(self, min_unmerged: int = 1) -> int:
        """Merge the live pack indexes into one file (a cache that makes opening fast) when at
        least `min_unmerged` packs are not in it yet. Returns the number of packs it covers."""
        index = self._pack_index(refresh=True)
        if index.names and index.unmerged >= min_unmerged:
            packs.write_midx(self.fs, self.pack_dir, index, self._local)
        return len(index.names)

    def locate(self, sha256: str) -> list[dict]:
        """Where a blob's bytes are: its loose file, or each pack and byte range holding it."""
        out: list[dict] = []
        if self._loose_exists(sha256):
            out.append({"file": self.path(sha256), "offset": 0, "length": None, "derived": False})
        index = self._pack_index(refresh=True)
        for row in index.find(bytes.fromhex(sha256)):
            loc = index.location(row)
            out.append(
                {
                    "file": f"{self.pack_dir}/{loc.pack}.pack",
                    "offset": loc.block_off,
                    "length": loc.block_len,
                    "derived": loc.kind == packs.DERIVED,
                }
            )
        return out

    def read_order(self, shas: list[str]) -> list[str]:
        """`shas` in the order their bytes lie in the packs (pack, then block), loose blobs last:
        readers that take them in this order decompress each block once, not once per blob."""
        if not shas:
            return []
        index = self._pack_index()
        if not len(index.shas):
            return list(shas)
        keys = np.array([bytes.fromhex(s) for s in shas], dtype="S32")
        rows = np.minimum(np.searchsorted(index.shas, keys), len(index.shas) - 1)
        packed = index.shas[rows] == keys
        entries = index.entries[rows]
        order = np.lexsort(
            (
                entries["inner"],
                entries["block_off"],
                index.packs[rows],
                ~packed,  # primary key: packed ones (False) before loose ones
            )
        )
        return [shas[i] for i in order.tolist()]

    def files(self) -> int:
        """Files the store keeps (loose blobs, packs and their indexes)."""
        if not self.fs.exists(self.root):
            return 0
        return sum(1 for _ in self.fs.find(self.root))

    # -- blobs ------------------------------------------------------------------------------

    def _loose_exists(self, sha256: str) -> bool:
        return self.fs.exists(self.path(sha256))

    def exists(self, sha256: str, relist: bool = True) -> bool:
        """`relist`: on a miss, look for packs sealed since the index was read (a listing of the
        pack folder). A caller asking about many blobs calls `refresh()` once and passes False."""
        # The index in memory first: on an object store a loose lookup is a network round trip.
        return (
            bool(self._pack_rows(sha256, refresh=False))
            or self._loose_exists(sha256)
            or (relist and bool(self._pack_rows(sha256)))
        )

    def refresh(self) -> None:
        """Read the pack indexes again if packs were sealed or retired since the last read."""
        self._pack_index(refresh=True)

    def put(self, data: bytes, sha256: str | None = None) -> tuple[str, bool]:
        """Store `data`; return (sha256, written). `written` is False when it was already there."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        w = self._writer
        if w is not None and len(data) < packs.LARGE_BLOB:
            key = bytes.fromhex(digest)
            # No re-listing and no look for a loose copy here: a blob another writer packed a
            # moment ago, or one stored loose by an older copytrail, is stored twice at worst,
            # which costs bytes, never correctness (removal finds every copy).
            if key in w or self._pack_index().find(key):
                return digest, False
            w.add(key, data)
            if w.full:
                w.close()
                self._writer = packs.PackWriter(self.fs, self.pack_dir, self._local)
            return digest, True
        final = self.path(digest)
        if self._pack_rows(digest, refresh=False) or self.fs.exists(final):
            return digest, False
        compressed = self._cctx.compress(data)
        if not self._local:
            # Object stores (s3://, gs://) and memory:// make a whole object visible at once, so a
            # single put is already atomic there; a rename would be a second full copy.
            self.fs.pipe_file(final, compressed)
            return digest, True
        directory = final.rsplit("/", 1)[0]
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)
        tmp = f"{directory}/{TMP_PREFIX}{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(compressed)
        os.replace(tmp, final)  # atomic on POSIX: readers see no blob or the whole blob
        return digest, True

    def get(self, sha256: str) -> bytes:
        rows = self._pack_rows(sha256, refresh=False)
        if rows:  # no round trip for a loose file first
            try:
                return self._get_packed(sha256, rows)
            except FileNotFoundError:  # its pack was retired since: a loose copy may remain
                pass
        try:
            with self.fs.open(self.path(sha256), "rb") as f:
                return self._dctx.stream_reader(f, read_across_frames=True).readall()
        except FileNotFoundError:
            pass
        return self._get_packed(sha256)

    def _get_packed(self, sha256: str, rows: list[int] | None = None) -> bytes:
        rows = rows or self._pack_rows(sha256)
        if not rows:
            raise FileNotFoundError(f"blob {sha256} is not in the store")
        index = self._pack_index()
        try:
            return self._reader.read(index.location(rows[0]))
        except FileNotFoundError:  # the pack was rewritten by a deletion since we read the index
            rows = self._pack_index(refresh=True).find(bytes.fromhex(sha256))
            if not rows:
                raise
            return self._reader.read(self._pack_index().location(rows[0]))

    def check(self, sha256: str) -> str | None:
        """None when the blob exists and hashes to its name; otherwise what is wrong."""
        p = self.path(sha256)
        # Packed copies first (an index lookup); a loose copy is checked too where looking costs
        # nothing (a local disk) or where there is no packed one.
        packed = self._pack_rows(sha256, refresh=False)
        if packed and not self._local:
            return self._check_packed(sha256, packed)
        if packed:
            problem = self._check_packed(sha256, packed)
            if problem or not self.fs.exists(p):
                return problem
        elif not self.fs.exists(p):
            rows = self._pack_rows(sha256)
            return self._check_packed(sha256, rows) if rows else "missing"
        return self.check_loose(sha256)

    def check_loose(self, sha256: str) -> str | None:
        """None when the loose file of `sha256` hashes to its name; otherwise what is wrong."""
        try:
            h = hashlib.sha256()
            with self.fs.open(self.path(sha256), "rb") as f:
                reader = self._dctx.stream_reader(f, read_across_frames=True)
                while chunk := reader.read(1 << 20):
                    h.update(chunk)
        except FileNotFoundError:
            return "missing"
        except zstandard.ZstdError as e:
            return f"corrupt zstd data ({e})"
        if h.hexdigest() != sha256:
            return f"content hashes to {h.hexdigest()}, not to its name"
        return None

    def block_reader(self, keep: int = 2) -> packs.BlockReader:
        """A reader of pack blocks with its own cache of `keep` blocks, for a caller reading
        in pack order (the cache then never serves a block read before the caller began)."""
        return packs.BlockReader(self.fs, self.pack_dir, self._local, keep=keep)

    def check_at(
        self, sha256: str, loc: packs.Location, reader: packs.BlockReader | None = None
    ) -> str | None:
        """None when the packed copy at `loc` hashes to `sha256`; otherwise what is wrong. Needs
        no index: verify finds the locations itself and hands them out in pack order."""
        try:
            data = (reader or self._reader).read(loc)
        except zstandard.ZstdError as e:
            return f"corrupt zstd data in pack {loc.pack} ({e})"
        except (OSError, ValueError) as e:
            return f"unreadable in pack {loc.pack} ({e})"
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            return f"content hashes to {actual}, not to its name"
        return None

    def _check_packed(self, sha256: str, rows: list[int]) -> str | None:
        index = self._pack_index()
        for row in rows:  # every packed copy must be sound
            if problem := self.check_at(sha256, index.location(row)):
                return problem
        return None

    def index_scan(self) -> packs.IndexScan:
        """Every live pack's index entries, to be read a chunk at a time (nothing is loaded
        whole: verify joins them out of core)."""
        return packs.IndexScan(self.fs, self.pack_dir, packs.pack_listing(self.fs, self.pack_dir))

    def remove(self, sha256: str) -> bool:
        return self.remove_many([sha256]) > 0

    def remove_many(self, shas: Iterable[str]) -> int:
        """Remove blobs: loose files are unlinked, and every pack holding one is rewritten
        without it (the old pack file is deleted), so the bytes are gone from the store's
        files when this returns. Returns how many of the blobs were found."""
        found = 0
        drop_by_pack: dict[str, set[bytes]] = {}
        index = self._pack_index(refresh=True)
        for sha in set(shas):
            hit = False
            p = self.path(sha)
            if self.fs.exists(p):
                self.fs.rm_file(p)
                hit = True
            for row in index.find(bytes.fromhex(sha)):
                drop_by_pack.setdefault(index.names[int(index.packs[row])], set()).add(
                    bytes.fromhex(sha)
                )
                hit = True
            found += hit
        for name, drop in sorted(drop_by_pack.items()):
            packs.rewrite_pack(self.fs, self.pack_dir, self._local, name, drop, self._reader)
        if drop_by_pack:
            self.consolidate(min_unmerged=0)  # the merged index must not name the old packs
        return found

    def iter_names(self) -> Iterator[str]:
        """Every stored blob's SHA-256, loose and packed (temporary files excluded)."""
        yield from self.iter_loose()
        shas = self._pack_index(refresh=True).shas
        for i, sha in enumerate(shas):
            if i == 0 or shas[i - 1] != sha:
                yield packs.sha_bytes(sha).hex()

    def iter_loose(self) -> Iterator[str]:
        """The SHA-256 of every loose blob (temporary files excluded). On a local disk the
        folders are walked, not listed whole: a store from before packs holds millions of files."""
        if not self.fs.exists(self.root):
            return
        for p in self._walk_local() if self._local else self.fs.find(self.root):
            name = p.rsplit("/", 1)[-1]
            if name.endswith(SUFFIX) and not name.startswith(TMP_PREFIX):
                yield name[: -len(SUFFIX)]

    def _walk_local(self) -> Iterator[str]:
        for top, dirs, files in os.walk(self.root):
            if top == self.root and packs.PACK_DIR in dirs:
                dirs.remove(packs.PACK_DIR)  # packs hold no loose blobs
            for name in files:
                yield f"{top}/{name}"

    def iter_temporaries(self) -> Iterator[str]:
        """Temporary files left by a writer killed between write and rename, and packs whose
        index was never written."""
        if not self.fs.exists(self.root):
            return
        for p in self.fs.find(self.root):
            if p.rsplit("/", 1)[-1].startswith(TMP_PREFIX) and f"/{packs.PACK_DIR}/" not in p:
                yield p
        for name in packs.unindexed_packs(packs.pack_listing(self.fs, self.pack_dir)):
            yield f"{self.pack_dir}/{name}"
