"""One pending re-evaluation timer for Snakemake's job scheduler, not one per finished job.

Snakemake 9 limits job submissions by default (``--max-jobs-per-timespan 100/1s``). After every
scheduling round that leaves jobs waiting (for cores, memory or the rate), its scheduler starts a
``threading.Timer`` that wakes the scheduler again one timespan later
(``JobScheduler._schedule_reevalutation``, sic). Each finished job also wakes it, and that round
starts a timer of its own, so the timers never merge: after n jobs have finished while others
wait, n timers wake the scheduler every second, and each wake-up re-reads the ready jobs' input
sizes and solves the selection again (snakemake/snakemake#3744 describes the same loop). In a
catalogue run on 2 cores (1,213 jobs, 173 regions) Snakemake's own process used 85 % of one core
while a single long job ran, and 28 CPU-minutes of the run (docs/performance.md).

:func:`coalesce_reevaluations` replaces that method with one that starts a timer only where none
would fire as soon: the scheduler still wakes at least once per timespan while jobs wait, and at
once whenever a job finishes, as before. Its timers are daemon threads, so the interpreter's exit
does not wait for them. The workflow calls it from ``onstart`` in the Snakemake process; where
the installed Snakemake lacks the method it changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

METHOD = "_schedule_reevalutation"  # Snakemake's spelling
_LOCK = threading.Lock()  # guards each scheduler's pending time (timers fire in their threads)


def _reevaluate_once(self: Any, delay: float) -> None:
    """Wake the scheduler (release its ``_open_jobs``) after ``delay`` s unless a timer that
    fires no later is already pending."""
    due = time.monotonic() + delay
    with _LOCK:
        pending = getattr(self, "_ocdec_reevaluation_due", None)
        if pending is not None and pending <= due:
            return
        self._ocdec_reevaluation_due = due

    def fire() -> None:
        with _LOCK:
            if getattr(self, "_ocdec_reevaluation_due", None) == due:
                self._ocdec_reevaluation_due = None
        self._open_jobs.release()

    timer = threading.Timer(delay, fire)
    timer.daemon = True
    timer.start()


def coalesce_reevaluations(scheduler_class: Any = None) -> bool:
    """Patch ``scheduler_class`` (Snakemake's ``JobScheduler`` by default); True where it now
    (or already) keeps one pending timer, False where the class has no such method."""
    if scheduler_class is None:
        try:
            from snakemake.scheduling.job_scheduler import JobScheduler as scheduler_class
        except ImportError:
            log.debug("no snakemake.scheduling.job_scheduler: scheduler timers left as they are")
            return False
    if getattr(scheduler_class, METHOD, None) is None:
        log.debug("%s has no %s: scheduler timers left as they are",
                  scheduler_class.__name__, METHOD)
        return False
    setattr(scheduler_class, METHOD, _reevaluate_once)
    return True
