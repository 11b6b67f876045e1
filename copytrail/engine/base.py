"""The executor protocol: how a step spreads work without knowing what runs it.

A step hands the executor a picklable function, its tasks, and one picklable worker context (the
blob store, say). The executor calls `fn(context, task)` for every task, wherever it likes, and
yields the results as they finish, keeping only a bounded number of tasks in flight so memory
stays flat on huge inputs. Steps never start processes or clusters; a new executor (Ray, say)
is one new module implementing `Executor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

R = TypeVar("R")

# Below this much input, starting workers costs more than the work (a spawned worker takes about
# a second to import its modules), so executors run the tasks in the calling process.
INLINE_BYTES = 16 * 1024 * 1024


@runtime_checkable
class Executor(Protocol):
    """Runs `fn(context, task)` over tasks; results come back as they finish (unordered)."""

    workers: int

    def map(
        self,
        fn: Callable[[Any, Any], R],
        tasks: Iterable[Any],
        context: Any = None,
        work_bytes: int | None = None,
    ) -> Iterator[R]:
        """`work_bytes` is the caller's estimate of the input size (None: unknown, so worth
        spreading); executors run small work inline."""
        ...


def runs_inline(workers: int, context: Any, work_bytes: int | None, inline_bytes: int) -> bool:
    """The one rule for when an executor should not hand tasks to other processes: one worker,
    a context that lives in this process only (a memory:// store), or too little work."""
    if workers <= 1:
        return True
    if not getattr(context, "shareable_across_processes", True):
        return True
    return work_bytes is not None and work_bytes < inline_bytes


def map_inline(
    fn: Callable[[Any, Any], R], tasks: Iterable[Any], context: Any = None
) -> Iterator[R]:
    """Every task in this process, in order: no pickling, plain tracebacks."""
    for t in tasks:
        yield fn(context, t)
