"""What a subsystem needs from a library, and nothing more.

Subsystems (ingest, audit, build, guard, retention) take a `Context`, or narrower pieces of it
(a connection, a store, an executor), never the `Library` facade. That keeps each folder
readable and testable alone, and lets the CLI, the HTTP API and tests share one set of objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from copytrail.engine.base import Executor
from copytrail.store.blobs import BlobStore

T = TypeVar("T")


class Caches:
    """Long-lived objects of one open library (loaded guard indexes, the evidence caches of
    checks), made on first use. Owned by the library, shared by the contexts made from it, so a
    server's checks reuse what earlier checks loaded."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._items:
                self._items[key] = make()
            return self._items[key]


@dataclass(frozen=True)
class Context:
    db: Engine  # the ledger database (SQLAlchemy engine): log and catalog tables
    store: BlobStore  # content-addressed blobs
    root: Path  # the library directory: corpora, guard indexes, fingerprints, certificates
    actor: str  # who is acting, written into every event
    executor: Executor  # where heavy work runs
    caches: Caches = field(default_factory=Caches, compare=False)

    def with_executor(self, executor: Executor) -> Context:
        return replace(self, executor=executor)
