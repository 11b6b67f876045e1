"""Pack files: many small blobs in a few large files, as git and restic keep them.

A pack (`packs/pack-<id>.pack`) is a run of zstd frames. Each frame (a *block*) compresses up to
BLOCK_RAW bytes of blobs laid end to end, so small records compress together (a 4 KB record alone
compresses about a third worse). Its index (`pack-<id>.idx`) lists every blob it holds, sorted by
SHA-256: the block's offset and length in the pack and the blob's place inside the block. The
index is written, fsynced and renamed into place only after the pack is complete, so a pack is
*live* exactly when its index exists: a kill leaves at worst a pack without an index, which
`iter_temporaries` reports and the next writer ignores.

An entry may also be *derived*: a text that is the JSON text field of an original stored in the
same pack. Its bytes are not kept; reading it parses the original (store/derive.py).

`all.midx` merges the indexes of many packs into one sorted file, so opening a library of a
million blobs reads one file instead of hundreds; indexes not in it are read on their own.

Index files (magic CTPIDX2) keep their entries in checksummed zstd frames of up to FRAME_ROWS
entries, each laid out column by column, integer columns byte plane by byte plane: the digests
do not compress, but the 26 bytes of location beside each do, and an entry costs ~40 bytes
instead of 58 (62 in all.midx). The header lists each frame's rows and bytes. CTPIDX1 files
(entries stored raw), written before, are read as they are.

Removing a blob rewrites the packs that hold it without it, then deletes the old files.
"""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import zstandard

from copytrail.store.derive import json_field_text

PACK_DIR = "packs"
BLOCK_RAW = 256 << 10  # raw bytes per zstd frame: big enough to compress well, cheap to read
# How a block is compressed. zstd's levels tune for a source size: level 1 on a 256 KB block
# leaves ~10% on the table. A double-fast search with a 256 KB window and 6-byte minimum matches
# made packs of real records and books 8-9% smaller than level 1 at ~190 MB/s against ~270 MB/s,
# and decompresses as fast (0.23 ms a block); level 4 was 12% smaller but ran at ~100 MB/s.
# Measured by bench/packs.py on the 1,000,000-record bench library. Any parameters
# decompress with the same reader, so old packs stay readable and a rewrite recompresses.
BLOCK_PARAMS = dict(
    window_log=18, hash_log=17, chain_log=16, search_log=1, min_match=6, target_length=0
)
PACK_MAX = 512 << 20  # a writer starts a new pack past this many compressed bytes
LARGE_BLOB = 4 << 20  # bigger blobs are stored loose: one file each is cheap at that size
IDX_MAGIC = b"CTPIDX2\n"  # entries in zstd frames (the header's "frames": [[rows, bytes], ...])
IDX_MAGIC_RAW = b"CTPIDX1\n"  # entries stored raw: indexes written before the frames
MIDX_NAME = "all.midx"
SCAN_ROWS = 1 << 18  # index entries read at a time (about 16 MB)
FRAME_ROWS = SCAN_ROWS  # entries per zstd frame of an index file
MAX_FRAME_ROWS = 1 << 20  # a reader refuses bigger frames: one frame's memory stays bounded
STORED, DERIVED = 0, 1

ENTRY = np.dtype(
    [
        ("sha", "S32"),
        ("kind", "u1"),
        ("field", "u1"),  # derived: index into the pack's field names
        ("inner", "<u4"),  # offset of the blob inside the uncompressed block
        ("block_off", "<u8"),
        ("block_len", "<u4"),
        ("size", "<u8"),  # stored: the blob's length; derived: the original's length
    ]
)
MULTI_ENTRY = np.dtype(ENTRY.descr + [("pack", "<u4")])  # all.midx: an entry and its pack


def sha_bytes(value: Any) -> bytes:
    """A digest read back from an "S32" column: numpy drops trailing zero bytes, put them back."""
    return bytes(value).ljust(32, b"\x00")


@dataclass
class Location:
    pack: str
    kind: int
    field: str | None
    inner: int
    block_off: int
    block_len: int
    size: int


def index_file_bytes(header: dict, arr: np.ndarray) -> bytes:
    """An index file: `header` (with its frame table added) and `arr`'s entries in frames."""
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    frames = [
        cctx.compress(_columns(arr[i : i + FRAME_ROWS])) for i in range(0, len(arr), FRAME_ROWS)
    ]
    rows = [min(FRAME_ROWS, len(arr) - i) for i in range(0, len(arr), FRAME_ROWS)]
    header = {**header, "frames": [[r, len(f)] for r, f in zip(rows, frames, strict=True)]}
    h = orjson.dumps(header)
    return b"".join([IDX_MAGIC, len(h).to_bytes(4, "little"), h, *frames])


def _columns(part: np.ndarray) -> bytes:
    """Entries column by column, and each integer column byte plane by byte plane (the high
    bytes of offsets and sizes repeat, and compress to almost nothing). Digests stay whole:
    their bytes are random, and planes would only cost time to undo."""
    out = []
    for name in part.dtype.names:
        column = np.ascontiguousarray(part[name])
        if column.dtype.kind == "S":
            out.append(column.tobytes())
        else:
            out.append(column.view(np.uint8).reshape(len(part), -1).T.tobytes())
    return b"".join(out)


def _inflate(frame: bytes, rows: int, dtype: np.dtype) -> bytes:
    """One frame's bytes; ValueError when it is damaged (zstd checks the frame's checksum)."""
    want = rows * dtype.itemsize
    try:
        raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=want)
    except zstandard.ZstdError as e:
        raise ValueError(f"a damaged pack index frame: {e}") from e
    if len(raw) != want:
        raise ValueError("a pack index frame of the wrong size")
    return raw


def _fill(raw: bytes, out: np.ndarray) -> np.ndarray:
    """Set `out`'s entries from an inflated frame (the inverse of `_columns`)."""
    rows, at = len(out), 0
    for name in out.dtype.names:
        kind = out.dtype[name]
        if kind.kind == "S":
            out[name] = np.frombuffer(raw, dtype=kind, count=rows, offset=at)
        else:
            planes = np.frombuffer(raw, np.uint8, count=rows * kind.itemsize, offset=at)
            out[name] = np.ascontiguousarray(planes.reshape(kind.itemsize, rows).T).view(kind)[:, 0]
        at += rows * kind.itemsize
    return out


def _frame_table(header: dict, body: int) -> list[tuple[int, int]]:
    """The (rows, bytes) of each frame, checked against the body's length; ValueError if damaged."""
    table = header.get("frames")
    if not isinstance(table, list):
        raise ValueError("a pack index without its frame table")
    out = []
    for item in table:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(type(v) is int for v in item)
            or not 0 < item[0] <= MAX_FRAME_ROWS
            or item[1] <= 0
        ):
            raise ValueError("a damaged frame table in a pack index")
        out.append((item[0], item[1]))
    if sum(n for _, n in out) != body:
        raise ValueError("truncated pack index")
    return out


def read_index_bytes(data: bytes) -> tuple[dict, np.ndarray]:
    """(header, entries) of an .idx or .midx file; ValueError when it is not one."""
    header, start, framed = _read_header(io.BytesIO(data))
    dtype = MULTI_ENTRY if header.get("multi") else ENTRY
    if not framed:
        body = data[start:]
        if len(body) % dtype.itemsize:
            raise ValueError("truncated pack index")
        return header, np.frombuffer(body, dtype=dtype)
    # Each frame is inflated (and its size checked) before its rows are allocated: a header
    # may claim any number of rows, the bytes may not.
    parts, at = [], start
    for rows, n in _frame_table(header, len(data) - start):
        parts.append(_fill(_inflate(data[at : at + n], rows, dtype), np.empty(rows, dtype)))
        at += n
    if len(parts) == 1:
        return header, parts[0]
    return header, np.concatenate(parts) if parts else np.empty(0, dtype)


class PackWriter:
    """Appends blobs to a new pack; `close()` seals it (pack then index, each atomically)."""

    def __init__(self, fs: Any, pack_dir: str, local: bool) -> None:
        self.fs, self.dir, self.local = fs, pack_dir, local
        params = zstandard.ZstdCompressionParameters(
            strategy=zstandard.STRATEGY_DFAST, **BLOCK_PARAMS
        )
        self.cctx = zstandard.ZstdCompressor(compression_params=params)
        self._start()

    def _start(self) -> None:
        self.name = f"pack-{uuid.uuid4().hex}"
        self.entries: list[tuple] = []
        self.fields: list[str] = []
        self.where: dict[bytes, tuple[int, int, int]] = {}  # sha -> (block no, inner, size)
        self.block: list[bytes] = []
        self.block_raw = 0
        self.block_no = 0
        self.pending: list[tuple] = []  # entries of the open block: (sha, kind, field, inner, size)
        self.offset = 0
        self.blocks: list[tuple[int, int]] = []  # (offset, length) of sealed blocks
        if self.local:
            os.makedirs(self.dir, exist_ok=True)
            self.tmp = f"{self.dir}/.tmp-{self.name}"
            self.file: Any = open(self.tmp, "wb")  # noqa: SIM115
        else:
            self.file = io.BytesIO()

    def __contains__(self, sha: bytes) -> bool:
        return sha in self.where

    @property
    def empty(self) -> bool:
        return not self.where

    def add(self, sha: bytes, data: bytes) -> None:
        if sha in self.where:
            return
        self.where[sha] = (self.block_no, self.block_raw, len(data))
        self.pending.append((sha, STORED, 0, self.block_raw, len(data)))
        self.block.append(data)
        self.block_raw += len(data)
        if self.block_raw >= BLOCK_RAW:
            self._seal_block()

    def add_derived(self, sha: bytes, source: bytes, dotted: str) -> bool:
        """Record `sha` as the text field `dotted` of `source`, already added to this pack."""
        if sha in self.where:
            return True
        if source not in self.where:
            return False
        if dotted not in self.fields:
            if len(self.fields) >= 255:
                return False
            self.fields.append(dotted)
        block_no, inner, size = self.where[source]
        fid = self.fields.index(dotted)
        self.where[sha] = (block_no, inner, size)
        if block_no == self.block_no:
            self.pending.append((sha, DERIVED, fid, inner, size))
        else:
            off, length = self.blocks[block_no]
            self.entries.append((sha, DERIVED, fid, inner, off, length, size))
        return True

    def _seal_block(self) -> None:
        if not self.block:
            return
        frame = self.cctx.compress(b"".join(self.block))
        self.file.write(frame)
        off, length = self.offset, len(frame)
        self.blocks.append((off, length))
        self.entries.extend(
            (sha, kind, fid, inner, off, length, size)
            for sha, kind, fid, inner, size in self.pending
        )
        self.offset += length
        self.block, self.block_raw, self.pending = [], 0, []
        self.block_no += 1

    @property
    def full(self) -> bool:
        return self.offset >= PACK_MAX

    def close(self) -> str | None:
        """Seal the pack; returns its name (None when nothing was added)."""
        self._seal_block()
        if not self.entries:
            if self.local:
                self.file.close()
                os.unlink(self.tmp)
            return None
        arr = np.array(self.entries, dtype=ENTRY)
        arr.sort(order="sha", kind="stable")
        header = {"pack": self.name, "fields": self.fields, "pack_bytes": self.offset}
        final = f"{self.dir}/{self.name}.pack"
        index = index_file_bytes(header, arr)
        if self.local:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, final)
            tmp_idx = f"{self.dir}/.tmp-{self.name}.idx"
            with open(tmp_idx, "wb") as f:
                f.write(index)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_idx, f"{self.dir}/{self.name}.idx")
            _fsync_dir(self.dir)
        else:  # an object store makes each object visible whole; the index goes last
            self.fs.pipe_file(final, self.file.getvalue())
            self.fs.pipe_file(f"{self.dir}/{self.name}.idx", index)
        return self.name


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class PackIndex:
    """Every live pack's entries, merged and sorted by SHA-256."""

    shas: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="S32"))
    entries: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=ENTRY))
    packs: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="<u4"))
    names: list[str] = field(default_factory=list)  # pack number -> pack name
    fields: list[list[str]] = field(default_factory=list)  # pack number -> its field names
    listing: frozenset[str] = frozenset()  # the .idx names this index was built from
    unmerged: int = 0  # live packs whose entries all.midx does not hold

    def find(self, sha: bytes) -> list[int]:
        """Row numbers of every entry for `sha` (a blob can sit in two packs after a race)."""
        i = int(np.searchsorted(self.shas, sha))
        rows = []
        while i < len(self.shas) and sha_bytes(self.shas[i]) == sha:
            rows.append(i)
            i += 1
        return rows

    def location(self, row: int) -> Location:
        e = self.entries[row]
        p = int(self.packs[row])
        kind = int(e["kind"])
        return Location(
            pack=self.names[p],
            kind=kind,
            field=self.fields[p][int(e["field"])] if kind == DERIVED else None,
            inner=int(e["inner"]),
            block_off=int(e["block_off"]),
            block_len=int(e["block_len"]),
            size=int(e["size"]),
        )


@dataclass
class IndexScan:
    """The entries of every live pack, read a chunk at a time: all.midx (when present and
    sound) for the packs it covers, then each live .idx it does not cover. `names` and
    `fields` (pack number -> pack name, its field names) grow as `chunks()` reaches each pack;
    `unreadable` lists the .idx files that could not be read."""

    fs: Any
    pack_dir: str
    listing: list[str]
    rows: int = SCAN_ROWS
    names: list[str] = field(default_factory=list)
    fields: list[list[str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    merged: set[str] = field(default_factory=set)  # live packs read from all.midx
    hold: bool = False  # the caller keeps every entry: all.midx is decoded in one pass

    @property
    def live(self) -> frozenset[str]:
        return live_packs(self.listing)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(entries, pack numbers) a chunk at a time, in no particular order."""
        live = self.live
        if MIDX_NAME in self.listing:
            yield from self._midx_chunks(live)
        for name in sorted(live - self.merged):
            try:
                header, arr = read_index_bytes(self.fs.cat_file(f"{self.pack_dir}/{name}.idx"))
            except (ValueError, OSError):
                self.unreadable.append(name)
                continue
            number = len(self.names)
            self.names.append(name)
            self.fields.append(header.get("fields", []))
            for i in range(0, len(arr), self.rows):
                part = arr[i : i + self.rows]
                yield part, np.full(len(part), number, dtype="<u4")

    def _midx_chunks(self, live: frozenset[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        path = f"{self.pack_dir}/{MIDX_NAME}"
        try:  # a damaged merged index is only a cache: the packs' own indexes are read instead
            f = self.fs.open(path, "rb")
        except OSError:
            return
        with f:
            try:
                header, start, framed = _read_header(f)
                body = self.fs.size(path) - start
                packs, fields = header["packs"], header["fields"]
                if (
                    not header.get("multi")
                    or not isinstance(packs, list)
                    or not isinstance(fields, list)
                    or len(fields) != len(packs)
                ):
                    raise ValueError("damaged merged index")
                if framed:
                    table = _frame_table(header, body)
                    # Every frame is checked before any entry is used: a frame found damaged
                    # half-way would leave packs counted as merged whose entries were never read.
                    # A caller that holds every entry anyway has each frame decoded once, here.
                    f.seek(start)
                    held = [
                        _fill(_inflate(f.read(n), rows, MULTI_ENTRY), np.empty(rows, MULTI_ENTRY))
                        if self.hold
                        else _inflate(f.read(n), rows, MULTI_ENTRY)
                        for rows, n in table
                    ]
                elif body % MULTI_ENTRY.itemsize:
                    raise ValueError("truncated merged index")
            except (ValueError, OSError, KeyError, TypeError):
                return
            # One slot past the packs it names: entries naming no pack (damage) are dropped.
            remap = np.full(len(packs) + 1, -1, dtype=np.int64)
            for i, name in enumerate(packs):
                if isinstance(name, str) and name in live and name not in self.merged:
                    remap[i] = len(self.names)
                    self.names.append(name)
                    self.fields.append(fields[i])
                    self.merged.add(name)
            if framed and self.hold:
                frames: Iterable[np.ndarray] = held
            elif framed:
                del held
                frames = self._midx_frames(f, start, table)
            else:
                f.seek(start)
                frames = (
                    np.frombuffer(f.read(self.rows * MULTI_ENTRY.itemsize), dtype=MULTI_ENTRY)
                    for _ in range(0, body // MULTI_ENTRY.itemsize, self.rows)
                )
            for frame in frames:
                for i in range(0, len(frame), self.rows):
                    arr = frame[i : i + self.rows]
                    number = remap[np.minimum(arr["pack"], len(packs))]
                    keep = number >= 0
                    yield arr[keep][list(ENTRY.names)].astype(ENTRY), number[keep].astype("<u4")

    @staticmethod
    def _midx_frames(f: Any, start: int, table: list[tuple[int, int]]) -> Iterator[np.ndarray]:
        f.seek(start)
        for rows, n in table:
            yield _fill(_inflate(f.read(n), rows, MULTI_ENTRY), np.empty(rows, MULTI_ENTRY))


def _read_header(f: Any) -> tuple[dict, int, bool]:
    """(header, offset of the entries, whether they are in frames) of an index file open at
    its start."""
    head = f.read(len(IDX_MAGIC) + 4)
    magic = head[: len(IDX_MAGIC)]
    if magic not in (IDX_MAGIC, IDX_MAGIC_RAW) or len(head) < len(IDX_MAGIC) + 4:
        raise ValueError("not a copytrail pack index")
    n = int.from_bytes(head[len(IDX_MAGIC) :], "little")
    header = orjson.loads(f.read(n))
    if not isinstance(header, dict):
        raise ValueError("a pack index header that is not an object")
    return header, len(head) + n, magic == IDX_MAGIC


def load_index(fs: Any, pack_dir: str, names: list[str] | None = None) -> PackIndex:
    """Read all.midx (when present) and every live index it does not cover. `names`: the pack
    folder's listing when the caller has just made it."""
    listing = pack_listing(fs, pack_dir) if names is None else names
    scan = IndexScan(fs, pack_dir, listing, hold=True)
    parts = list(scan.chunks())
    idx_names = scan.live
    unmerged = len(idx_names - scan.merged)
    if not parts:
        return PackIndex(
            names=scan.names,
            fields=scan.fields,
            listing=idx_names,
            unmerged=unmerged,
        )
    entries = np.concatenate([e for e, _ in parts])
    packs = np.concatenate([p for _, p in parts])
    order = np.argsort(entries["sha"], kind="stable")
    entries, packs = entries[order], packs[order]
    return PackIndex(
        shas=np.ascontiguousarray(entries["sha"]),
        entries=entries,
        packs=packs,
        names=scan.names,
        fields=scan.fields,
        listing=idx_names,
        unmerged=unmerged,
    )


def write_midx(fs: Any, pack_dir: str, index: PackIndex, local: bool) -> None:
    """Merge the live indexes into all.midx (a cache: every .idx stays the authority)."""
    header = {"multi": True, "packs": index.names, "fields": index.fields}
    arr = np.empty(len(index.entries), dtype=MULTI_ENTRY)
    for name in ENTRY.names:
        arr[name] = index.entries[name]
    arr["pack"] = index.packs
    data = index_file_bytes(header, arr)
    if local:
        tmp = f"{pack_dir}/.tmp-{uuid.uuid4().hex}.midx"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, f"{pack_dir}/{MIDX_NAME}")
    else:
        fs.pipe_file(f"{pack_dir}/{MIDX_NAME}", data)


class BlockReader:
    """Reads blocks of packs, keeping the last few decompressed (neighbouring records share one)."""

    def __init__(self, fs: Any, pack_dir: str, local: bool, keep: int = 8) -> None:
        self.fs, self.dir, self.local, self.keep = fs, pack_dir, local, keep
        self._tls = threading.local()

    def _cache(self) -> OrderedDict:
        c = getattr(self._tls, "cache", None)
        if c is None:
            c = self._tls.cache = OrderedDict()
            self._tls.dctx = zstandard.ZstdDecompressor()
        return c

    def block(self, pack: str, off: int, length: int) -> bytes:
        cache = self._cache()
        key = (pack, off)
        data = cache.get(key)
        if data is not None:
            cache.move_to_end(key)
            return data
        path = f"{self.dir}/{pack}.pack"
        if self.local:
            with open(path, "rb") as f:
                f.seek(off)
                frame = f.read(length)
        else:
            frame = self.fs.cat_file(path, start=off, end=off + length)
        if len(frame) != length:
            raise ValueError(f"pack {pack} is shorter than its index says")
        data = self._tls.dctx.decompress(frame)
        cache[key] = data
        if len(cache) > self.keep:
            cache.popitem(last=False)
        return data

    def read(self, loc: Location) -> bytes:
        raw = self.block(loc.pack, loc.block_off, loc.block_len)[loc.inner : loc.inner + loc.size]
        if len(raw) != loc.size:
            raise ValueError(f"block of pack {loc.pack} is shorter than its index says")
        if loc.kind == DERIVED:
            return json_field_text(raw, loc.field or "text")
        return raw

    def forget(self, pack: str) -> None:
        cache = self._cache()
        for key in [k for k in cache if k[0] == pack]:
            del cache[key]


def rewrite_pack(
    fs: Any,
    pack_dir: str,
    local: bool,
    name: str,
    drop: set[bytes],
    reader: BlockReader,
) -> str | None:
    """Write a new pack with every entry of `name` except those in `drop`, then retire the old
    pack (index first, so no reader finds it, then its bytes). A derived text whose original is
    dropped while the text is kept is stored in full in the new pack."""
    header, arr = read_index_bytes(fs.cat_file(f"{pack_dir}/{name}.idx"))
    fields = header.get("fields", [])
    at: dict[tuple[int, int], bytes] = {}
    for e in arr:
        if e["kind"] == STORED:
            at[(int(e["block_off"]), int(e["inner"]))] = sha_bytes(e["sha"])
    writer = PackWriter(fs, pack_dir, local)
    order = np.argsort(arr["block_off"] * (1 << 32) + arr["inner"], kind="stable")
    derived_later = []
    for e in arr[order]:
        sha = sha_bytes(e["sha"])
        if sha in drop:
            continue
        loc = Location(
            name,
            int(e["kind"]),
            None,
            int(e["inner"]),
            int(e["block_off"]),
            int(e["block_len"]),
            int(e["size"]),
        )
        if e["kind"] == STORED:
            writer.add(sha, reader.read(loc))
        else:
            derived_later.append((sha, loc, fields[int(e["field"])]))
    for sha, loc, dotted in derived_later:
        source = at.get((loc.block_off, loc.inner))
        if source is None or source in drop or not writer.add_derived(sha, source, dotted):
            loc.kind, loc.field = DERIVED, dotted
            writer.add(sha, reader.read(loc))
    new = writer.close()
    if local:
        os.unlink(f"{pack_dir}/{name}.idx")
        _fsync_dir(pack_dir)
        os.unlink(f"{pack_dir}/{name}.pack")
    else:
        fs.rm_file(f"{pack_dir}/{name}.idx")
        fs.rm_file(f"{pack_dir}/{name}.pack")
    reader.forget(name)
    return new


def iter_pack_blobs(
    fs: Any, pack_dir: str, index: PackIndex, reader: BlockReader, rows: Iterable[int]
) -> Iterator[tuple[bytes, bytes | Exception]]:
    """(sha, bytes or the error reading them) for index rows, read in pack order so each block
    is decompressed once."""
    rows = sorted(rows, key=lambda r: (int(index.packs[r]), int(index.entries[r]["block_off"])))
    for r in rows:
        sha = sha_bytes(index.shas[r])
        try:
            yield sha, reader.read(index.location(r))
        except Exception as e:  # a damaged pack must be reported per blob, not stop the check
            yield sha, e


def pack_listing(fs: Any, pack_dir: str) -> list[str]:
    try:
        return [p.rsplit("/", 1)[-1] for p in fs.ls(pack_dir, detail=False)]
    except FileNotFoundError:
        return []


def live_packs(names: list[str]) -> frozenset[str]:
    """The packs of a folder listing whose index is in place (temporaries excluded)."""
    return frozenset(
        n[: -len(".idx")] for n in names if n.endswith(".idx") and n.startswith("pack-")
    )


def unindexed_packs(names: list[str]) -> list[str]:
    """Packs whose index was never written (a writer killed before sealing) and temporaries."""
    idx = live_packs(names)
    return [
        n
        for n in names
        if n.startswith(".tmp-") or (n.endswith(".pack") and n[: -len(".pack")] not in idx)
    ]


Refresh = Callable[[], PackIndex]
