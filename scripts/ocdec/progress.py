"""Progress of long work: a bar on a terminal, plain periodic log lines everywhere else.

Downloads, DEC training and the catalogue summary report progress through :class:`Progress`. On
a terminal (the stream is a TTY) it draws a tqdm bar and logs nothing periodic, so the bar's
redraws never reach a log file; anywhere else (a rule's log, a SLURM output file, a pipe) it logs
one plain line at most every ``every_s`` seconds, plus the first and the last, and draws nothing.
``OCDEC_PROGRESS`` overrides the choice: ``bar``, ``log`` or ``off``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import IO, Any

log = logging.getLogger(__name__)

#: Environment variable that forces a mode: "bar", "log" or "off".
ENV = "OCDEC_PROGRESS"
MODES = ("bar", "log", "off")


def choose_mode(stream: IO[str] | None = None) -> str:
    """``bar`` when ``stream`` (default stderr) is a terminal, else ``log``; ``$OCDEC_PROGRESS``
    wins when set to one of :data:`MODES`."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in MODES:
        return forced
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "log"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "log"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.5g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class Progress(AbstractContextManager["Progress"]):
    """Progress of ``total`` steps of ``unit`` (rows, epochs, regions), named ``desc``.

    Parameters
    ----------
    desc
        What is progressing, the start of every line ("NGC_2682: download").
    total
        Steps expected (None: unknown).
    unit
        What one step is ("rows", "epoch").
    every_s
        Least seconds between two log lines in ``log`` mode (0: a line per update).
    logger
        Where log lines go (default: this module's).
    stream
        The stream a bar is drawn on, and whose TTY-ness picks the mode (default stderr).
    mode
        ``bar``, ``log`` or ``off``; default :func:`choose_mode`.
    leave
        Keep the finished bar on the screen (False for many short bars, e.g. DEC's per seed).

    Examples
    --------
    >>> with Progress("demo", total=3, unit="steps", mode="off") as progress:
    ...     for step in range(3):
    ...         progress.update(1, loss=0.5)
    >>> progress.n
    3
    """

    def __init__(self, desc: str, total: int | None = None, *, unit: str = "it",
                 every_s: float = 30.0, logger: logging.Logger | None = None,
                 stream: IO[str] | None = None, mode: str | None = None,
                 leave: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.total, self.unit, self.every_s = desc, total, unit, float(every_s)
        self.logger = logger or log
        self.stream = sys.stderr if stream is None else stream
        self.mode = choose_mode(self.stream) if mode is None else mode
        if self.mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, got {self.mode!r}")
        self.n = 0
        self.fields: dict[str, Any] = {}
        self._clock = clock
        self._last = -math.inf
        self._logged_n = -1
        self._stack = ExitStack()
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log records printed to the console go through tqdm.write, above the bar, instead
            # of breaking it; file handlers (--log-file) are left alone and never see the bar.
            self._stack.enter_context(logging_redirect_tqdm())
            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", file=self.stream,
                             dynamic_ncols=True, leave=leave, unit_scale=unit == "rows")

    def update(self, n: int = 1, **fields: Any) -> None:
        """Advance by ``n`` steps; ``fields`` (loss, label change, chunks ...) are shown beside."""
        self.n += n
        self.fields.update(fields)
        if self._bar is not None:
            if fields:  # before update(), which redraws
                self._bar.set_postfix({k: _plain(v) for k, v in self.fields.items()},
                                      refresh=False)
            self._bar.update(n)
        elif self.mode == "log":
            now = self._clock()
            finished = self.total is not None and self.n >= self.total
            if self._logged_n < 0 or finished or now - self._last >= self.every_s:
                self._log_line()
                self._last = now

    def _log_line(self) -> None:
        done = f"{self.n:,}" if self.total is None else f"{self.n:,}/{self.total:,}"
        extra = "".join(f", {k.replace('_', ' ')} {_plain(v)}" for k, v in self.fields.items())
        self.logger.info("%s: %s %s%s", self.desc, done, self.unit, extra)
        self._logged_n = self.n

    def close(self) -> None:
        """End the bar, or log the last state if it has not been logged yet."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self._logged_n != self.n:
            self._log_line()
        self._stack.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Any, desc: str, *, total: int | None = None, unit: str = "it",
          every_s: float = 30.0, logger: logging.Logger | None = None) -> Iterator[Any]:
    """Iterate over ``items`` with a :class:`Progress` (a bar or periodic log lines)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(desc, total, unit=unit, every_s=every_s, logger=logger) as progress:
        for item in items:
            yield item
            progress.update(1)
