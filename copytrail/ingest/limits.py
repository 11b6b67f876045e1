"""Limits that keep hostile input (zip bombs, giant members, deep nesting) from exhausting the
machine. Anything over a limit is recorded as a `refused` copy with the limit it broke."""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 8 * GiB  # a top-level file larger than this is refused unread
    max_member_bytes: int = 2 * GiB  # one archive member, after decompression
    max_archive_bytes: int = 64 * GiB  # all members of one archive, after decompression
    max_ratio: int = 200  # decompressed/compressed size of a member larger than ratio_floor
    ratio_floor: int = 16 * MiB
    max_depth: int = 4  # archives inside archives
    max_members: int = 2_000_000
    max_record_bytes: int = 256 * MiB  # one JSON Lines record

    @classmethod
    def from_options(cls, **overrides: int | None) -> Limits:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
