"""The Ray executor: the same `map` as the local engine, with tasks run as Ray tasks on a cluster.

`address` picks the cluster: None starts a local one (for this process, stopped at exit),
"auto" joins the cluster this machine belongs to, "ray://HOST:PORT" joins one through the Ray
client. Steps are unchanged: they hand over a function, tasks and one worker context; the ledger
writer stays in the calling process, which gets rows back and commits them in batches.

The worker context (the blob store, a filter policy) is put in Ray's object store once per `map`
and cached per worker process, so a store's pack index is loaded once per worker, not per task.
A task whose worker dies (killed, out of memory) is run again by Ray up to `RETRIES` times;
steps are written so that running a task twice adds nothing twice (the parent commits results,
packs of a lost attempt are never indexed or are orphans that `verify` notes). Beyond that the
map fails with an error that says what happened and that a rerun resumes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from copytrail.engine.base import INLINE_BYTES, map_inline, runs_inline, windowed
from copytrail.errors import CopytrailError

R = TypeVar("R")

# Attempts after the first for a task whose worker process died.
RETRIES = 3
# A local cluster's shared-memory object store: results and contexts, never the corpus.
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024

# Worker side: contexts already fetched by this worker process, by the id of their `map`.
_contexts: dict[str, Any] = {}


class RayUnavailable(CopytrailError):
    exit_code = 2


def _run(fn: Callable[[Any, Any], R], key: str, boxed_context: list[Any], task: Any) -> R:
    """One task on a Ray worker. The context arrives boxed in a list, so Ray hands over the
    reference instead of fetching it for every task; it is fetched once per worker process."""
    if key not in _contexts:
        import ray

        (ref,) = boxed_context
        _contexts.clear()  # one map at a time per worker: the previous context is dropped
        _contexts[key] = ray.get(ref)
    return fn(_contexts[key], task)


def connect(address: str | None, workers: int | None = None) -> None:
    """Join or start the cluster once per process."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable(
            "the Ray engine needs Ray: pip install 'copytrail[ray]' (or use --engine local)"
        ) from e
    if ray.is_initialized():
        return
    # No token written into the user's home for a cluster of this process only.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if address is None:
        kwargs["num_cpus"] = workers or os.cpu_count() or 1
        kwargs["object_store_memory"] = LOCAL_OBJECT_STORE_BYTES
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayUnavailable(
            f"could not join the Ray cluster at {address or 'a new local cluster'}: {e}. "
            "Check the address (ray://HOST:10001, or auto on a cluster node) and that "
            "`ray status` works there"
        ) from e


class RayEngine:
    """Tasks on a Ray cluster, at most `in_flight` submitted and not yet collected. The cluster
    is joined (or started) by the first map that needs it, so a command that spreads no work
    pays nothing for choosing this engine."""

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        in_flight_per_worker: int = 3,
        inline_bytes: int = INLINE_BYTES,
    ) -> None:
        self.address = address
        self._workers = workers
        self._per_worker = in_flight_per_worker
        self.inline_bytes = inline_bytes
        self._remote: Any = None

    @property
    def workers(self) -> int:
        if self._workers is None:
            self._connect()
        return self._workers  # type: ignore[return-value]

    @property
    def in_flight(self) -> int:
        return max(2, self.workers * self._per_worker)

    def _connect(self) -> None:
        connect(self.address, self._workers)
        import ray

        if self._workers is None:
            self._workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if self._remote is None:
            self._remote = ray.remote(_run).options(max_retries=RETRIES, retry_exceptions=False)

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address or 'local'}, workers={self._workers or 'all'})"

    def map(
        self,
        fn: Callable[[Any, Any], R],
        tasks: Iterable[Any],
        context: Any = None,
        work_bytes: int | None = None,
        ordered: bool = False,
    ) -> Iterator[R]:
        if runs_inline(self, context, work_bytes):  # small work never starts the cluster
            yield from map_inline(fn, tasks, context)
            return
        self._connect()
        import ray

        key = uuid.uuid4().hex
        boxed = [ray.put(context)]
        pending: list[Any] = []
        try:
            yield from windowed(
                lambda task: self._remote.remote(fn, key, boxed, task),
                tasks,
                self.in_flight,
                lambda refs: ray.wait(refs, num_returns=1)[0][0],
                _result,
                ordered,
                pending,
            )
        finally:
            for ref in pending:  # a failed or abandoned map leaves nothing running
                ray.cancel(ref, force=True)


def _result(ref: Any) -> Any:
    """A finished task's value; the step's own error is raised as it was raised in the task."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as e:
        raise e.as_instanceof_cause() from None
    except RayError as e:
        raise CopytrailError(
            f"a Ray task failed after {RETRIES} retries ({type(e).__name__}: {str(e)[:300]}); "
            "nothing half-done was recorded: run the same command again to resume"
        ) from e
