"""Executors: run a plain function over small task descriptors, in this process, a process pool or on Ray.

The one interface every per-shard step uses (scoring today; the pipeline's per-shard steps next)::

    with LocalExecutor(workers=2) as ex:          # or RayExecutor(address=None, num_cpus=2)
        for result in ex.map(fn, tasks):          # results in task order
            ...

- ``fn`` is a module-level function (picklable by reference) taking one task and returning a small,
  picklable result: counts, a few ids' digests, quarantine entries; never the documents.
- A task is a small descriptor (input file spans, output folder, parameters), never the data: the worker
  reads its own input and writes its own outputs, so the driver's disk and memory do not bound the job.
- ``fn`` must write its outputs atomically (``dynacure.io.atomic``) under names that depend only on the task,
  so running a task twice (a retry after a worker was killed) gives the same files, and a half-run task
  leaves nothing that looks done: no document is lost or written twice.
- ``map`` consumes ``tasks`` lazily with at most ``max_in_flight`` tasks running or queued, so a task
  generator that reads (a planning pass) runs beside the workers with bounded memory. The first task to
  fail stops the map: the tasks not yet started are cancelled and its exception is raised.

``LocalExecutor(workers)``: ``workers <= 1`` runs each task inline, in order; more uses a process pool
(forkserver with the signal modules preloaded, else spawn; never fork). ``RayExecutor``: one Ray task per
descriptor (``max_retries``: a task whose worker died is run again; an exception raised by ``fn`` is not
retried); connects to ``address`` or ``RAY_ADDRESS`` when given, else starts a local Ray with ``num_cpus``
and no dashboard (left running for reuse, as ``ray.init`` does).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Imported once by the fork server; each worker forked from it starts with them loaded. With spawn, every
# worker paid the import of scikit-learn/scipy itself (seconds each on a busy 2-core machine), which on a
# 20k-document corpus cost more than the scoring. ``profanity_check`` loads its model when imported: once
# here instead of once per worker per run (the fork server outlives a run's pool). A module that is not
# installed is skipped by the fork server.
_PRELOAD = ("dynacure.engines.common", "dynacure.signals.toxicity", "dynacure.signals.utility",
            "dynacure.signals.pii", "dynacure.signals.alignment", "profanity_check")


class Executor(Protocol):
    """Runs ``fn`` over ``tasks``; yields the results in task order."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]: ...

    def close(self) -> None: ...


class _Base:
    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        return None


def worker_init() -> None:
    """One BLAS/OpenMP thread per worker: workers share the cores with each other.

    Set through the environment (read when torch/numpy load their thread pools) rather than by importing
    torch here, which would cost seconds per worker for signals that never use it.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def pool_context() -> multiprocessing.context.BaseContext:
    """forkserver (preloaded with the signal modules) where available, else spawn; never plain fork."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def start_pool_server(workers: int) -> None:
    """Start the fork server now, so its imports overlap with the checks and reading in this process."""
    if workers > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        pool_context()
        from multiprocessing import forkserver

        forkserver.ensure_running()


class LocalExecutor(_Base):
    """Inline (``workers <= 1``) or a process pool of ``workers`` processes, started on first use."""

    def __init__(self, workers: int = 1, max_in_flight: int | None = None) -> None:
        self.workers = int(workers)
        self.max_in_flight = max_in_flight or max(2, 2 * self.workers)
        self._pool: cf.ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        if self.workers <= 1:
            for task in tasks:
                yield fn(task)
            return
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=pool_context(),
                                                initializer=worker_init)
        window: deque[cf.Future[R]] = deque()
        try:
            for task in tasks:
                if len(window) >= self.max_in_flight:
                    yield window.popleft().result()
                window.append(self._pool.submit(fn, task))
            while window:
                yield window.popleft().result()
        finally:
            for fut in window:  # empty unless a task failed or the caller stopped early
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray; nothing if already initialised."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # a running (multi-node) cluster: its resources are its own
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(num_cpus=num_cpus or 2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)


class RayExecutor(_Base):
    """One Ray task per descriptor (``cpus_per_task`` CPUs), rerun up to ``max_retries`` times if its worker
    dies.

    At most ``max_in_flight`` tasks are submitted at once (default: twice the cluster's CPUs), so the
    driver holds only that many small results. Ray reuses worker processes between tasks of the same
    function, so a module-level cache in ``fn`` (a loaded model) serves many tasks.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3,
                 cpus_per_task: float = 1.0, max_in_flight: int | None = None) -> None:
        import ray

        init_ray(address, num_cpus)
        self.max_retries = int(max_retries)
        self.cpus_per_task = float(cpus_per_task)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(2, 2 * cpus)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        import ray

        remote = ray.remote(fn).options(num_cpus=self.cpus_per_task, max_retries=self.max_retries,
                                        retry_exceptions=False)
        window: deque[Any] = deque()
        try:
            for task in tasks:
                if len(window) >= self.max_in_flight:
                    yield ray.get(window.popleft())
                window.append(remote.remote(task))
            while window:
                yield ray.get(window.popleft())
        finally:
            for ref in window:
                ray.cancel(ref)


__all__ = ["Executor", "LocalExecutor", "RayExecutor", "init_ray", "pool_context", "start_pool_server",
           "worker_init"]
