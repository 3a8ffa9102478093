"""How many threads a job may use: the library's own thread pools size themselves with it."""

from __future__ import annotations

import os


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
