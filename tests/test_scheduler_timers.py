"""The scheduler's re-evaluation timers: one pending, not one per call (ocdec.scheduler_timers)."""

from __future__ import annotations

import threading
import time

from ocdec.scheduler_timers import METHOD, coalesce_reevaluations


class _Original:
    """Snakemake's behaviour: every call starts its own timer."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)

    def _schedule_reevalutation(self, delay: float) -> None:
        threading.Timer(delay, lambda: self._open_jobs.release()).start()


def _wake_ups(scheduler: _Original, wait: float) -> int:
    time.sleep(wait)
    n = 0
    while scheduler._open_jobs.acquire(blocking=False):
        n += 1
    return n


def _patched_class() -> type:
    cls = type("Scheduler", (_Original,), {})
    assert coalesce_reevaluations(cls)
    return cls


def test_many_calls_wake_the_scheduler_once() -> None:
    original, patched = _Original(), _patched_class()()
    for _ in range(50):
        original._schedule_reevalutation(0.2)
        patched._schedule_reevalutation(0.2)
    assert _wake_ups(patched, 0.0) == 0  # nothing before the delay
    assert _wake_ups(patched, 1.0) == 1
    assert _wake_ups(original, 0.2) == 50
    # after it fired, the next call starts a timer again
    patched._schedule_reevalutation(0.2)
    assert _wake_ups(patched, 1.0) == 1


def test_a_sooner_wake_up_is_not_dropped() -> None:
    patched = _patched_class()()
    patched._schedule_reevalutation(30.0)
    patched._schedule_reevalutation(0.2)  # due long before the pending one
    assert _wake_ups(patched, 1.0) == 1
    patched._schedule_reevalutation(30.0)  # the 30 s timer still pends: no new one
    assert [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.daemon]


def test_timers_do_not_hold_the_interpreter_at_exit() -> None:
    patched = _patched_class()()
    patched._schedule_reevalutation(60.0)
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)
              and t.is_alive() and t.interval == 60.0]
    assert timers and all(t.daemon for t in timers)


def test_installed_snakemake_has_the_method_it_replaces() -> None:
    from snakemake.scheduling.job_scheduler import JobScheduler

    # if Snakemake renames it, the workflow silently keeps one timer per finished job again
    assert callable(getattr(JobScheduler, METHOD, None))
    subclass = type("Sub", (JobScheduler,), {})
    assert coalesce_reevaluations(subclass)
    assert getattr(subclass, METHOD) is not getattr(JobScheduler, METHOD)
    before = getattr(subclass, METHOD)
    assert coalesce_reevaluations(subclass)  # a second call changes nothing
    assert getattr(subclass, METHOD) is before


def test_a_class_without_the_method_is_left_alone() -> None:
    cls = type("Other", (), {})
    assert not coalesce_reevaluations(cls)
    assert not hasattr(cls, METHOD)
