"""Clocks of one benchmark job: wall and CPU seconds and peak memory per named stage.

Stages nest: time spent in an inner stage is that stage's, not the enclosing one's. A job calls a
library entry point inside a stage and lets :meth:`StageClock.timing` time the functions the
entry point calls (reading, the method, writing) as stages of their own, without changing them.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class RssSampler:
    """Resident set size of this process sampled every ``interval`` s in a thread; ``peak()``
    gives the highest value since the last ``reset()``. /proc/self/statm, so Linux only; elsewhere
    the peaks are NaN and only ru_maxrss is reported."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = Path("/proc/self/statm").exists()

    def rss_mb(self) -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self.page_mb
        except (OSError, ValueError, IndexError):
            return math.nan

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self.rss_mb())

    def start(self) -> RssSampler:
        if self.available:
            self._thread.start()
        return self

    def reset(self, floor: float = 0.0) -> None:
        """Start a new peak (at least ``floor``: an enclosing stage's peak so far)."""
        self._peak = max(self.rss_mb(), floor) if self.available else math.nan

    def peak(self) -> float:
        return max(self._peak, self.rss_mb()) if self.available else math.nan

    def stop(self) -> None:
        self._stop.set()


class MemorySampler:
    """The machine's memory in use (MemTotal - MemAvailable), sampled every ``interval`` s."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval, self.peak_mb, self.base_mb = interval, 0.0, self.used_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def used_mb() -> float:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            info[key] = float(value.split()[0]) / 1024
        return info["MemTotal"] - info["MemAvailable"]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.used_mb())

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def maxrss_mb() -> float:
    """This process's peak resident memory (MB). Linux: VmHWM, which starts afresh at exec;
    ru_maxrss would keep the peak of the process that started this one (the benchmark's own,
    hundreds of MB). A job forked from the warm interpreter counts the interpreter's pages it
    maps, as a fresh job counts the libraries it imports. Elsewhere ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    # Linux reports kilobytes, macOS bytes.
    scale = 1.0 / 2**20 if sys.platform == "darwin" else 1.0 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class StageClock:
    """Wall seconds, CPU seconds and sampled peak RSS of named stages of one job."""

    def __init__(self) -> None:
        self.sampler = RssSampler().start()
        self.stages: dict[str, dict[str, float]] = {}
        # per open stage: [wall of inner stages, cpu of inner stages, its peak before them]
        self._open: list[list[float]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._open:
            self._open[-1][2] = max(self._open[-1][2], self.sampler.peak())
        self.sampler.reset()
        self._open.append([0.0, 0.0, 0.0])
        w0, c0 = time.perf_counter(), cpu_s()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - w0, cpu_s() - c0
            inner_wall, inner_cpu, before = self._open.pop()
            peak = self.sampler.peak()
            self.add(name, wall - inner_wall, cpu - inner_cpu, max(peak, before))
            if self._open:
                self._open[-1][0] += wall
                self._open[-1][1] += cpu
                self.sampler.reset(floor=peak)

    def add(self, name: str, wall: float, cpu: float = math.nan, rss: float = math.nan) -> None:
        entry = self.stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
        entry["wall_s"] += wall
        entry["cpu_s"] += cpu
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], rss) if math.isfinite(rss) else rss

    @contextmanager
    def timing(self, calls: Mapping[tuple[Any, str], str]) -> Iterator[None]:
        """While inside, a call of ``getattr(owner, name)`` for each ``(owner, name): stage`` of
        ``calls`` is timed as that stage (the attribute is wrapped, then restored). The library
        looks these names up at call time (module globals, or imports inside its functions), so
        its entry points run unchanged."""
        saved = []
        try:
            for (owner, name), stage in calls.items():
                original = getattr(owner, name)
                saved.append((owner, name, original))
                setattr(owner, name, self._timed(original, stage))
            yield
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)

    def _timed(self, func: Any, stage: str) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.stage(stage):
                return func(*args, **kwargs)

        return wrapper


def split_stage(clock: StageClock, total: str, parts: Mapping[str, float],
                rest: str = "other") -> None:
    """Replace stage ``total`` by ``parts`` (seconds measured inside the library, e.g. the
    summary's ``stages``) plus ``rest`` for the remainder; CPU seconds are shared in proportion."""
    whole = clock.stages.pop(total)
    inner = sum(max(v, 0.0) for v in parts.values())
    remainder = max(whole["wall_s"] - inner, 0.0)
    for name, wall in {**parts, rest: remainder}.items():
        share = wall / whole["wall_s"] if whole["wall_s"] > 0 else 0.0
        clock.add(name, wall, whole["cpu_s"] * share, whole["peak_rss_mb"])
