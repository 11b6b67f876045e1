"""A local process pool with a bounded number of tasks in flight (flat memory on huge inputs)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

R = TypeVar("R")


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


class LocalEngine:
    def __init__(self, workers: int | None = None, in_flight_per_worker: int = 3) -> None:
        self.workers = workers or default_workers()
        self.in_flight = max(2, self.workers * in_flight_per_worker)

    def map_unordered(
        self,
        fn: Callable[..., R],
        tasks: Iterable[Any],
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
    ) -> Iterator[R]:
        """fn(task) for every task, results as they finish. With one worker, runs inline so
        there is no pickling and tracebacks stay simple."""
        if self.workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for t in tasks:
                yield fn(t)
            return
        # spawn, not fork: the parent holds database connections and a progress thread.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=initializer, initargs=initargs
        ) as pool:
            pending: set[Future] = set()
            it = iter(tasks)
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < self.in_flight:
                    try:
                        pending.add(pool.submit(fn, next(it)))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()


# ---- tasks that need the blob store ------------------------------------------------------------
_WORKER_STORE: Any = None


def _set_worker_store(store: Any) -> None:
    global _WORKER_STORE
    _WORKER_STORE = store


def worker_store() -> Any:
    """The blob store of the map_with_store call this task runs under (worker or inline)."""
    if _WORKER_STORE is None:
        raise RuntimeError("worker_store() called outside map_with_store")
    return _WORKER_STORE


def map_with_store(
    fn: Callable[[Any], R], tasks: Iterable[Any], store: Any, workers: int | None = None
) -> Iterator[R]:
    """fn(task) for every task, results as they finish; fn reaches the store via worker_store().

    A store that lives in one process (memory://) forces inline work: a worker would write to its
    own private copy."""
    engine = LocalEngine(workers if store.shareable_across_processes else 1)
    if engine.workers <= 1:
        _set_worker_store(store)
        for t in tasks:
            yield fn(t)
        return
    yield from engine.map_unordered(fn, tasks, initializer=_set_worker_store, initargs=(store,))
