"""How many threads a job may use: the library's own thread pools size themselves with it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

# map(function, items): the builtin, or a thread pool's
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def available_threads() -> int:
    """``OMP_NUM_THREADS`` where set (Snakemake sets it to each job's ``threads``, so jobs run
    side by side do not oversubscribe the cores), else the CPUs this process may run on (a SLURM
    allocation or taskset included)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextmanager
def thread_map(workers: int) -> Iterator[MapFn]:
    """A ``map`` that runs over ``workers`` threads (results in the items' order); for one
    worker, the builtin ``map`` in this thread, so a single-threaded job keeps its work (and its
    interrupts, tracebacks and progress bars) on the main thread."""
    if workers <= 1:
        yield map
        return
    with ThreadPoolExecutor(workers) as pool:
        yield pool.map
