"""Options shared by several commands, and opening the library they name."""

from __future__ import annotations

from typing import Annotated, Any

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")]


class State:
    """Global options (`--library`, `--db`), set by the app's callback before any command."""

    library: str | None = None
    db: str | None = None
    engine: str | None = None


state = State()


def open_library(workers: int | None = None) -> Any:
    """The library the global options name. `workers` given: that many worker processes, used
    whatever the input size (the user asked for them); otherwise one per core, small work
    inline."""
    from copytrail.engine import make_executor
    from copytrail.library import Library

    executor = make_executor(state.engine, workers)
    return Library.open(state.library, db=state.db, executor=executor)


def read_small(path: Any, limit: int = 1 << 20) -> bytes:
    """A small input file (a note, a proof), refused with a reason when missing or too big."""
    from pathlib import Path

    from copytrail.errors import InvalidInput

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"{p}: no such file")
    with open(p, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{p} is larger than {limit} bytes; is it the right file?")
    return data
