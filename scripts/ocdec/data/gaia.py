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
from ocdec.data.tap import RetryPolicy, TapJobRunner, quiet_stdout
from ocdec.errors import OcdecError
from ocdec.io import write_parquet, write_text

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
        _ = self.policy  # validates the numbers now rather than at the first request

    @property
    def columns(self) -> tuple[str, ...]:
        return BASE_COLUMNS + RELEASE_EXTRA_COLUMNS[self.release]

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            timeout_s=float(self.timeout_s), retries=int(self.retries),
            backoff_s=float(self.backoff_s), poll_interval_s=float(self.poll_interval_s),
            poll_limit_s=float(self.poll_limit_s),
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
    out = Path(out)
    session = _Session(settings, client_factory or gaia_client, sleep)
    base_query = cone_query(settings, ra, dec, radius_deg)
    key = hashlib.sha256(f"{settings.server}\n{base_query}".encode()).hexdigest()[:16]
    parts = parts_dir(out)
    label = region or f"cone ({ra:g}, {dec:g}, r={radius_deg:g})"

    plan = _load_plan(parts, key)
    if plan is None:
        total = session.runner.count(count_query(settings, ra, dec, radius_deg),
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

    index = 0
    while index < len(plan["chunks"]):
        entry = plan["chunks"][index]
        chunk = Chunk(entry["modulus"], entry["residue"])
        path = parts / f"{chunk.name}.parquet"
        what = f"{label}: {chunk.clause or 'whole cone'}"
        if path.exists():
            index += 1
            continue
        rows = entry["rows"]
        if rows is None:
            rows = session.runner.count(count_query(settings, ra, dec, radius_deg, chunk),
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
        table = session.runner.fetch(query, f"{what}: download", expected_rows=rows)
        frame = _canonical(normalise(table, origin=f"{settings.table} {chunk.name}"))
        write_parquet(path, frame, {"query": query, "rows": rows})
        _save_plan(parts, plan)
        index += 1
        log.info("%s: kept %d rows (%d/%d chunks)", what, rows, index, len(plan["chunks"]))

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


def _merge(parts: Path, plan: dict[str, Any], label: str) -> pd.DataFrame:
    frames = []
    for entry in plan["chunks"]:
        path = parts / f"{Chunk(entry['modulus'], entry['residue']).name}.parquet"
        frames.append(pd.read_parquet(path))
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
