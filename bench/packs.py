"""Pack compression benchmark (not a test): recompress the blocks of a library's packs with
several zstd settings and print, for each, the size against the packs as stored, the compression
rate and the time to decompress one block (the cost of every random read of a record).

    .venv/bin/python bench/packs.py LIBRARY_DIR [--packs 4]

LIBRARY_DIR is a local library, such as one `bench/scale.py` leaves in its --work folder. Packs
are chosen the same way for every setting: the largest indexes (many small records) and the
smallest (few large blobs, such as books), read whole and cut again into BLOCK_RAW blocks.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import zstandard

from copytrail.store import packs


def settings() -> dict[str, zstandard.ZstdCompressor]:
    chosen = zstandard.ZstdCompressionParameters(
        strategy=zstandard.STRATEGY_DFAST, **packs.BLOCK_PARAMS
    )
    return {
        "level 1": zstandard.ZstdCompressor(level=1),
        "copytrail (BLOCK_PARAMS)": zstandard.ZstdCompressor(compression_params=chosen),
        "level 3": zstandard.ZstdCompressor(level=3),
        "level 4": zstandard.ZstdCompressor(level=4),
    }


def raw_blocks(idx_path: str) -> tuple[bytes, int]:
    """The uncompressed blocks of one pack laid end to end, and the pack's size on disk."""
    with open(idx_path, "rb") as f:
        _, entries = packs.read_index_bytes(f.read())
    offsets, lengths = entries["block_off"].tolist(), entries["block_len"].tolist()
    spans = sorted(set(zip(offsets, lengths, strict=True)))
    with open(idx_path[: -len(".idx")] + ".pack", "rb") as f:
        data = f.read()
    dctx = zstandard.ZstdDecompressor()
    return b"".join(dctx.decompress(data[o : o + n]) for o, n in spans), len(data)


def measure(label: str, raw: bytes, stored: int) -> None:
    step = packs.BLOCK_RAW
    for name, cctx in settings().items():
        t = time.perf_counter()
        frames = [cctx.compress(raw[i : i + step]) for i in range(0, len(raw), step)]
        took = time.perf_counter() - t
        dctx = zstandard.ZstdDecompressor()
        sample = frames[:50]
        t = time.perf_counter()
        for frame in sample:
            dctx.decompress(frame)
        read_ms = (time.perf_counter() - t) / len(sample) * 1e3
        size = sum(map(len, frames))
        print(
            f"  {label:8} {name:26} {size / stored:6.3f} of stored  "
            f"{len(raw) / took / 1e6:5.0f} MB/s compress  {read_ms:.2f} ms a block"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("library")
    ap.add_argument("--packs", type=int, default=4, help="packs of each kind to read")
    args = ap.parse_args()
    idxs = glob.glob(os.path.join(args.library, "blobs", packs.PACK_DIR, "pack-*.idx"))
    if not idxs:
        sys.exit(f"no packs under {args.library}/blobs/{packs.PACK_DIR}: give a library folder")
    idxs.sort(key=os.path.getsize)
    groups = {"records": idxs[-args.packs :], "books": idxs[: args.packs]}
    for label, group in groups.items():
        raw, stored = b"", 0
        for path in group:
            r, n = raw_blocks(path)
            raw += r
            stored += n
        mb = f"{len(raw) / 1e6:.1f} MB raw, {stored / 1e6:.1f} MB stored"
        print(f"{label}: {len(group)} packs, {mb}")
        measure(label, raw, stored)


if __name__ == "__main__":
    main()
