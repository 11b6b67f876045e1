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
    inline_bytes: int  # below this much input, tasks run in the calling process

    def map(
        self,
        fn: Callable[[Any, Any], R],
        tasks: Iterable[Any],
        context: Any = None,
        work_bytes: int | None = None,
        ordered: bool = False,
    ) -> Iterator[R]:
        """`work_bytes` is the caller's estimate of the input size (None: unknown, so worth
        spreading); executors run small work inline. `ordered`: results in task order (a task
        is only started once the one `in_flight` places before it has been handed back, so
        memory stays bounded), for steps whose record must not depend on timing."""
        ...


def runs_inline(executor: Executor, context: Any, work_bytes: int | None) -> bool:
    """The one rule for when an executor should not hand tasks to other processes: a context
    that lives in this process only (a memory:// store), too little work, or one worker. The
    worker count is asked last: a cluster engine learns it by joining its cluster."""
    if not shareable(context):
        return True
    if work_bytes is not None and work_bytes < executor.inline_bytes:
        return True
    return executor.workers <= 1


def shareable(context: Any) -> bool:
    """Whether workers in other processes may get `context`: as it says, else as the blob store
    it holds says (a store in fsspec's memory:// exists in this process only)."""
    own = getattr(context, "shareable_across_processes", None)
    if own is not None:
        return bool(own)
    return bool(getattr(getattr(context, "store", None), "shareable_across_processes", True))


def windowed(
    submit: Callable[[Any], Any],
    tasks: Iterable[Any],
    in_flight: int,
    wait_any: Callable[[list[Any]], Any],
    result: Callable[[Any], R],
    ordered: bool,
    pending: list[Any],
) -> Iterator[R]:
    """The bounded submission loop both executors share: at most `in_flight` handles in
    `pending` (the caller's list, so it can cancel what is left on failure); `wait_any` waits
    for one of them to finish and returns it; `ordered` takes the oldest instead."""
    it = iter(tasks)
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < in_flight:
            try:
                pending.append(submit(next(it)))
            except StopIteration:
                exhausted = True
        if not pending:
            break
        done = pending[0] if ordered else wait_any(pending)
        pending.remove(done)
        yield result(done)


def map_inline(
    fn: Callable[[Any, Any], R], tasks: Iterable[Any], context: Any = None
) -> Iterator[R]:
    """Every task in this process, in order: no pickling, plain tracebacks."""
    for t in tasks:
        yield fn(context, t)
