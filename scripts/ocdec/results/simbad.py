"""SIMBAD's mean proper motion and parallax of a cluster, through astroquery's TAP client.

One ADQL request per region tries every candidate name at once (the name, "Cl <name>", then the
alias table of :mod:`ocdec.results.reference`), so aliases cost no extra requests;
``SimbadClass.add_votable_fields`` is not used because it first lists the fields on the server
(several more requests). Transient faults are retried; the answer is cached on disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ocdec.errors import OcdecError
from ocdec.io import write_json
from ocdec.results.reference_rows import as_float, candidate_names, clean_row, name_key, utc_now

log = logging.getLogger(__name__)

SIMBAD_COLUMNS = (
    "main_id",
    "pmra",
    "pmdec",
    "pm_err_maj",
    "pm_err_min",
    "pm_err_angle",
    "pm_bibcode",
    "plx_value",
    "plx_err",
    "plx_bibcode",
)


class TapClient(Protocol):
    """What we need of astroquery's ``SimbadClass``: ``query_tap(adql) -> astropy Table``."""

    def query_tap(self, query: str, **kwargs: Any) -> Any: ...


def simbad_query(names: Sequence[str]) -> str:
    """One ADQL query returning SIMBAD's astrometry for any of ``names`` (SIMBAD's ``ident.id``
    comparison normalises spacing and case, as ``query_object`` relies on)."""
    quoted = " OR ".join(f"ident.id = '{n.replace(chr(39), chr(39) * 2)}'" for n in names)
    cols = ", ".join(f'basic."{c}"' for c in SIMBAD_COLUMNS)
    return (
        f'SELECT {cols}, ident."id" AS "matched_id" FROM basic '
        f'JOIN ident ON basic."oid" = ident."oidref" WHERE {quoted}'
    )


def default_simbad_client() -> TapClient:
    """astroquery's SIMBAD client (imported here: nothing touches the network at import time)."""
    from astroquery.simbad import SimbadClass

    client = SimbadClass()
    client.ROW_LIMIT = 10
    return client


@contextlib.contextmanager
def _socket_timeout(seconds: float | None) -> Iterator[None]:
    # astroquery/pyvo set no timeout of their own; a hung server would block the rule forever.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _is_transient(err: BaseException) -> bool:
    """Connection trouble, timeouts and server errors (5xx, 429) are worth retrying; a bad query or
    a client error (4xx) is not."""
    try:
        from pyvo.dal import DALQueryError, DALServiceError

        if isinstance(err, DALQueryError):
            return False
        if isinstance(err, DALServiceError):
            code = getattr(err, "code", None)
            return code is None or code >= 500 or code == 429
    except ImportError:  # pragma: no cover - pyvo comes with astroquery
        pass
    try:
        import requests

        if isinstance(err, requests.exceptions.HTTPError):
            status = getattr(err.response, "status_code", None) or 500
            return status >= 500 or status == 429
    except ImportError:  # pragma: no cover - requests comes with astroquery
        pass
    # requests' ConnectionError and Timeout are OSErrors too
    return isinstance(err, (OSError, TimeoutError, EOFError))


def _with_retries(fn, what: str, retries: int, wait_s: float):  # type: ignore[no-untyped-def]
    for attempt in range(1, retries + 2):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - classified below
            if not _is_transient(err) or attempt > retries:
                raise OcdecError(
                    f"{what} failed after {attempt} attempt(s): {type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}"
                ) from err
            delay = wait_s * 2 ** (attempt - 1)
            log.warning("%s: %s (attempt %d), retrying in %.1f s", what, err, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def pm_component_errors(err_maj: float, err_min: float, angle_deg: float) -> tuple[float, float]:
    """Standard errors along RA and Dec from SIMBAD's proper-motion error ellipse.

    The ellipse's major axis lies at position angle ``angle_deg`` (east of north); projecting it
    gives var_ra = a^2 sin^2 t + b^2 cos^2 t, var_dec = a^2 cos^2 t + b^2 sin^2 t. Without an angle
    the major axis is used for both (the conservative choice).
    """
    a, b = err_maj, err_min if math.isfinite(err_min) else err_maj
    if not math.isfinite(a):
        return math.nan, math.nan
    if not math.isfinite(angle_deg):
        return a, a
    t = math.radians(angle_deg)
    s, c = math.sin(t), math.cos(t)
    return math.sqrt((a * s) ** 2 + (b * c) ** 2), math.sqrt((a * c) ** 2 + (b * s) ** 2)


def _pick_row(table: Any, names: Sequence[str]) -> Any:
    """The row matched by the earliest candidate name (aliases can point at other objects)."""
    order = {name_key(n): i for i, n in enumerate(names)}
    best, best_rank = None, len(names) + 1
    for row in table:
        rank = order.get(name_key(str(row["matched_id"])), len(names))
        if rank < best_rank:
            best, best_rank = row, rank
    return best


def fetch_simbad(
    name: str,
    *,
    client: TapClient | None = None,
    retries: int = 3,
    wait_s: float = 2.0,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """SIMBAD's mean proper motion and parallax of cluster ``name`` as a reference row.

    One TAP request tries every name of :func:`candidate_names`; transient failures are retried
    ``retries`` times with exponential back-off. Raises :class:`OcdecError` when SIMBAD does not
    know the cluster or keeps failing.
    """
    names = candidate_names(name)
    client = client if client is not None else default_simbad_client()
    query = simbad_query(names)
    log.info("SIMBAD: querying %s", " | ".join(names))

    def run() -> Any:
        with _socket_timeout(timeout_s):
            return client.query_tap(query)

    table = _with_retries(run, f"SIMBAD query for {name!r}", retries, wait_s)
    if table is None or len(table) == 0:
        raise OcdecError(f"SIMBAD knows none of the names {names} (region {name!r})")
    row = _pick_row(table, names)
    pmra_err, pmdec_err = pm_component_errors(
        as_float(row["pm_err_maj"]), as_float(row["pm_err_min"]), as_float(row["pm_err_angle"])
    )
    main_id = " ".join(str(row["main_id"]).split())
    bibs = sorted(
        {str(row[c]) for c in ("pm_bibcode", "plx_bibcode") if str(row[c]) not in ("", "--")}
    )
    out = {
        "source": "SIMBAD",
        "pmra": as_float(row["pmra"]),
        "pmra_error": pmra_err,
        "pmdec": as_float(row["pmdec"]),
        "pmdec_error": pmdec_err,
        "parallax": as_float(row["plx_value"]),
        "parallax_error": as_float(row["plx_err"]),
        "n_stars": math.nan,
        "detail": f"{main_id} ({', '.join(bibs)})" if bibs else main_id,
    }
    if not any(math.isfinite(out[k]) for k in ("pmra", "pmdec", "parallax")):
        raise OcdecError(
            f"SIMBAD has no proper motion or parallax for {main_id!r} (region {name!r})"
        )
    return out


def simbad_reference(
    name: str,
    cache_path: str | Path,
    *,
    client: TapClient | None = None,
    retries: int = 3,
    wait_s: float = 2.0,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """:func:`fetch_simbad` through a JSON cache: an existing cache file for the same name is
    read back and no request is made."""
    cache_path = Path(cache_path)
    if cache_path.exists():
        cached = json.loads(cache_path.read_text())
        if cached.get("name") == name and cached.get("simbad"):
            log.info("SIMBAD: %s from cache %s", name, cache_path)
            return clean_row(cached["simbad"])
    row = fetch_simbad(name, client=client, retries=retries, wait_s=wait_s, timeout_s=timeout_s)
    write_json(cache_path, {"name": name, "utc": utc_now(), "simbad": row})
    return row
