"""The local executor: a process pool with a bounded number of tasks in flight."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from copytrail.engine.base import INLINE_BYTES, map_inline, runs_inline, windowed

R = TypeVar("R")


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


# The worker context of the pool this process serves; set once per worker by the initializer,
# so a large context (a store with open handles) is sent once per worker, not once per task.
_context: Any = None
_in_worker = False


def in_local_worker() -> bool:
    """Whether this process is a LocalEngine pool worker (it ends with the map that started it;
    a step may tune such a process for its own work)."""
    return _in_worker


def _worker_start(context: Any, parent: int) -> None:
    global _context, _in_worker
    _context = context
    _in_worker = True
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """A worker whose parent is killed (SIGKILL, the OOM killer) must not live on holding memory
    and files: the kernel signals it (Linux), and a watchdog thread covers the rest."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="copytrail-parent-watch", daemon=True).start()


def _call(fn: Callable[[Any, Any], R], task: Any) -> R:
    return fn(_context, task)


class LocalEngine:
    """`workers` processes on this machine (default: one per core). `inline_bytes=0` makes the
    pool be used whatever the input size (as when a user asks for `--workers N`)."""

    def __init__(
        self,
        workers: int | None = None,
        in_flight_per_worker: int = 3,
        inline_bytes: int = INLINE_BYTES,
    ) -> None:
        self.workers = workers or default_workers()
        self.in_flight = max(2, self.workers * in_flight_per_worker)
        self.inline_bytes = inline_bytes

    def __repr__(self) -> str:
        return f"LocalEngine(workers={self.workers})"

    def map(
        self,
        fn: Callable[[Any, Any], R],
        tasks: Iterable[Any],
        context: Any = None,
        work_bytes: int | None = None,
        ordered: bool = False,
    ) -> Iterator[R]:
        if runs_inline(self, context, work_bytes):
            yield from map_inline(fn, tasks, context)
            return
        # spawn, not fork: the parent holds database connections and a progress thread.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_worker_start,
            initargs=(context, os.getpid()),
        ) as pool:
            pending: list[Future] = []
            yield from windowed(
                lambda task: pool.submit(_call, fn, task),
                tasks,
                self.in_flight,
                lambda fs: next(iter(wait(fs, return_when=FIRST_COMPLETED).done)),
                lambda f: f.result(),
                ordered,
                pending,
            )
