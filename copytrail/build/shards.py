"""Token shards as nanoGPT and Megatron-style loaders read them: `shard-NNNNN.bin` is the raw
token ids (uint16 when the vocabulary fits, else uint32), every document followed by EOS;
`shard-NNNNN.idx` is int64 token offsets, one per document start plus the end. Both open with
`numpy.memmap(path, dtype=..., mode="r")`. A document is never split across shards."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


@dataclass
class ShardWriter:
    root: Path
    dtype: np.dtype
    eos: int
    shard_tokens: int
    shards: list[dict[str, Any]] = field(default_factory=list)
    _parts: list[np.ndarray] = field(default_factory=list)
    _offsets: list[int] = field(default_factory=lambda: [0])

    def add(self, ids: list[int]) -> tuple[int, int, int]:
        """Append one document; return (shard number, token start, token end) within the shard,
        the end excluding the EOS that follows it."""
        arr = np.asarray(ids, dtype=self.dtype)
        shard = len(self.shards)
        start = self._offsets[-1]
        self._parts.append(arr)
        self._parts.append(np.asarray([self.eos], dtype=self.dtype))
        self._offsets.append(start + len(arr) + 1)
        if self._offsets[-1] >= self.shard_tokens:
            self.flush()
        return shard, start, start + len(arr)

    def flush(self) -> None:
        if len(self._offsets) < 2:
            return
        n = len(self.shards)
        data = np.concatenate(self._parts).tobytes()
        index = np.asarray(self._offsets, dtype="<i8").tobytes()
        bin_name, idx_name = f"shard-{n:05d}.bin", f"shard-{n:05d}.idx"
        (self.root / bin_name).write_bytes(data)
        (self.root / idx_name).write_bytes(index)
        self.shards.append(
            {
                "file": bin_name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "index": idx_name,
                "index_sha256": hashlib.sha256(index).hexdigest(),
                "tokens": len(data) // self.dtype.itemsize,
                "documents": len(self._offsets) - 1,
            }
        )
        self._parts, self._offsets = [], [0]
