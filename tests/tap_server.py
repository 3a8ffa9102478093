"""A Gaia-archive-like TAP server on 127.0.0.1 for tests, with injectable faults.

It speaks the part of the IVOA UWS/TAP async protocol (and ESA's TAP+ login) that astroquery's
Gaia client uses: ``POST /tap-server/tap/async`` creates a job and answers 303 with the job URL,
``GET .../async/{id}/phase`` reports the phase (EXECUTING for the first polls, then COMPLETED or
ERROR; ``POST`` of ``PHASE=ABORT`` to it aborts the job), ``GET .../results/result`` redirects
(303) to the VOTable, ``GET .../error`` gives the error text, ``POST /tap-server/login`` sets a
session cookie. Queries are understood with regular expressions, enough for the cone queries of
:mod:`ocdec.data.gaia`: a select list or ``COUNT(*)``, one
``CONTAINS(POINT(...), CIRCLE(...)) = 1`` and an optional ``MOD(random_index, n) = i``, or a
``SELECT TOP n ... FROM table`` without a condition (:func:`ocdec.data.gaia.check_query`).

A wrong query (unknown table or column, text that does not parse) ends in phase ERROR with the
error text the Gaia archive gives for it; a "job_error" fault ends a good query in phase ERROR for a
server-side reason (transient); a "stuck" fault keeps a job EXECUTING until it is aborted.

The rows served come from a real Gaia field (the caller passes an astropy Table); every request is
recorded in :attr:`TapServer.log` so tests can count what was fetched.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
from astropy.io.votable import from_table
from astropy.table import Table

UNITS = {
    "ra": "deg", "dec": "deg", "parallax": "mas", "parallax_error": "mas",
    "pmra": "mas / yr", "pmra_error": "mas / yr", "pmdec": "mas / yr", "pmdec_error": "mas / yr",
    "phot_g_mean_mag": "mag", "phot_bp_mean_mag": "mag", "phot_rp_mean_mag": "mag",
    "bp_rp": "mag",
}

_SELECT = re.compile(
    r"^\s*SELECT\s+(?:TOP\s+(?P<top>\d+)\s+)?(?P<cols>.+?)\s+FROM\s+(?P<table>[\w.]+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?\s*$",
    re.S | re.I,
)
_NUM = r"([-+]?[\d.]+(?:[eE][-+]?\d+)?)"
_CONE = re.compile(
    r"CONTAINS\(\s*POINT\(\s*'ICRS'\s*,\s*ra\s*,\s*dec\s*\)\s*,\s*CIRCLE\(\s*'ICRS'\s*,\s*"
    + _NUM + r"\s*,\s*" + _NUM + r"\s*,\s*" + _NUM + r"\s*\)\s*\)\s*=\s*1",
    re.I,
)
_MOD = re.compile(r"MOD\(\s*random_index\s*,\s*(\d+)\s*\)\s*=\s*(\d+)", re.I)
_COUNT = re.compile(r"^COUNT\(\*\)(?:\s+AS\s+(\w+))?$", re.I)


def field_table(csv_path: Path, seed: int = 0) -> Table:
    """A gaia_source-like table from a real field CSV: the columns the field lacks (errors, BP and
    RP magnitudes, ruwe) are filled with plausible seeded values, faint stars lose BP/RP as in
    Gaia, and ``random_index`` is a seeded permutation."""
    frame = pd.read_csv(csv_path)
    rng = np.random.default_rng(seed)
    n = len(frame)
    g = frame["phot_g_mean_mag"].to_numpy()
    scale = 0.02 * np.exp(0.35 * np.clip(g - 13.0, 0.0, None))
    for name, factor in (("parallax_error", 1.0), ("pmra_error", 1.1), ("pmdec_error", 1.0)):
        if name not in frame:
            frame[name] = scale * factor * rng.uniform(0.8, 1.2, n)
    bp_rp = frame["bp_rp"].to_numpy().copy()
    bp_rp[g > 20.5] = np.nan  # no BP/RP photometry for the faintest stars, as in Gaia
    frame["bp_rp"] = bp_rp
    frame["phot_bp_mean_mag"] = g + 0.45 * bp_rp
    frame["phot_rp_mean_mag"] = frame["phot_bp_mean_mag"] - bp_rp
    frame["ruwe"] = rng.lognormal(0.0, 0.15, n)
    # what the DR3 parallax zero point needs (5-parameter solutions; nu_eff from the colour)
    frame["nu_eff_used_in_astrometry"] = 1.76 - 1.61 / np.pi * np.arctan(0.531 * bp_rp)
    frame["pseudocolour"] = np.nan
    frame["ecl_lat"] = rng.uniform(-5.0, 5.0, n)
    frame["astrometric_params_solved"] = np.full(n, 31, dtype=np.int16)
    frame["random_index"] = rng.permutation(n).astype(np.int64)
    table = Table.from_pandas(frame)
    for name, unit in UNITS.items():
        if name in table.colnames:
            table[name].unit = unit
    return table


def cone_mask(table: Table, ra: float, dec: float, radius: float) -> np.ndarray:
    ra0, dec0 = np.radians(ra), np.radians(dec)
    ra1 = np.radians(np.asarray(table["ra"], dtype=float))
    dec1 = np.radians(np.asarray(table["dec"], dtype=float))
    hav = np.sin((dec1 - dec0) / 2) ** 2 + np.cos(dec0) * np.cos(dec1) * np.sin(
        (ra1 - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1)))) <= radius


class QueryError(Exception):
    pass


def evaluate(table: Table, table_name: str, query: str) -> Table:
    """The result of a cone query on ``table`` (served as ``table_name``)."""
    match = _SELECT.match(query)
    if not match:
        # What the archive's ADQL parser says about text it cannot read.
        words = query.split()
        word = words[2] if len(words) > 2 else "?"
        raise QueryError(f"Cannot parse query '{query}' for job: Incorrect ADQL query: "
                         f'Encountered "{word}". Was expecting one of: "FROM" "," ...')
    if match["table"].lower() != table_name.lower():
        raise QueryError(f"Cannot parse query '{query}': 1 unresolved identifiers: "
                         f"{match['table']} [l.2 c.6] ! - Table not found: {match['table']}")
    where = match["where"]
    if where is None:
        if not match["top"]:
            raise QueryError("a query without a condition needs TOP n here")
        mask = np.zeros(len(table), dtype=bool)
        mask[: int(match["top"])] = True
        rest = ""
    else:
        cone = _CONE.search(where)
        if not cone:
            raise QueryError("only cone queries are served here")
        mask = cone_mask(table, float(cone[1]), float(cone[2]), float(cone[3]))
        rest = _CONE.sub("", where)
    mod = _MOD.search(rest)
    if mod:
        modulus, residue = int(mod[1]), int(mod[2])
        mask &= np.asarray(table["random_index"]) % modulus == residue
        rest = _MOD.sub("", rest)
    if re.sub(r"\bAND\b", "", rest, flags=re.I).strip():
        raise QueryError(f"unsupported condition: {rest.strip()!r}")
    columns = [c.strip() for c in match["cols"].split(",")]
    count = _COUNT.match(columns[0]) if len(columns) == 1 else None
    if count:
        return Table({count[1] or "count_all": np.array([int(mask.sum())], dtype=np.int64)})
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise QueryError(f"Cannot parse query '{query}': {len(missing)} unresolved identifiers: "
                         f"{missing[0]} [l.1 c.8] ! - Unknown column \"{missing[0]}\" !")
    return table[mask][columns]


_BODIES: dict[tuple[int, str, str, int], bytes] = {}


def votable_bytes(table: Table, output_format: str) -> bytes:
    buffer = io.BytesIO()
    tabledata = "tabledata" if output_format == "votable_plain" else "binary"
    from_table(table).to_xml(buffer, tabledata_format=tabledata)
    data = buffer.getvalue()
    return gzip.compress(data) if output_format == "votable_gzip" else data


def cached_votable_bytes(source: Table, query: str, table: Table, output_format: str) -> bytes:
    """Writing VOTables is slow in astropy; tests ask the same queries of the same field often."""
    key = (id(source), query, output_format, len(table))
    if key not in _BODIES:
        _BODIES[key] = votable_bytes(table, output_format)
    return _BODIES[key]


@dataclass
class Fault:
    """Answer the next ``times`` matching requests (after letting ``skip`` pass) with ``action``:
    an HTTP status (int), "hang", "reset", "truncate" (cut body, no length), "cut_announced"
    (cut body, full Content-Length), "drop_rows" (a valid VOTable missing rows), "job_error"
    (the job's phase becomes ERROR, a server-side failure) or "stuck" (the job stays EXECUTING
    until it is aborted)."""

    kind: str
    action: int | str
    query: str | None = None  # "count", "data" or None for both
    times: int = 1
    skip: int = 0


@dataclass
class Job:
    id: str
    query: str
    output_format: str
    phase: str
    result: Table | None = None
    error: str | None = None
    polls: int = 0
    stuck: bool = False


@dataclass
class Request:
    method: str
    kind: str
    job: str | None
    query: str | None
    status: int


@dataclass
class TapServer:
    """Start with ``with TapServer(table) as server:``; ``server.url`` is the client's base URL."""

    table: Table
    table_name: str = "gaiadr3.gaia_source"
    executing_polls: int = 1
    users: dict[str, str] = field(default_factory=dict)  # when set, jobs need a login cookie
    hang_s: float = 30.0
    faults: list[Fault] = field(default_factory=list)
    log: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.sessions: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._ids = itertools.count(1)
        self.httpd: ThreadingHTTPServer | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> TapServer:
        handler = type("Handler", (_Handler,), {"tap": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # -- test helpers ----------------------------------------------------------------------------

    def inject(self, kind: str, action: int | str, *, query: str | None = None, times: int = 1,
               skip: int = 0) -> None:
        with self.lock:
            self.faults.append(Fault(kind, action, query, times, skip))

    def served(self, query: str = "data") -> list[str]:
        """Queries whose result VOTable was delivered complete (status 200, no fault)."""
        with self.lock:
            return [r.query or "" for r in self.log
                    if r.kind == "result" and r.status == 200 and _query_kind(r.query) == query]

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(r.kind == kind for r in self.log)

    def truth(self, ra: float, dec: float, radius: float) -> Table:
        return self.table[cone_mask(self.table, ra, dec, radius)]

    # -- used by the handler ---------------------------------------------------------------------

    def take_fault(self, kind: str, query: str | None) -> int | str | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind != kind or fault.times <= 0:
                    continue
                if fault.query is not None and fault.query != _query_kind(query):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                return fault.action
        return None

    def record(self, method: str, kind: str, job: Job | None, status: int) -> None:
        with self.lock:
            self.log.append(Request(method, kind, job.id if job else None,
                                    job.query if job else None, status))


def _query_kind(query: str | None) -> str | None:
    if query is None:
        return None
    return "count" if re.search(r"SELECT\s+COUNT\(\*\)", query, re.I) else "data"


class _Handler(BaseHTTPRequestHandler):
    tap: TapServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    # -- dispatch ---------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if path == "/tap-server/tap/async":
            self._create(form)
        elif path in ("/tap-server/login", "/data-server/login"):
            self._login(form)
        elif path in ("/tap-server/logout", "/data-server/logout"):
            self._send(200, b"OK")
        elif path == "/tap-server/tap/deletejobs":
            with self.tap.lock:
                for job_id in form.get("JOB_IDS", "").split(","):
                    self.tap.jobs.pop(job_id, None)
            self.tap.record("POST", "deletejobs", None, 200)
            self._send(200, b"OK")
        elif (match := re.fullmatch(r"/tap-server/tap/async/(\w+)/phase", path)):
            job = self.tap.jobs.get(match[1])
            if job and form.get("PHASE") == "ABORT":
                job.phase = "ABORTED"
            self.tap.record("POST", "abort", job, 200)
            self._send(200, b"OK")
        else:
            self._send(404, b"not found")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        match = re.fullmatch(r"/tap-server/tap/async/(\w+)/(phase|error|results/result|data)",
                             path)
        job = self.tap.jobs.get(match[1]) if match else None
        if job is None:
            self._send(404, b"no such job")
            return
        action = {"phase": self._phase, "error": self._error, "results/result": self._redirect,
                  "data": self._result}[match[2]]
        action(job)

    # -- endpoints ------------------------------------------------------------------------------

    def _create(self, form: dict[str, str]) -> None:
        query = form.get("QUERY", "")
        probe = Job("-", query, "", "")
        if self._fault("create", probe):
            return
        if self.tap.users and not self._logged_in():
            self.tap.record("POST", "create", probe, 403)
            self._send(403, b"<li>Anonymous access is not allowed</li>")
            return
        job = Job(str(next(self.tap._ids)), query, form.get("FORMAT", "votable"),
                  "EXECUTING" if form.get("PHASE") == "RUN" else "PENDING")
        try:
            job.result = evaluate(self.tap.table, self.tap.table_name, query)
        except QueryError as err:
            job.error = str(err)
        with self.tap.lock:
            self.tap.jobs[job.id] = job
        self.tap.record("POST", "create", job, 303)
        self.send_response(303)
        self.send_header("Location", f"{self.tap.url}tap-server/tap/async/{job.id}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _phase(self, job: Job) -> None:
        if self._fault("phase", job):
            return
        job.polls += 1
        if job.phase in ("EXECUTING", "QUEUED") and job.polls > self.tap.executing_polls \
                and not job.stuck:
            job.phase = "ERROR" if job.error else "COMPLETED"
        self.tap.record("GET", "phase", job, 200)
        self._send(200, job.phase.encode(), "text/plain")

    def _error(self, job: Job) -> None:
        self.tap.record("GET", "error", job, 200)
        self._send(200, (job.error or "").encode(), "text/plain")

    def _redirect(self, job: Job) -> None:
        if job.phase != "COMPLETED":
            self.tap.record("GET", "redirect", job, 500)
            self._send(500, f"<li>job {job.id} is {job.phase}</li>".encode())
            return
        self.tap.record("GET", "redirect", job, 303)
        self.send_response(303)
        self.send_header("Location", f"{self.tap.url}tap-server/tap/async/{job.id}/data")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _result(self, job: Job) -> None:
        action = self._fault("result", job)
        if action is True:
            return
        assert job.result is not None
        table = job.result
        if action == "drop_rows":
            table = table[: max(0, len(table) - max(1, len(table) // 10))]
        body = cached_votable_bytes(self.tap.table, job.query, table, job.output_format)
        if action in ("truncate", "cut_announced"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-votable+xml")
            if action == "cut_announced":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.tap.record("GET", "result", job, 206)
            self.close_connection = True
            return
        self.tap.record("GET", "result", job, 200 if action is None else 299)
        self._send(200, body, "application/x-votable+xml")

    def _login(self, form: dict[str, str]) -> None:
        self.tap.record("POST", "login", None, 0)
        user, password = form.get("username"), form.get("password")
        if self._fault("login", None):
            return
        if user not in self.tap.users or self.tap.users[user] != password:
            self._send(401, b"<li>Invalid user name or password</li>")
            return
        token = f"s{next(self.tap._ids)}"
        with self.tap.lock:
            self.tap.sessions.add(token)
        self.send_response(200)
        self.send_header("Set-Cookie", f"JSESSIONID={token}; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    # -- helpers ---------------------------------------------------------------------------------

    def _logged_in(self) -> bool:
        cookie = self.headers.get("Cookie") or ""
        match = re.search(r"JSESSIONID=(\w+)", cookie)
        return bool(match) and match[1] in self.tap.sessions

    def _fault(self, kind: str, job: Job | None) -> bool | str | None:
        """Apply a pending fault of ``kind``; True when the response has been dealt with."""
        action = self.tap.take_fault(kind, job.query if job else None)
        if action is None:
            return None
        if isinstance(action, int):
            self.tap.record(self.command, kind, job, action)
            self._send(action, f"<li>simulated {action}</li>".encode())
            return True
        if action == "hang":
            self.tap.record(self.command, kind, job, -1)
            self.tap.stopping.wait(self.tap.hang_s)
            self.close_connection = True
            return True
        if action == "reset":
            self.tap.record(self.command, kind, job, -2)
            # SO_LINGER 0 makes close() send a TCP reset instead of an orderly shutdown.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return True
        if action == "job_error":
            assert job is not None
            job.error = "simulated failure: the database connection was lost"
            return False  # the phase request itself proceeds and reports ERROR
        if action == "stuck":
            assert job is not None
            job.stuck = True
            return False  # the phase request proceeds and reports EXECUTING, now and later
        return action  # result-body faults are applied by _result

    def _send(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
