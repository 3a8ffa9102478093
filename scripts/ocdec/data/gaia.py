"""Download a Gaia cone through astroquery's Gaia TAP+ client: ADQL, chunks, resume, provenance.

A cone is counted first (``COUNT(*)``); if it holds more than ``chunk_rows`` stars it is cut into
chunks by ``MOD(random_index, n) = i``. Gaia's ``random_index`` is a random permutation of the
catalogue, so every chunk of a cone holds about ``total / n`` stars wherever the cone lies, and
a chunk that still comes out too big splits exactly into ``MOD(random_index, 2n) = i`` and
``= i + n``.
Each chunk's rows are checked against a ``COUNT(*)`` of the same query (astroquery can hand back a
cut result without an error) and kept on disk, atomically, as soon as it is complete; a rerun
resumes from the kept chunks. At the end the chunks are merged, sorted by ``source_id`` (so the
result does not depend on the chunking) and written with provenance to the output Parquet file.

Reliability: one process at a time writes a region (a lock beside the output; a second one waits
``lock_wait_s`` and then stops with one line); a kept chunk that cannot be read is discarded and
fetched again; a query the archive rejects as wrong (unknown table or column, bad ADQL) stops at
once; an archive job that stays queued or executing is aborted after ``job_limit_s`` in all, and
the time it was given is remembered in the chunk folder, so a rerun (a rule's retry) does not give
it that time again. :func:`check_query` asks the archive once, cheaply, whether the table and
columns exist, so a workflow can stop before any region is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ocdec.data.columns import CANONICAL_COLUMNS, OPTIONAL_COLUMNS, normalise
from ocdec.data.tap import JobTimeLimitError, RetryPolicy, TapJobRunner, quiet_stdout
from ocdec.errors import OcdecError
from ocdec.io import (
    check_writable,
    exclusive_lock,
    read_provenance,
    write_json,
    write_parquet,
    write_text,
)
from ocdec.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_SERVER = "https://gea.esac.esa.int/"
CREDENTIALS_ENV = "OCDEC_GAIA_CREDENTIALS"
RELEASE_TABLES = {"dr2": "gaiadr2.gaia_source", "dr3": "gaiadr3.gaia_source"}
#: Columns asked of every release; DR2's gaia_source has no ruwe (it sits in gaiadr2.ruwe).
BASE_COLUMNS: tuple[str, ...] = (
    "source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
    "pmdec_error", "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "bp_rp",
)
#: DR3 also gives what its parallax zero point needs (Lindegren et al. 2021).
RELEASE_EXTRA_COLUMNS = {"dr2": (), "dr3": ("ruwe", "nu_eff_used_in_astrometry", "pseudocolour",
                                            "ecl_lat", "astrometric_params_solved")}
#: VOTable flavours of the archive ('votable' binary, 'votable_plain' TABLEDATA, gzip'ed binary).
OUTPUT_FORMATS = ("votable", "votable_gzip", "votable_plain")
#: Plan chunks to be this full on average, so random scatter rarely pushes one over the limit.
CHUNK_FILL = 0.9
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_PLAN = "plan.json"
#: Seconds already given to each request (by query digest) over earlier runs that hit job_limit_s.
_WAITED = "waited.json"


@dataclass(frozen=True)
class GaiaSettings:
    """Where and how to download. ``table`` defaults to the release's ``gaia_source`` and is
    always written into the ADQL (never astroquery's default table)."""

    release: str = "dr3"
    table: str | None = None
    server: str = DEFAULT_SERVER
    chunk_rows: int = 200_000
    timeout_s: float = 120.0
    retries: int = 5
    backoff_s: float = 2.0
    poll_interval_s: float = 1.0
    poll_limit_s: float = 3600.0
    job_limit_s: float = 1200.0
    lock_wait_s: float = 0.0
    credentials_file: str | None = None
    output_format: str = "votable"

    def __post_init__(self) -> None:
        release = str(self.release).strip().lower()
        if release not in RELEASE_TABLES:
            raise OcdecError(
                f"unknown Gaia release {self.release!r} (known: {', '.join(RELEASE_TABLES)})"
            )
        object.__setattr__(self, "release", release)
        table = self.table or RELEASE_TABLES[release]
        if not _TABLE_NAME.match(table):
            raise OcdecError(f"Gaia table {table!r} is not a schema-qualified name like "
                             f"{RELEASE_TABLES[release]}")
        object.__setattr__(self, "table", table)
        if not re.match(r"^https?://[^/\s]+", self.server or ""):
            raise OcdecError(f"Gaia server {self.server!r} is not an http(s) URL")
        if not self.server.endswith("/"):
            object.__setattr__(self, "server", self.server + "/")
        if int(self.chunk_rows) < 1:
            raise OcdecError(f"chunk_rows must be >= 1, got {self.chunk_rows!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise OcdecError(f"output_format {self.output_format!r} is not one of "
                             f"{', '.join(OUTPUT_FORMATS)}")
        if not float(self.lock_wait_s) >= 0:
            raise OcdecError(f"lock_wait_s must be >= 0, got {self.lock_wait_s!r}")
        _ = self.policy  # validates the numbers now rather than at the first request

    @property
    def columns(self) -> tuple[str, ...]:
        return BASE_COLUMNS + RELEASE_EXTRA_COLUMNS[self.release]

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            timeout_s=float(self.timeout_s), retries=int(self.retries),
            backoff_s=float(self.backoff_s), poll_interval_s=float(self.poll_interval_s),
            poll_limit_s=float(self.poll_limit_s), job_limit_s=float(self.job_limit_s),
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GaiaSettings:
        """Settings from a config section; unknown keys are a one-line error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise OcdecError(f"unknown Gaia setting(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**{k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True, order=True)
class Chunk:
    """The stars of a cone with ``random_index % modulus == residue``."""

    modulus: int = 1
    residue: int = 0

    @property
    def clause(self) -> str | None:
        return None if self.modulus == 1 else f"MOD(random_index, {self.modulus}) = {self.residue}"

    @property
    def name(self) -> str:
        return f"chunk-m{self.modulus}-r{self.residue}"

    def split(self) -> tuple[Chunk, Chunk]:
        return Chunk(2 * self.modulus, self.residue), Chunk(2 * self.modulus,
                                                             self.residue + self.modulus)


# -- ADQL ---------------------------------------------------------------------------------------


def check_cone(ra: float, dec: float, radius_deg: float) -> tuple[float, float, float]:
    """The cone as floats, or a one-line error for a position or radius out of range."""
    try:
        ra, dec, radius_deg = float(ra), float(dec), float(radius_deg)
    except (TypeError, ValueError) as err:
        raise OcdecError(f"cone ra/dec/radius must be numbers: {err}") from err
    if not (math.isfinite(ra) and 0.0 <= ra <= 360.0):
        raise OcdecError(f"cone ra {ra!r} is outside 0..360 deg")
    if not (math.isfinite(dec) and -90.0 <= dec <= 90.0):
        raise OcdecError(f"cone dec {dec!r} is outside -90..90 deg")
    if not (math.isfinite(radius_deg) and 0.0 < radius_deg <= 90.0):
        raise OcdecError(f"cone radius {radius_deg!r} deg must be > 0 and <= 90")
    return ra, dec, radius_deg


def cone_condition(ra: float, dec: float, radius_deg: float, chunk: Chunk | None = None) -> str:
    ra, dec, radius_deg = check_cone(ra, dec, radius_deg)
    # repr() keeps every digit, so the query names exactly the cone that was asked for.
    where = (f"CONTAINS(POINT('ICRS', ra, dec), "
             f"CIRCLE('ICRS', {ra!r}, {dec!r}, {radius_deg!r})) = 1")
    if chunk is not None and chunk.clause:
        where += f"\n  AND {chunk.clause}"
    return where


def cone_query(settings: GaiaSettings, ra: float, dec: float, radius_deg: float,
               chunk: Chunk | None = None) -> str:
    """ADQL selecting the canonical columns of the stars in a cone (or one chunk of it)."""
    return (f"SELECT {', '.join(settings.columns)}\nFROM {settings.table}\n"
            f"WHERE {cone_condition(ra, dec, radius_deg, chunk)}")


def count_query(settings: GaiaSettings, ra: float, dec: float, radius_deg: float,
                chunk: Chunk | None = None) -> str:
    """``COUNT(*)`` of exactly the rows :func:`cone_query` selects."""
    return (f"SELECT COUNT(*) AS n\nFROM {settings.table}\n"
            f"WHERE {cone_condition(ra, dec, radius_deg, chunk)}")


def check_query_adql(settings: GaiaSettings) -> str:
    """One row of every column the downloads use (``random_index`` too, for the chunks)."""
    return f"SELECT TOP 1 {', '.join(settings.columns)}, random_index\nFROM {settings.table}"


# -- client and credentials -------------------------------------------------------------------


def import_gaia_class() -> type:
    """``astroquery.gaia.GaiaClass``, imported without touching the network.

    Importing astroquery.gaia builds a module-level client that fetches the archive's status
    messages with no timeout; connections are refused for the length of the import so that call
    fails at once (astroquery catches it) instead of reaching, or hanging on, the archive.
    """
    module = sys.modules.get("astroquery.gaia")
    if module is None:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionRefusedError("ocdec: no network while importing astroquery.gaia")

        original = socket.create_connection
        socket.create_connection = refuse
        try:
            with quiet_stdout():
                import astroquery.gaia as module
        finally:
            socket.create_connection = original
    return module.GaiaClass


def gaia_client(settings: GaiaSettings) -> Any:
    """The production client: astroquery's GaiaClass pointed at ``settings.server``."""
    gaia_class = import_gaia_class()
    with quiet_stdout():
        return gaia_class(gaia_tap_server=settings.server, gaia_data_server=settings.server,
                          show_server_messages=False)


def credentials_path(settings: GaiaSettings) -> Path | None:
    """The credentials file from the settings or ``$OCDEC_GAIA_CREDENTIALS`` (None: anonymous)."""
    name = settings.credentials_file or os.environ.get(CREDENTIALS_ENV) or None
    return Path(name).expanduser() if name else None


def read_credentials_user(path: Path) -> str:
    """The user name of a credentials file (line 1: user, line 2: password, as astroquery's
    ``login(credentials_file=...)`` reads it); the password is checked for presence only."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise OcdecError(f"{path}: cannot read the Gaia credentials file "
                         f"({err.strerror or type(err).__name__})") from err
    user = lines[0].strip() if lines else ""
    has_password = len(lines) > 1 and bool(lines[1].strip())
    if not user or not has_password:
        raise OcdecError(f"{path}: a Gaia credentials file needs the user name on line 1 and "
                         "the password on line 2")
    return user


# -- download -----------------------------------------------------------------------------------


ClientFactory = Callable[[GaiaSettings], Any]


class _Session:
    """Builds the client (and logs in) only when the first request is needed, so a rerun whose
    chunks are all on disk merges them without the network."""

    def __init__(self, settings: GaiaSettings, factory: ClientFactory,
                 sleep: Callable[[float], None]) -> None:
        self.settings = settings
        self.factory = factory
        self.sleep = sleep
        self.credentials = credentials_path(settings)
        # Check the file before any request so a typo fails fast, not after a long count.
        self.user = read_credentials_user(self.credentials) if self.credentials else None
        self._runner: TapJobRunner | None = None

    @property
    def runner(self) -> TapJobRunner:
        if self._runner is None:
            client = self.factory(self.settings)
            runner = TapJobRunner(client, self.settings.server, self.settings.policy,
                                  output_format=self.settings.output_format, sleep=self.sleep)
            if self.credentials is not None and self.user is not None:
                runner.login(str(self.credentials), self.user)
            self._runner = runner
        return self._runner


def parts_dir(out: str | os.PathLike[str]) -> Path:
    """Where the finished chunks of ``out`` wait for the merge (hidden, beside ``out``)."""
    out = Path(out)
    return out.parent / f".{out.name}.parts"


def lock_path(out: str | os.PathLike[str]) -> Path:
    """The lock a download of ``out`` holds (beside ``out`` and its chunk folder)."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


def check_query(
    settings: GaiaSettings,
    *,
    client_factory: ClientFactory | None = None,
    sleep: Callable[[float], None] = time.sleep,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Ask the archive once whether ``settings.table`` and its columns exist (and the login
    works), with one cheap ``SELECT TOP 1`` job; return a record of the check.

    Meant to run once per workflow run before any region is downloaded: a mistyped table or
    column stops here, in seconds, with one line (transient faults are retried as usual). With
    ``out``, the record is also written there as JSON (a stamp a workflow rule can depend on).
    """
    if out is not None:
        check_writable(out, "check record")
    session = _Session(settings, client_factory or gaia_client, sleep)
    adql = check_query_adql(settings)
    started = time.monotonic()
    table = session.runner.fetch(adql, f"checking {settings.table} and its columns")
    names = {str(c).lower() for c in table.colnames}
    absent = [c for c in (*settings.columns, "random_index") if c.lower() not in names]
    if absent:
        raise OcdecError(f"Gaia archive {settings.server}: {settings.table} returned no column(s) "
                         f"{', '.join(absent)}")
    record = {
        "ok": True,
        "server": settings.server,
        "table": settings.table,
        "release": settings.release,
        "columns": [*settings.columns, "random_index"],
        "query": adql,
        "rows": len(table),
        "logged_in": session.user is not None,
        "seconds": round(time.monotonic() - started, 3),
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log.info("%s on %s answers with every column needed (%d row in %.1f s)", settings.table,
             settings.server, len(table), record["seconds"])
    if out is not None:
        write_json(out, record)
    return record


def download_cone(
    settings: GaiaSettings,
    ra: float,
    dec: float,
    radius_deg: float,
    out: str | os.PathLike[str],
    *,
    region: str | None = None,
    client_factory: ClientFactory | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Download every star of ``settings.table`` in a cone to ``out`` (canonical columns, Parquet
    with provenance) and return the table. Resumes from chunks kept by an interrupted run."""
    ra, dec, radius_deg = check_cone(ra, dec, radius_deg)
    out = check_writable(out, "output")
    session = _Session(settings, client_factory or gaia_client, sleep)
    base_query = cone_query(settings, ra, dec, radius_deg)
    key = hashlib.sha256(f"{settings.server}\n{base_query}".encode()).hexdigest()[:16]
    label = region or f"cone ({ra:g}, {dec:g}, r={radius_deg:g})"
    with exclusive_lock(lock_path(out), wait_s=settings.lock_wait_s,
                        what=f"{label}: {out}") as waited:
        if waited and out.is_file() and _same_download(out, settings, base_query):
            log.info("%s: another process wrote %s while this one waited; using it", label, out)
            return pd.read_parquet(out)
        return _download_locked(settings, session, ra, dec, radius_deg, out, key, label, region)


def _same_download(out: Path, settings: GaiaSettings, query: str) -> bool:
    try:
        provenance = read_provenance(out)
    except Exception:  # an unreadable file is not the result we waited for
        return False
    return provenance.get("query") == query and provenance.get("server") == settings.server


def _download_locked(settings: GaiaSettings, session: _Session, ra: float, dec: float,
                     radius_deg: float, out: Path, key: str, label: str,
                     region: str | None) -> pd.DataFrame:
    base_query = cone_query(settings, ra, dec, radius_deg)
    parts = parts_dir(out)
    _clean_orphans(out, parts)
    budget = _Budget(parts, settings, label)

    plan = _load_plan(parts, key)
    if plan is None:
        total = budget.run(session, "count", count_query(settings, ra, dec, radius_deg),
                           f"{label}: COUNT(*) of the cone")
        n = 1 if total <= settings.chunk_rows else math.ceil(
            total / max(1.0, settings.chunk_rows * CHUNK_FILL))
        # A single chunk is the whole cone, whose COUNT we already have.
        chunks = [{"modulus": n, "residue": i, "rows": total if n == 1 else None}
                  for i in range(n)]
        plan = {"key": key, "query": base_query, "server": settings.server, "total": total,
                "chunks": chunks}
        _save_plan(parts, plan)
        log.info("%s: %d stars in %s, %d chunk(s) of at most %d rows", label, total,
                 settings.table, n, settings.chunk_rows)
    else:
        log.info("%s: resuming; %d of %d chunk(s) already kept in %s", label,
                 sum((parts / f"{Chunk(c['modulus'], c['residue']).name}.parquet").exists()
                     for c in plan["chunks"]), len(plan["chunks"]), parts)

    # rows so far against the cone's COUNT; one log line per chunk when not on a terminal
    with Progress(f"{label}: download", plan["total"], unit="rows", every_s=0,
                  logger=log) as progress:
        _fetch_chunks(settings, session, budget, plan, parts, progress,
                      ra=ra, dec=dec, radius_deg=radius_deg, label=label)

    frame = _merge(parts, plan, label)
    provenance = {
        "source": "gaia",
        "release": settings.release,
        "region": region,
        "table": settings.table,
        "server": settings.server,
        "query": base_query,
        "count_query": count_query(settings, ra, dec, radius_deg),
        "chunks": [{"where": Chunk(c["modulus"], c["residue"]).clause, "rows": c["rows"]}
                   for c in plan["chunks"]],
        "ra": ra,
        "dec": dec,
        "radius_deg": radius_deg,
        "rows": len(frame),
        "output_format": settings.output_format,
        "logged_in": session.user is not None,
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }
    write_parquet(out, frame, provenance)
    shutil.rmtree(parts, ignore_errors=True)
    log.info("%s: wrote %d stars to %s", label, len(frame), out)
    return frame


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("ocdec", "astroquery", "astropy", "numpy", "pandas", "pyarrow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    optional = [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    frame = frame.loc[:, [*CANONICAL_COLUMNS, *optional]]
    frame = frame.astype({"source_id": "int64",
                          **{c: "float64" for c in (*CANONICAL_COLUMNS[1:], *optional)}})
    frame.attrs = {}
    return frame


class _Budget:
    """The total time a request may take, less what earlier runs already gave it.

    A request that runs out (its job stuck queued or executing) has its time recorded in the chunk
    folder, so a rerun of the region (by hand or a rule's retry) does not wait as long again: the
    limit is per job over all runs, not per run. Deleting the chunk folder resets it.
    """

    def __init__(self, parts: Path, settings: GaiaSettings, label: str) -> None:
        self.path = parts / _WAITED
        self.limit = float(settings.job_limit_s)
        self.label = label
        self.parts = parts
        try:
            self.waited: dict[str, float] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.waited = {}

    def run(self, session: _Session, kind: str, adql: str, what: str, **kwargs: Any) -> Any:
        digest = hashlib.sha256(adql.encode()).hexdigest()[:16]
        spent = float(self.waited.get(digest, 0.0))
        left = self.limit - spent
        if left <= 0:
            raise OcdecError(
                f"{what}: earlier runs already waited {spent:.0f} s for this archive job "
                f"(gaia.job_limit_s {self.limit:g} s); the archive may be overloaded: try later "
                f"after deleting {self.parts}, or raise gaia.job_limit_s"
            )
        try:
            return getattr(session.runner, kind)(adql, what, limit_s=left, **kwargs)
        except JobTimeLimitError as err:
            # The job used up what it was given (it stops just short of the deadline).
            self.waited[digest] = spent + max(err.elapsed_s, left)
            write_text(self.path, json.dumps(self.waited, indent=1) + "\n")
            raise


def _chunk_is_sound(path: Path, rows: int | None, what: str) -> bool:
    """Whether a kept chunk can be read and holds its rows; an unsound one is deleted (it will be
    fetched again) with a warning."""
    import pyarrow.parquet as pq

    try:
        found = pq.read_metadata(path).num_rows
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
        problem = f"cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    else:
        if rows is None or found == rows:
            return True
        problem = f"holds {found} rows, not {rows}"
    log.warning("%s: kept chunk %s %s; discarding it and fetching it again", what, path, problem)
    path.unlink(missing_ok=True)
    return False


def _clean_orphans(out: Path, parts: Path) -> None:
    """Remove what killed runs leave behind: half-written temporary files beside ``out`` and in
    its chunk folder, and chunks in a folder that has no plan (they cannot be trusted)."""
    leftovers = list(out.parent.glob(f".{out.name}.*.tmp"))
    if parts.is_dir():
        leftovers += list(parts.glob(".*.tmp"))
        if not (parts / _PLAN).exists():
            leftovers += list(parts.glob("chunk-*.parquet"))
    for path in leftovers:
        log.info("removing %s, left by an interrupted run", path)
        path.unlink(missing_ok=True)


def _merge(parts: Path, plan: dict[str, Any], label: str) -> pd.DataFrame:
    frames = []
    for entry in plan["chunks"]:
        path = parts / f"{Chunk(entry['modulus'], entry['residue']).name}.parquet"
        try:
            frames.append(pd.read_parquet(path))
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
            raise OcdecError(f"{label}: kept chunk {path} cannot be read "
                             f"({type(err).__name__}); delete it and download again") from err
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame = _canonical(frame).sort_values("source_id", kind="mergesort").reset_index(drop=True)
    if frame["source_id"].duplicated().any():
        raise OcdecError(f"{label}: chunks in {parts} overlap (duplicated source_id); "
                         "delete that folder and download again")
    if len(frame) != plan["total"]:
        raise OcdecError(f"{label}: chunks in {parts} hold {len(frame)} rows but the cone's "
                         f"COUNT(*) was {plan['total']}; delete that folder and download again")
    return frame


def _load_plan(parts: Path, key: str) -> dict[str, Any] | None:
    path = parts / _PLAN
    if not path.exists():
        return None
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        same = plan.get("key") == key
    except (OSError, ValueError):
        same = False
    if not same:
        log.warning("%s holds chunks of another query or server; starting afresh", parts)
        shutil.rmtree(parts, ignore_errors=True)
        return None
    return plan


def _save_plan(parts: Path, plan: dict[str, Any]) -> None:
    write_text(parts / _PLAN, json.dumps(plan, indent=1) + "\n")


def _fetch_chunks(settings: GaiaSettings, session: _Session, budget: _Budget, plan: dict,
                  parts: Path, progress: Progress, *, ra: float, dec: float, radius_deg: float,
                  label: str) -> None:
    """Fetch every chunk of ``plan`` not yet kept in ``parts``, splitting those too big."""
    index = 0
    while index < len(plan["chunks"]):
        entry = plan["chunks"][index]
        chunk = Chunk(entry["modulus"], entry["residue"])
        path = parts / f"{chunk.name}.parquet"
        what = f"{label}: {chunk.clause or 'whole cone'}"
        if path.exists() and _chunk_is_sound(path, entry["rows"], what):
            index += 1
            progress.update(int(entry["rows"] or 0), chunks=f"{index}/{len(plan['chunks'])}")
            continue
        rows = entry["rows"]
        if rows is None:
            rows = budget.run(session, "count", count_query(settings, ra, dec, radius_deg, chunk),
                              f"{what}: COUNT(*)")
            entry["rows"] = rows
        if rows > settings.chunk_rows:
            halves = [{"modulus": c.modulus, "residue": c.residue, "rows": None}
                      for c in chunk.split()]
            plan["chunks"][index:index + 1] = halves
            _save_plan(parts, plan)
            log.info("%s: %d rows exceed %d; split in two", what, rows, settings.chunk_rows)
            continue
        query = cone_query(settings, ra, dec, radius_deg, chunk)
        table = budget.run(session, "fetch", query, f"{what}: download", expected_rows=rows)
        frame = _canonical(normalise(table, origin=f"{settings.table} {chunk.name}"))
        write_parquet(path, frame, {"query": query, "rows": rows})
        _save_plan(parts, plan)
        index += 1
        log.debug("%s: kept %d rows", what, rows)
        progress.update(int(rows), chunks=f"{index}/{len(plan['chunks'])}")
