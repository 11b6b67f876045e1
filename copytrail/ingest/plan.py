"""Turn the paths a user names into tasks for the workers.

Plain documents become one task each (the worker reads the file). Containers (JSON Lines, Parquet,
zip and tar archives, nested up to a limit) are opened here and split into batches, so a 50 GB
archive streams through in flat memory and its members are spread over all workers. Nothing in
this module writes to the filesystem: archive member names are only ever used as labels.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import zstandard

from copytrail.ingest import formats
from copytrail.ingest.limits import Limits
from copytrail.ingest.readers import hf

Task = dict[str, Any]

DOC_BATCH_BYTES = 8 << 20
DOC_BATCH_ITEMS = 64
RECORD_BATCH_BYTES = 8 << 20
RECORD_BATCH_LINES = 2000
FILES_PER_TASK = 64  # small documents named on the command line, per task (and per pack)
FILE_GROUP_BYTES = 8 << 20
RANGE_BYTES = 16 << 20  # of an uncompressed JSON Lines file per worker task (a pack each)


@dataclass
class Input:
    fs_path: str
    path: str  # path inside the dataset
    size: int
    refused: str | None = None  # why it is not read (not a regular file, a link out, ...)


@dataclass
class PlanStats:
    containers: list[dict[str, Any]] = field(default_factory=list)


def printable_name(name: str) -> str:
    """A dataset path for a file or member name, valid UTF-8 whatever bytes the name had: an
    undecodable byte shows as \\xNN (Python hands such names over as lone surrogates)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogateescape") if _escaped_only(name) else None
        if raw is not None:
            return raw.decode("utf-8", "backslashreplace")
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _escaped_only(name: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in name)


def _not_regular(st: os.stat_result) -> str | None:
    if stat.S_ISREG(st.st_mode):
        return None
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(st.st_mode)
        else "a device"
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        else "a socket"
        if stat.S_ISSOCK(st.st_mode)
        else "not a regular file"
    )
    return f"{kind}: only regular files are read"


def _entry(fp: str, rel: str, root: str | None) -> Input:
    """One path found on disk, refused with a reason unless it is a regular file (inside
    `root` when it was reached through a link under a named directory)."""
    path = printable_name(rel)
    try:
        lst = os.lstat(fp)
    except OSError as e:
        return Input(fp, path, 0, f"cannot be read: {e.strerror}")
    if stat.S_ISLNK(lst.st_mode):
        try:
            st = os.stat(fp)
        except OSError as e:  # dangling, a loop, or no permission on the target
            return Input(fp, path, 0, f"symbolic link that cannot be followed ({e.strerror})")
        target = os.path.realpath(fp)
        if root is not None and os.path.commonpath([target, root]) != root:
            return Input(fp, path, 0, "symbolic link to a file outside the named directory")
    else:
        st = lst
    reason = _not_regular(st)
    return Input(fp, path, 0 if reason else st.st_size, reason)


def discover(paths: list[str]) -> list[Input]:
    """Files under the given paths, sorted, each with its path relative to the named path's parent
    (a named directory keeps its own name: `ingest books/` records `books/a.txt`). Anything that
    is not a regular file (a FIFO, a device, a dangling or looping link, a link out of the named
    directory) is listed with the reason it will not be read, never opened."""
    found: list[Input] = []
    for p in paths:
        p = os.path.abspath(p)
        if not os.path.lexists(p):
            raise FileNotFoundError(p)
        base = os.path.dirname(p.rstrip(os.sep))
        if os.path.isdir(p):
            root = os.path.realpath(p)
            for dirpath, dirnames, filenames in os.walk(p):  # does not follow directory links
                dirnames.sort()
                linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                for d in linked:  # a directory link is refused like a file link would be
                    dirnames.remove(d)
                    fp = os.path.join(dirpath, d)
                    rel = os.path.relpath(fp, base).replace(os.sep, "/")
                    found.append(Input(fp, printable_name(rel), 0, "symbolic link to a directory"))
                for name in sorted(filenames):
                    fp = os.path.join(dirpath, name)
                    found.append(_entry(fp, os.path.relpath(fp, base).replace(os.sep, "/"), root))
        else:
            found.append(_entry(p, os.path.basename(p), None))
    return found


def safe_member_name(name: str) -> tuple[str, bool]:
    """A label for an archive member that cannot escape: no absolute path, no `..`, no backslash.
    Returns (label, changed)."""
    cleaned = printable_name(name.replace("\\", "/"))
    if len(cleaned) > 1 and cleaned[1] == ":":  # C:/...
        cleaned = cleaned[2:]
    parts = [p for p in cleaned.split("/") if p not in ("", ".", "..")]
    label = posixpath.join(*parts) if parts else "_"
    return label, label != name


def _file_group(tasks: list[Task]) -> Task:
    if len(tasks) == 1:
        return tasks[0]
    return {"op": "files", "files": tasks, "progress": sum(t["progress"] for t in tasks)}


COMPRESSED_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ")


def jsonl_ranges(fs_path: str, range_bytes: int) -> tuple[str, list[tuple[int, int, int]]] | None:
    """(SHA-256 of the file, [(start, end, number of the first line)]) for an uncompressed JSON
    Lines file, cut after a line break about every `range_bytes`; one pass at memory speed.
    None when the file is compressed or has a line longer than a range (the streaming planner
    handles those)."""
    with open(fs_path, "rb") as f:
        if f.read(6).startswith(COMPRESSED_MAGIC):
            return None
        f.seek(0)
        h = hashlib.sha256()
        ranges: list[tuple[int, int, int]] = []
        start = pos = 0
        lines_before = 0  # line breaks before `start`
        lines_seen = 0
        while chunk := f.read(range_bytes):
            h.update(chunk)
            cut = chunk.rfind(b"\n")
            if cut < 0 and len(chunk) == range_bytes:
                return None
            lines_seen += chunk.count(b"\n")
            if cut >= 0:
                end = pos + cut + 1
                ranges.append((start, end, lines_before + 1))
                start, lines_before = end, lines_seen
            pos += len(chunk)
        if start < pos:  # a last line without a line break
            ranges.append((start, pos, lines_before + 1))
    return h.hexdigest(), ranges


def _open_decompressed(raw: BinaryIO) -> BinaryIO:
    """A stream of the decompressed bytes, by magic: gzip, zstd, bzip2, xz, or none."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    return raw


class Planner:
    def __init__(self, limits: Limits, text_field: str) -> None:
        self.limits = limits
        self.text_field = text_field
        self.stats = PlanStats()

    # ---- top level -------------------------------------------------------------------------
    def tasks(self, inputs: list[Input]) -> Iterator[Task]:
        # Small documents travel in groups: one task, one pack, for up to FILES_PER_TASK of them.
        group: list[Task] = []
        for task in self._tasks(inputs):
            if task["op"] == "file" and task["progress"] < FILE_GROUP_BYTES:
                group.append(task)
                if len(group) >= FILES_PER_TASK or sum(t["progress"] for t in group) >= (
                    FILE_GROUP_BYTES
                ):
                    yield _file_group(group)
                    group = []
                continue
            yield task
        if group:
            yield _file_group(group)

    def _tasks(self, inputs: list[Input]) -> Iterator[Task]:
        for inp in inputs:
            if inp.refused:
                yield {
                    "op": "refused",
                    "path": inp.path,
                    "size": 0,
                    "reason": inp.refused,
                    "progress": 0,
                }
                continue
            if inp.size > self.limits.max_file_bytes:
                yield {
                    "op": "refused",
                    "path": inp.path,
                    "size": inp.size,
                    "reason": f"file is {inp.size} bytes, over the "
                    f"{self.limits.max_file_bytes}-byte limit (raise --max-file-bytes)",
                    "progress": inp.size,
                }
                continue
            if hf.is_metadata_file(inp.fs_path):
                # dataset_info.json & co. of a Hugging Face dataset folder: what they say is
                # recorded on each record of the folder's .arrow files, not as a document.
                yield {"op": "noop", "progress": inp.size}
                continue
            with open(inp.fs_path, "rb") as f:
                head = f.read(1024)
            kind = formats.detect(inp.path, head)
            if kind not in formats.CONTAINERS:
                yield {
                    "op": "file",
                    "fs_path": inp.fs_path,
                    "path": inp.path,
                    "kind": kind,
                    "progress": inp.size,
                }
                continue
            yield from self._top_container(inp, kind)

    def _top_container(self, inp: Input, kind: str) -> Iterator[Task]:
        if kind == formats.JSONL:
            ranges = jsonl_ranges(inp.fs_path, RANGE_BYTES)
            if ranges is not None:
                yield from self._jsonl_range_tasks(inp, *ranges)
                return
        with open(inp.fs_path, "rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
        container = {"path": inp.path, "sha256": sha, "size": inp.size, "kind": kind}
        self.stats.containers.append(container)
        done = 0

        def progress(pos: int) -> int:  # bytes of the raw file consumed since the last call
            nonlocal done
            delta, done = max(0, pos - done), max(done, pos)
            return delta

        try:
            with open(inp.fs_path, "rb") as raw:
                if kind == formats.PARQUET:
                    yield from self._parquet(
                        inp.path, container, fs_path=inp.fs_path, size=inp.size
                    )
                    done = inp.size
                elif kind == formats.ARROW:
                    yield from self._arrow(inp.path, container, fs_path=inp.fs_path, size=inp.size)
                    done = inp.size
                else:
                    yield from self._container_stream(
                        raw,
                        kind,
                        inp.path,
                        container,
                        depth=0,
                        progress=lambda: progress(raw.tell()),
                    )
        except Exception as e:  # corrupt, truncated or hostile container: keep it with a reason
            yield {
                "op": "refused_file" if isinstance(e, ArchiveRefused) else "unreadable_file",
                "fs_path": inp.fs_path,
                "path": inp.path,
                "kind": kind,
                "reason": _container_error(kind, e),
                "progress": 0,
            }
        yield {"op": "noop", "progress": max(0, inp.size - done)}

    def _jsonl_range_tasks(
        self, inp: Input, sha: str, ranges: list[tuple[int, int, int]]
    ) -> Iterator[Task]:
        """An uncompressed JSON Lines file on disk: each worker reads its own byte range (lines
        never cross ranges), so records are not read and pickled by this process."""
        container = {"path": inp.path, "sha256": sha, "size": inp.size, "kind": formats.JSONL}
        self.stats.containers.append(container)
        for start, end, first_line in ranges:
            yield {
                "op": "jsonl_range",
                "fs_path": inp.fs_path,
                "path": inp.path,
                "start": start,
                "end": end,
                "first_line": first_line,
                "text_field": self.text_field,
                "container": sha,
                "progress": end - start,
            }
        done = ranges[-1][1] if ranges else 0
        yield {"op": "noop", "progress": max(0, inp.size - done)}

    # ---- containers from a stream or bytes -------------------------------------------------
    def _container_stream(
        self,
        raw: BinaryIO,
        kind: str,
        path: str,
        container: dict,
        depth: int,
        progress: Callable[[], int],
    ) -> Iterator[Task]:
        if kind == formats.JSONL:
            yield from self._jsonl(_open_decompressed(raw), path, container, progress)
        elif kind == formats.TAR:
            yield from self._tar(raw, path, container, depth, progress)
        elif kind == formats.ZIP:
            yield from self._zip(raw, path, container, depth, progress)
        elif kind == formats.PARQUET:
            yield from self._parquet(path, container, data=raw.read())
        elif kind == formats.ARROW:
            yield from self._arrow(path, container, data=raw.read())
        else:
            raise ValueError(f"not a container: {kind}")

    def _jsonl(
        self, stream: BinaryIO, path: str, container: dict, progress: Callable[[], int]
    ) -> Iterator[Task]:
        limit = self.limits.max_record_bytes
        lines: list[tuple[int, bytes]] = []
        reader = io.BufferedReader(stream, 1 << 20)  # type: ignore[arg-type]
        yield from _then_rest(
            self._jsonl_lines(reader, path, container, progress, limit, lines),
            lambda: self._records_task(path, lines, container, progress()) if lines else None,
        )

    def _jsonl_lines(
        self,
        reader: io.BufferedReader,
        path: str,
        container: dict,
        progress: Callable[[], int],
        limit: int,
        lines: list,
    ) -> Iterator[Task]:
        size = 0
        line_no = 0
        while True:
            line = reader.readline(limit + 1)
            if not line:
                break
            line_no += 1
            if len(line) > limit and not line.endswith(b"\n"):
                skipped = len(line)
                while (chunk := reader.readline(1 << 20)) and not chunk.endswith(b"\n"):
                    skipped += len(chunk)
                skipped += len(chunk)
                yield {
                    "op": "refused",
                    "path": f"{path}#L{line_no}",
                    "size": skipped,
                    "reason": f"record is over the {limit}-byte limit (--max-record-bytes)",
                    "progress": 0,
                    "extra": {"container": container["sha256"]},
                }
                continue
            if not line.strip():
                continue
            lines.append((line_no, line))
            size += len(line)
            if size >= RECORD_BATCH_BYTES or len(lines) >= RECORD_BATCH_LINES:
                yield self._records_task(path, list(lines), container, progress())
                lines.clear()
                size = 0

    def _records_task(self, path: str, lines: list, container: dict, progress: int) -> Task:
        return {
            "op": "records",
            "path": path,
            "lines": lines,
            "text_field": self.text_field,
            "container": container["sha256"],
            "progress": progress,
        }

    def _parquet(
        self,
        path: str,
        container: dict,
        fs_path: str | None = None,
        data: bytes | None = None,
        size: int = 0,
    ) -> Iterator[Task]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(fs_path if fs_path else io.BytesIO(data))  # type: ignore[arg-type]
        groups = pf.num_row_groups
        first_row = 0
        for g in range(groups):
            rows = pf.metadata.row_group(g).num_rows
            yield {
                "op": "parquet",
                "fs_path": fs_path,
                "data": None if fs_path else data,
                "path": path,
                "row_group": g,
                "first_row": first_row,
                "text_field": self.text_field,
                "container": container["sha256"],
                "progress": size // max(groups, 1),
                "hf": hf.parquet_facts(path),
            }
            first_row += rows

    def _arrow(
        self,
        path: str,
        container: dict,
        fs_path: str | None = None,
        data: bytes | None = None,
        size: int = 0,
    ) -> Iterator[Task]:
        """An Arrow IPC file (stream or file format), as `datasets.save_to_disk` writes: one
        task per run of record batches, read by the worker from the file itself."""
        facts = hf.arrow_facts(fs_path) if fs_path else {}
        spans = hf.batch_spans(fs_path, data, RECORD_BATCH_LINES)
        for first_batch, n_batches, first_row in spans:
            yield {
                "op": "arrow",
                "fs_path": fs_path,
                "data": None if fs_path else data,
                "path": path,
                "first_batch": first_batch,
                "batches": n_batches,
                "first_row": first_row,
                "text_field": self.text_field,
                "container": container["sha256"],
                "progress": size // max(len(spans), 1),
                "hf": facts,
            }

    def _tar(
        self, raw: BinaryIO, path: str, container: dict, depth: int, progress: Callable[[], int]
    ) -> Iterator[Task]:
        stream = _open_decompressed(raw)
        batch = _DocBatch()
        yield from _then_rest(
            self._tar_members(stream, raw, path, container, depth, progress, batch),
            lambda: batch.task(progress()) if batch.items else None,
        )

    def _tar_members(
        self,
        stream: BinaryIO,
        raw: BinaryIO,
        path: str,
        container: dict,
        depth: int,
        progress: Callable[[], int],
        batch: _DocBatch,
    ) -> Iterator[Task]:
        total = 0
        members = 0
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                members += 1
                label, changed = safe_member_name(m.name)
                mpath = f"{path}!/{label}"
                extra = _member_extra(container, m.name, changed)
                if members > self.limits.max_members:
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": m.size,
                        "extra": extra,
                        "reason": f"archive has more than {self.limits.max_members} members "
                        "(--max-members)",
                        "progress": 0,
                    }
                    break
                if m.isdir():
                    continue
                if not m.isfile():
                    what = "symlink" if m.issym() else "hard link" if m.islnk() else "special file"
                    target = f" to {m.linkname!r}" if m.linkname else ""
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": 0,
                        "extra": extra,
                        "reason": f"tar member is a {what}{target}, not a regular file",
                        "progress": 0,
                    }
                    continue
                reason = self._member_refusal(m.size, None, total)
                if reason:
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": m.size,
                        "reason": reason,
                        "extra": extra,
                        "progress": 0,
                    }
                    continue
                f = tf.extractfile(m)
                data = f.read() if f else b""
                total += len(data)
                yield from self._member(
                    data, mpath, label, container, depth, extra, batch, progress
                )
                consumed = raw.tell() if hasattr(raw, "tell") else 0
                if (
                    total > self.limits.ratio_floor
                    and consumed
                    and total > self.limits.max_ratio * consumed
                ):
                    raise ArchiveRefused(
                        f"archive inflates more than {self.limits.max_ratio}:1 "
                        f"({total} bytes from {consumed}); refused as a decompression bomb"
                    )

    def _zip(
        self, raw: BinaryIO, path: str, container: dict, depth: int, progress: Callable[[], int]
    ) -> Iterator[Task]:
        batch = _DocBatch()
        yield from _then_rest(
            self._zip_members(raw, path, container, depth, progress, batch),
            lambda: batch.task(progress()) if batch.items else None,
        )

    def _zip_members(
        self,
        raw: BinaryIO,
        path: str,
        container: dict,
        depth: int,
        progress: Callable[[], int],
        batch: _DocBatch,
    ) -> Iterator[Task]:
        total = 0
        with zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
            allowed = self._check_zip_layout(infos, raw)
            for i, info in enumerate(infos):
                label, changed = safe_member_name(info.filename)
                mpath = f"{path}!/{label}"
                extra = _member_extra(container, info.filename, changed)
                if i >= self.limits.max_members:
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": info.file_size,
                        "extra": extra,
                        "reason": f"archive has more than {self.limits.max_members} members "
                        "(--max-members)",
                        "progress": 0,
                    }
                    break
                if info.is_dir():
                    continue
                if info.flag_bits & 0x1:
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": info.file_size,
                        "extra": extra,
                        "reason": "zip member is encrypted (password required)",
                        "progress": 0,
                    }
                    continue
                reason = self._member_refusal(info.file_size, info.compress_size, total, allowed)
                if reason:
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": info.file_size,
                        "reason": reason,
                        "extra": extra,
                        "progress": 0,
                    }
                    continue
                try:
                    with zf.open(info) as f:
                        # Read one byte past the declared size: a lying header cannot inflate more.
                        data = f.read(min(info.file_size, self.limits.max_member_bytes) + 1)
                        if len(data) > info.file_size:
                            raise zipfile.BadZipFile("member inflates past its declared size")
                except (
                    zipfile.BadZipFile,
                    zlib_errors(),
                    EOFError,
                    OSError,
                    RuntimeError,  # zipfile: unsupported compression method, or a password needed
                ) as e:
                    yield {
                        "op": "refused",
                        "path": mpath,
                        "size": info.file_size,
                        "extra": extra,
                        "reason": f"zip member could not be read: {e}",
                        "progress": 0,
                    }
                    continue
                total += len(data)
                yield from self._member(
                    data, mpath, label, container, depth, extra, batch, progress
                )

    def _check_zip_layout(self, infos: list[zipfile.ZipInfo], raw: BinaryIO) -> int:
        """Refuse a zip whose entries overlap (several entries sharing one deflated stream is how
        a 30 KB file inflates to gigabytes). Returns how many bytes its members may inflate to
        in all."""
        here = raw.tell()
        archive_size = raw.seek(0, io.SEEK_END)
        raw.seek(here)
        files = sorted((i for i in infos if not i.is_dir()), key=lambda i: i.header_offset)
        for a, b in zip(files, files[1:], strict=False):
            if a.header_offset + a.compress_size > b.header_offset:
                raise ArchiveRefused(
                    "zip entries overlap (several members share the same compressed bytes): "
                    "refused as a decompression bomb"
                )
        return self.limits.max_inflated(archive_size)

    def _member_refusal(
        self, size: int, compressed: int | None, total: int, allowed: int | None = None
    ) -> str | None:
        """Why a member must not be read, if it must not: its own size or ratio, or the bytes
        the whole archive has inflated to so far (`total`) against what it may (`allowed`)."""
        lim = self.limits
        if size > lim.max_member_bytes:
            return (
                f"member is {size} bytes, over the {lim.max_member_bytes}-byte limit "
                "(--max-member-bytes)"
            )
        if total + size > lim.max_archive_bytes:
            return (
                f"archive members exceed {lim.max_archive_bytes} bytes in all (--max-archive-bytes)"
            )
        if allowed is not None and total + size > allowed:
            return (
                f"the archive would inflate past {allowed} bytes in all with this member "
                f"(limit {lim.max_ratio}:1 of the archive's size); refused as a decompression bomb"
            )
        if (
            compressed is not None
            and size > lim.ratio_floor
            and size > lim.max_ratio * max(compressed, 1)
        ):
            return (
                f"member inflates {size // max(compressed, 1)}:1 "
                f"(limit {lim.max_ratio}:1); refused as a decompression bomb"
            )
        return None

    def _member(
        self,
        data: bytes,
        mpath: str,
        label: str,
        container: dict,
        depth: int,
        extra: dict,
        batch: _DocBatch,
        progress: Callable[[], int],
    ) -> Iterator[Task]:
        kind = formats.detect(label, data[:1024])
        if kind in formats.CONTAINERS:
            if depth + 1 >= self.limits.max_depth:
                yield {
                    "op": "refused_data",
                    "data": data,
                    "path": mpath,
                    "kind": kind,
                    "extra": extra,
                    "progress": 0,
                    "reason": f"archive nested deeper than {self.limits.max_depth} levels "
                    "(--max-depth)",
                }
                return
            inner = {
                "path": mpath,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "kind": kind,
                "inside": container["sha256"],
            }
            self.stats.containers.append(inner)
            try:
                yield from self._container_stream(
                    io.BytesIO(data), kind, mpath, inner, depth + 1, progress=lambda: 0
                )
            except Exception as e:
                yield {
                    "op": "refused_data" if isinstance(e, ArchiveRefused) else "unreadable_data",
                    "data": data,
                    "path": mpath,
                    "kind": kind,
                    "extra": extra,
                    "reason": _container_error(kind, e),
                    "progress": 0,
                }
            return
        batch.add(mpath, data, kind, extra)
        if batch.full():
            yield batch.task(progress())


def _then_rest(tasks: Iterator[Task], rest: Callable[[], Task | None]) -> Iterator[Task]:
    """The tasks of a container, then the partly filled last batch (`rest`). When the
    container breaks midway, the batch read so far is still handed on, so its items are
    recorded, before the error goes up to be recorded against the container."""
    try:
        yield from tasks
    except Exception:
        last = rest()
        if last is not None:
            yield last
        raise
    last = rest()
    if last is not None:
        yield last


class ArchiveRefused(Exception):
    pass


def zlib_errors() -> type[Exception]:
    import zlib

    return zlib.error


def _member_extra(container: dict, original_name: str, changed: bool) -> dict:
    extra: dict[str, Any] = {"container": container["sha256"]}
    if changed:
        extra["member_name"] = original_name
        extra["member_name_sanitized"] = True
    return extra


def _container_error(kind: str, e: Exception) -> str:
    if isinstance(e, ArchiveRefused):
        return str(e)
    what = {
        "jsonl": "JSON Lines file",
        "tar": "tar archive",
        "zip": "zip archive",
        "parquet": "Parquet file",
    }.get(kind, kind)
    return f"corrupt or truncated {what}: {type(e).__name__}: {e}"[:500]


class _DocBatch:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, str, dict]] = []
        self.bytes = 0

    def add(self, path: str, data: bytes, kind: str, extra: dict) -> None:
        self.items.append((path, data, kind, extra))
        self.bytes += len(data)

    def full(self) -> bool:
        return self.bytes >= DOC_BATCH_BYTES or len(self.items) >= DOC_BATCH_ITEMS

    def task(self, progress: int) -> Task:
        t = {"op": "docs", "items": self.items, "progress": progress}
        self.items, self.bytes = [], 0
        return t
