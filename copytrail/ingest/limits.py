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
    # HTML parsers slow down superlinearly with nesting (200,000 nested <div> take minutes);
    # browsers flatten past 512 levels. Deeper documents are refused before parsing.
    max_html_depth: int = 1024
    # An EPUB may not list one spine document more often than this (a 2 KB EPUB repeating a
    # 1 MB chapter 1,000 times would extract 1 GB of text).
    max_spine_repeats: int = 3

    def max_inflated(self, compressed: int) -> int:
        """Most bytes a container of `compressed` bytes may inflate to in all: the ratio limit
        above the floor, and never past the archive limit."""
        return min(self.max_archive_bytes, max(self.ratio_floor, self.max_ratio * compressed))

    @classmethod
    def from_options(cls, **overrides: int | None) -> Limits:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
