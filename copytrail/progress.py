"""Progress reporting without a UI dependency: the CLI plugs in a rich bar, the API a no-op."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total_bytes: int, total_files: int) -> None: ...

    def advance(self, nbytes: int, items: int, errors: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, total_bytes: int, total_files: int) -> None:
        pass

    def advance(self, nbytes: int, items: int, errors: int) -> None:
        pass

    def finish(self) -> None:
        pass
