"""Hostile and broken input: every bad file is recorded with a reason, the run goes on, nothing
escapes the store, and a re-run adds nothing."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from copytrail import Library, samples
from copytrail.ingest.limits import Limits

from .conftest import EXAMPLES, pooled

LIMITS = Limits(
    max_file_bytes=40 << 20,
    max_member_bytes=8 << 20,
    ratio_floor=1 << 20,
    max_ratio=100,
    max_depth=3,
    max_record_bytes=1 << 20,
)


def _zip_with(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return buf.getvalue()


def _mark_encrypted(zip_bytes: bytes, name: bytes) -> bytes:
    """Set the 'encrypted' flag of one member in the central directory, as a real
    password-protected zip has (zipfile cannot write encrypted members itself)."""
    data = bytearray(zip_bytes)
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = int.from_bytes(data[pos + 28 : pos + 30], "little")
        if bytes(data[pos + 46 : pos + 46 + name_len]) == name:
            data[pos + 8] |= 0x1
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(data)


def _tar_with_link() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("escape-link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tf.addfile(link)
        info = tarfile.TarInfo("../../outside.txt")
        data = b"a member whose name climbs out of the archive\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    d = tmp_path / "hostile"
    pdf = samples.make_pdf([["fine page"]])
    nested = samples.make_zip(
        {
            "l1.zip": samples.make_zip(
                {
                    "l2.zip": samples.make_zip(
                        {"l3.zip": samples.make_zip({"deep.txt": b"too deep"})}
                    )
                }
            )
        }
    )
    files = {
        "good.txt": (EXAMPLES / "5200" / "5200.txt").read_bytes(),
        "empty.txt": b"",
        "binary.txt": os.urandom(4096),
        "truncated.pdf": pdf[: len(pdf) // 2],
        "mislabelled.txt": pdf,
        "corrupt.zip": b"PK\x03\x04" + os.urandom(500),
        "truncated.jsonl.gz": samples.make_jsonl(
            [{"text": os.urandom(1500).hex()} for i in range(1000)], "gzip"
        )[:-2000],
        "truncated.tar.gz": samples.make_tar(
            {f"m{i}.txt": os.urandom(3000).hex().encode() for i in range(20)}, gz=True
        )[:-3000],
        "bomb.zip": _zip_with([("zeros.txt", b"\0" * (3 << 20)), ("ok.txt", b"fine text")]),
        "bomb.tar.gz": samples.make_tar(
            {"zeros.bin": b"0" * (6 << 20), "after.txt": b"x"}, gz=True
        ),
        "oversized.zip": _zip_with([("big.txt", os.urandom(9 << 20).hex().encode()[: 9 << 20])]),
        "traversal.zip": _zip_with(
            [
                ("../../evil.txt", b"evil one\n"),
                ("/abs/evil2.txt", b"evil two\n"),
                ("C:\\win\\evil3.txt", b"evil three\n"),
                ("secret.txt", b"locked"),
            ]
        ),
        "links.tar": _tar_with_link(),
        "nested.zip": nested,
        "huge-line.txt": b"word " * (3 << 20),  # one 15 MB line
        "big-record.jsonl": b'{"text": "' + b"y" * (2 << 20) + b'"}\n{"text": "small one"}\n',
        "too-big.bin": b"z" * (41 << 20),
    }
    files["traversal.zip"] = _mark_encrypted(files["traversal.zip"], b"secret.txt")
    for name, data in files.items():
        samples.write(d / name, data)
    return d


def test_hostile_set_is_recorded_with_reasons(lib: Library, hostile: Path, tmp_path: Path):
    s = pooled(lib).ingest([str(hostile)], source="pg", dataset="h", limits=LIMITS)
    c = {x["path"]: x for x in lib.copies()}

    def reason(path: str) -> str:
        assert c[path]["status"] in ("unreadable", "refused"), (path, c[path])
        return c[path]["reason"]

    assert c["hostile/good.txt"]["status"] == "ok"
    assert c["hostile/mislabelled.txt"]["status"] == "ok"
    assert c["hostile/mislabelled.txt"]["media_type"] == "application/pdf"
    assert reason("hostile/empty.txt") == "empty file"
    assert "binary" in reason("hostile/binary.txt")
    assert "PDF" in reason("hostile/truncated.pdf")
    assert "zip" in reason("hostile/corrupt.zip")
    # A truncated stream keeps what was read before the damage, and the damaged file itself.
    assert "truncated" in reason("hostile/truncated.jsonl.gz")
    assert sum(p.startswith("hostile/truncated.jsonl.gz#L") for p in c) > 0
    assert "truncated" in reason("hostile/truncated.tar.gz")
    assert "decompression bomb" in reason("hostile/bomb.zip!/zeros.txt")
    assert c["hostile/bomb.zip!/zeros.txt"]["sha256"] is None  # refused unread
    assert c["hostile/bomb.zip!/ok.txt"]["status"] == "ok"
    assert "decompression bomb" in reason("hostile/bomb.tar.gz")
    assert "limit" in reason("hostile/oversized.zip!/big.txt")
    assert "encrypted" in reason("hostile/traversal.zip!/secret.txt")
    for label, original in [
        ("evil.txt", "../../evil.txt"),
        ("abs/evil2.txt", "/abs/evil2.txt"),
        ("win/evil3.txt", "C:\\win\\evil3.txt"),
    ]:
        copy = c[f"hostile/traversal.zip!/{label}"]
        assert copy["status"] == "ok" and copy["extra"]["member_name"] == original
    assert "symlink" in reason("hostile/links.tar!/escape-link")
    assert c["hostile/links.tar!/outside.txt"]["status"] == "ok"
    assert "nested deeper" in reason("hostile/nested.zip!/l1.zip!/l2.zip!/l3.zip")
    assert (
        c["hostile/huge-line.txt"]["status"] == "ok"
        and c["hostile/huge-line.txt"]["words"] == 3 << 20
    )
    assert "record is over" in reason("hostile/big-record.jsonl#L1")
    assert c["hostile/big-record.jsonl#L2"]["status"] == "ok"
    assert "limit" in reason("hostile/too-big.bin") and c["hostile/too-big.bin"]["sha256"] is None
    # Nothing was written outside the library: no member name reached the filesystem.
    for root in (tmp_path, tmp_path.parent):
        assert not list(root.glob("**/evil*.txt")) and not (root / "outside.txt").exists()
    # Unreadable copies keep their bytes.
    assert lib.store.get(c["hostile/binary.txt"]["sha256"]) == (hostile / "binary.txt").read_bytes()
    assert s.unreadable == sum(x["status"] != "ok" for x in c.values())
    assert lib.verify().ok

    again = lib.ingest([str(hostile)], source="pg", dataset="h", limits=LIMITS)
    assert again.copies_added == 0 and again.copies_existing == s.copies_added
    assert len(list(lib.copies())) == len(c)
    assert lib.verify().ok
