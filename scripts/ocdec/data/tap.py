"""Run ADQL jobs through an astroquery TAP+ client (the Gaia archive's) with timeouts and retries.

astroquery 0.4.11 has neither: every request opens a fresh ``http.client`` connection without a
timeout and job polling never gives up. So each attempt here runs under a socket default timeout,
the job phase is polled by us with a time limit, and transient faults (HTTP 5xx, timeouts, resets,
truncated or unparsable VOTables, a job in phase ERROR for a server-side reason, fewer rows than
expected) are retried with exponential backoff. Client mistakes (HTTP 4xx, refused credentials, a
job in phase ERROR because the query itself is wrong: an unknown table or column, an ADQL syntax
error) stop at once with a one-line :class:`~ocdec.errors.OcdecError`.

Every request (a COUNT, a data job, with all its attempts) has a total time limit
(:attr:`RetryPolicy.job_limit_s`): a job still queued or executing when it runs out is aborted on
the server and the request fails with :class:`JobTimeLimitError`, not retried.
"""

from __future__ import annotations

import contextlib
import http
import http.client
import io
import logging
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from xml.parsers.expat import ExpatError

from ocdec.errors import OcdecError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: UWS phases of a job that has not finished yet.
ACTIVE_PHASES = frozenset({"PENDING", "QUEUED", "EXECUTING", "HELD", "SUSPENDED"})
#: 4xx statuses that mean "try later" rather than "your request is wrong".
RETRYABLE_4XX = frozenset({408, 425, 429})
_PHRASES = {status.phrase.lower(): status.value for status in http.HTTPStatus}
#: Error texts of a job that failed because its query is wrong: retrying cannot help. The Gaia
#: archive (ESA's TAP+, built on the ADQL library of CDS) says e.g. ``Cannot parse query '...':
#: 1 unresolved identifiers: gaia_sourc [l.2 c.6 - l.2 c.24] ! - Unknown table "gaiadr3.x"``
#: or ``Incorrect ADQL query: Encountered "FORM". Was expecting one of: ...``; other TAP services
#: say "Table not found", "Column not found", "does not exist" or "syntax error".
PERMANENT_JOB_ERRORS = re.compile(
    r"unresolved identifier|unknown (?:table|column|function|schema)|"
    r"(?:table|column|schema|function) (?:\S+ )?(?:not found|does not exist)|"
    r"(?:table|column) not found|cannot parse|incorrect adql|syntax error|"
    r"parse ?exception|parse error|encountered \"|was expecting|not a valid adql|"
    r"invalid (?:adql|query)|no such (?:table|column)",
    re.I,
)
#: The part of such a text that names the problem, shown first in the one-line message.
_PROBLEM = re.compile(
    r"(unknown (?:table|column|function|schema) \S+|(?:table|column) not found: ?\S+|"
    r"encountered \"[^\"]*\"|\S+ does not exist|syntax error[^.!;]*)",
    re.I,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: per-request socket timeout, attempts, backoff and job polling limits."""

    timeout_s: float = 120.0
    retries: int = 5
    backoff_s: float = 2.0
    backoff_max_s: float = 300.0
    poll_interval_s: float = 1.0
    poll_interval_max_s: float = 10.0
    poll_limit_s: float = 3600.0
    job_limit_s: float = 1200.0

    def __post_init__(self) -> None:
        for name in ("timeout_s", "poll_interval_s", "poll_limit_s", "job_limit_s"):
            if not getattr(self, name) > 0:
                raise OcdecError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.retries < 0:
            raise OcdecError(f"retries must be >= 0, got {self.retries!r}")
        if self.backoff_s < 0:
            raise OcdecError(f"backoff_s must be >= 0, got {self.backoff_s!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return min(self.backoff_s * 2.0**attempt, self.backoff_max_s)


class TransientError(Exception):
    """A fault worth retrying that astroquery does not raise itself (job ERROR, short result)."""


class FatalRemoteError(Exception):
    """The server refused the request for a reason that retrying cannot fix."""


class JobTimeLimitError(OcdecError):
    """A request ran past its total time limit; its job was aborted on the server.

    ``elapsed_s`` is how long the request ran (all attempts), so a caller can charge it against a
    budget that survives a rerun.
    """

    def __init__(self, message: str, elapsed_s: float) -> None:
        super().__init__(message)
        self.elapsed_s = elapsed_s


def permanent_job_error(text: str) -> str | None:
    """For the error text of a job in phase ERROR: a one-line description when the query itself
    is wrong (retrying cannot help), else None (a server-side fault worth retrying)."""
    if not PERMANENT_JOB_ERRORS.search(text or ""):
        return None
    problem = _PROBLEM.search(text)
    head = problem.group(1).rstrip(" !.") if problem else ""
    flat = one_line(text, 160)
    return (f"the query is wrong ({head}); server said: {flat}" if head
            else f"the query is wrong; server said: {flat}")


def one_line(text: object, limit: int = 240) -> str:
    """``text`` squeezed onto one line (astroquery's messages carry newlines and HTML)."""
    flat = re.sub(r"<[^>]+>", " ", str(text))
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def http_status(exc: BaseException, client: Any = None) -> int | None:
    """The HTTP status behind an astroquery ``HTTPError``.

    astroquery raises either ``HTTPError("Error 500: ...")`` or ``HTTPError(reason phrase)``
    (``"Forbidden"``, ``"Login error: Unauthorized"``); failing both, the client's connection
    handler remembers the status of its latest response.
    """
    text = str(exc).strip()
    match = re.match(r"Error (\d{3})\b", text)
    if match:
        return int(match.group(1))
    lowered = text.lower()
    for phrase, code in _PHRASES.items():
        if lowered == phrase or lowered.endswith(": " + phrase):
            return code
    return last_status(client)


def last_status(client: Any) -> int | None:
    """Status of the client's latest HTTP response, when its (private) handler exposes it."""
    handler = getattr(client, "_Tap__connHandler", None)
    getter = getattr(handler, "get_response_status", None)
    if getter is None:
        return None
    status = getter()
    return int(status) if status else None


def classify(exc: BaseException, client: Any = None) -> tuple[bool, str]:
    """``(transient, description)`` for an exception raised while talking to the server."""
    import requests

    if isinstance(exc, FatalRemoteError):
        return False, str(exc)
    if isinstance(exc, TransientError):
        return True, str(exc)
    if isinstance(exc, requests.exceptions.HTTPError):
        status = http_status(exc, client)
        label = f"HTTP {status}" if status else "HTTP error"
        if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
            hint = " (is a login needed, or the table name wrong?)" if status in (401, 403) else ""
            return False, f"{label}: {one_line(exc)}{hint}"
        return True, f"{label}: {one_line(exc)}"
    if isinstance(exc, TimeoutError):
        return True, "timed out waiting for the server"
    if isinstance(exc, ConnectionError):
        return True, f"connection failed ({type(exc).__name__}: {one_line(exc) or 'no detail'})"
    if isinstance(exc, http.client.HTTPException):
        # IncompleteRead (cut body with a Content-Length), RemoteDisconnected, BadStatusLine.
        return True, f"broken HTTP response ({type(exc).__name__})"
    if isinstance(exc, SystemError):
        # astroquery raises SystemError(error text) for a job that ended in phase ERROR.
        permanent = permanent_job_error(str(exc))
        if permanent:
            return False, f"job failed: {permanent}"
        return True, f"job failed: {one_line(exc)}"
    if isinstance(exc, (EOFError, zlib.error, ExpatError, ValueError)):
        # A cut gzip stream gives EOFError; a cut plain VOTable gives a parse (Value)Error.
        return True, f"unreadable result ({type(exc).__name__}: {one_line(exc)})"
    if isinstance(exc, OSError):
        return True, f"network error ({type(exc).__name__}: {one_line(exc)})"
    raise exc


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets opened inside the block a default timeout (astroquery sets none)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """astroquery prints HTTP errors to stdout; send them to the debug log instead."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = buffer.getvalue().strip()
        if text:
            log.debug("astroquery said: %s", one_line(text, 1000))


class TapJobRunner:
    """Runs ADQL as async jobs on one astroquery TAP+ client, retrying transient faults.

    ``client`` is a ``GaiaClass`` / ``TapPlus`` (or anything with ``launch_job_async``);
    ``server`` names it in messages. ``sleep`` is injectable so tests need not wait.
    """

    def __init__(
        self,
        client: Any,
        server: str,
        policy: RetryPolicy,
        *,
        output_format: str = "votable",
        sleep: Callable[[float], None] = time.sleep,
        remove_jobs: bool = False,
    ) -> None:
        self.client = client
        self.server = server
        self.policy = policy
        self.output_format = output_format
        self.sleep = sleep
        self.remove_jobs = remove_jobs
        self.attempts = 0  # every attempt of every call, for logs and tests

    # -- public -------------------------------------------------------------------------------

    def login(self, credentials_file: str, user: str) -> None:
        """Log in with astroquery's ``login(credentials_file=...)`` (user line, password line).

        GaiaClass.login swallows a refused login (it only logs it), so success is read back from
        the client's login flag and a refusal's status from its last response. The password is
        never logged or put in a message.
        """

        def attempt() -> None:
            with socket_timeout(self.policy.timeout_s), quiet_stdout():
                self.client.login(credentials_file=credentials_file)
            logged_in = getattr(self.client, "_TapPlus__isLoggedIn", True)
            if logged_in:
                return
            status = last_status(self.client)
            if status is not None and (status >= 500 or status in RETRYABLE_4XX):
                raise TransientError(f"login failed with HTTP {status}")
            detail = f"HTTP {status}" if status else "no session was opened"
            raise FatalRemoteError(
                f"refused ({detail}); check the user name and password in {credentials_file}"
            )

        self._retrying(f"login as {user!r}", attempt, separator=" ")
        log.info("logged in to %s as %s", self.server, user)
        self.remove_jobs = True

    def count(self, adql: str, what: str, limit_s: float | None = None) -> int:
        """The single integer a ``SELECT COUNT(*) ...`` query returns.

        ``limit_s`` (default: the policy's ``job_limit_s``) bounds the whole request, retries
        included; see :class:`JobTimeLimitError`.
        """
        deadline = self._deadline(limit_s)

        def attempt() -> int:
            table = self._run_job(adql, deadline)
            if len(table) != 1 or len(table.colnames) < 1:
                raise TransientError(f"COUNT returned {len(table)} rows, expected 1")
            value = table[table.colnames[0]][0]
            if hasattr(value, "mask") and bool(value.mask):
                raise TransientError("COUNT returned a null value")
            return int(value)

        return self._retrying(what, attempt, deadline=deadline)

    def fetch(self, adql: str, what: str, expected_rows: int | None = None,
              limit_s: float | None = None) -> Any:
        """The astropy Table of ``adql``; with ``expected_rows`` a short table is a fault.

        The check matters: astroquery can deliver a cut result without any error. ``limit_s`` as
        for :meth:`count`.
        """
        deadline = self._deadline(limit_s)

        def attempt() -> Any:
            table = self._run_job(adql, deadline)
            if expected_rows is not None and len(table) != expected_rows:
                raise TransientError(
                    f"result has {len(table)} rows but COUNT(*) of the same query gave "
                    f"{expected_rows} (cut or capped result; a capped one needs smaller chunks)"
                )
            return table

        return self._retrying(what, attempt, deadline=deadline)

    # -- internals ------------------------------------------------------------------------------

    def _deadline(self, limit_s: float | None) -> _Deadline:
        limit = self.policy.job_limit_s if limit_s is None else min(limit_s,
                                                                     self.policy.job_limit_s)
        return _Deadline(time.monotonic(), limit)

    def _retrying(self, what: str, attempt: Callable[[], T], *, separator: str = ": ",
                  deadline: _Deadline | None = None) -> T:
        tries = self.policy.retries + 1
        for number in range(tries):
            self.attempts += 1
            try:
                return attempt()
            except _JobTooLong as exc:
                assert deadline is not None
                elapsed = time.monotonic() - deadline.start
                done = "the job was aborted on the server" if exc.aborted else "stopped"
                raise JobTimeLimitError(
                    f"Gaia archive {self.server}: {what}: {exc}; {done} after {elapsed:.0f} s "
                    f"in all (limit {deadline.limit_s:g} s, gaia.job_limit_s)",
                    elapsed,
                ) from None
            except Exception as exc:  # classify() re-raises what is not a remote fault
                transient, description = classify(exc, self.client)
                if not transient:
                    raise OcdecError(
                        f"Gaia archive {self.server}: {what}{separator}{description}"
                    ) from exc
                delay = self.policy.delay(number)
                if deadline is not None and number + 1 < tries and deadline.left() < delay:
                    elapsed = time.monotonic() - deadline.start
                    raise JobTimeLimitError(
                        f"Gaia archive {self.server}: {what}: no time left to retry after "
                        f"{elapsed:.0f} s (limit {deadline.limit_s:g} s, gaia.job_limit_s); "
                        f"last error: {description}", elapsed,
                    ) from exc
                if number + 1 >= tries:
                    raise OcdecError(
                        f"Gaia archive {self.server}: {what} failed after {tries} attempts; "
                        f"last error: {description}"
                    ) from exc
                log.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.3g s",
                    what, number + 1, tries, description, delay,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _run_job(self, adql: str, deadline: _Deadline | None = None) -> Any:
        policy = self.policy
        if deadline is not None and deadline.left() <= 0:
            raise _JobTooLong("no time left for another job", aborted=False)
        with socket_timeout(policy.timeout_s), quiet_stdout():
            # background=True returns right after job creation so polling is ours and bounded.
            job = self.client.launch_job_async(
                adql, output_format=self.output_format, background=True
            )
            jobid = getattr(job, "jobid", "?")
            log.debug("job %s created", jobid)
            started = time.monotonic()
            attempt_end = started + policy.poll_limit_s
            interval = policy.poll_interval_s
            while True:
                phase = str(job.get_phase(update=True)).strip().upper()
                if phase not in ACTIVE_PHASES:
                    break
                now = time.monotonic()
                if deadline is not None and now + interval > deadline.end:
                    # The request's total time is spent: abort and stop, do not retry.
                    self._abort(job)
                    raise _JobTooLong(f"job {jobid} still {phase} after {now - started:.0f} s")
                if now + interval > attempt_end:
                    self._abort(job)
                    raise TransientError(
                        f"job {jobid} still {phase} after {policy.poll_limit_s:g} s"
                    )
                self.sleep(interval)
                interval = min(interval * 1.5, policy.poll_interval_max_s)
            if phase == "ERROR":
                text = self._job_error(job)
                permanent = permanent_job_error(text)
                if permanent:
                    raise FatalRemoteError(f"job {jobid} ended in phase ERROR: {permanent}")
                raise TransientError(f"job {jobid} ended in phase ERROR: {one_line(text)}")
            if phase != "COMPLETED":
                raise TransientError(f"job {jobid} ended in phase {phase}")
            table = job.get_results()
            if table is None:
                raise TransientError(f"job {jobid} returned no table")
            if self.remove_jobs:
                self._remove(jobid)
            return table

    def _job_error(self, job: Any) -> str:
        try:
            return one_line(job.get_error(), 1000)
        except Exception as exc:  # the error text is a courtesy; never mask the real fault
            return f"(error text unavailable: {type(exc).__name__})"

    def _abort(self, job: Any) -> None:
        # Job.abort() only acts on PENDING jobs; ask the UWS endpoint directly instead.
        with contextlib.suppress(Exception):
            job.connHandler.execute_tappost(
                subcontext=f"async/{job.jobid}/phase", data="PHASE=ABORT"
            ).read()

    def _remove(self, jobid: str) -> None:
        # A logged-in user's finished jobs count against their archive quota.
        try:
            self.client.remove_jobs([jobid])
        except Exception as exc:
            log.debug("could not remove job %s: %s", jobid, one_line(exc))


@dataclass(frozen=True)
class _Deadline:
    """The total time of one request, all attempts together."""

    start: float
    limit_s: float

    @property
    def end(self) -> float:
        return self.start + self.limit_s

    def left(self) -> float:
        return self.end - time.monotonic()


class _JobTooLong(Exception):
    """Raised inside an attempt when the request's total time is spent (never retried)."""

    def __init__(self, message: str, *, aborted: bool = True) -> None:
        super().__init__(message)
        self.aborted = aborted
