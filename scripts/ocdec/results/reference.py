"""Reference values of a cluster's mean proper motion and parallax: SIMBAD, an offline table, and
published cluster catalogues (Cantat-Gaudin 2018/2020, Hunt & Reffert 2023, VizieR exports).

Every source gives *reference rows*, plain dicts with the keys of :data:`REFERENCE_KEYS`
(``source`` names where the row comes from: "SIMBAD", "CG2018", "HR2023", "thesis table", ...;
``detail`` says more, e.g. SIMBAD's main identifier and bibcodes). The first row of a region's list
is *the* reference that the comparison measures offsets from.

SIMBAD is queried through astroquery's TAP-based client with one ADQL request per region that tries
every candidate name at once (the name, "Cl <name>", then the alias table), so aliases cost no extra
requests; ``SimbadClass.add_votable_fields`` is not used because it first lists the fields on the
server (several more requests).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import write_json
from ocdec.methods.astrometry import MEANS_WITH_ERRORS

log = logging.getLogger(__name__)

REFERENCE_KEYS = (
    "source",
    *MEANS_WITH_ERRORS,
    "n_stars",
)
TABLE_COLUMNS = (
    "id",
    "name",
    *MEANS_WITH_ERRORS,
    "source",
)

# Names SIMBAD knows a cluster by when the catalogue's name is not one of its identifiers. Keys are
# normalised with name_key(); values are tried in order after the name and "Cl <name>".
ALIASES: dict[str, tuple[str, ...]] = {
    "MELOTTE22": ("M 45", "Pleiades"),
    "MELOTTE25": ("Hyades",),
    "MELOTTE20": ("alf Per Cluster",),
    "NGC2632": ("M 44", "Praesepe"),
    "NGC2682": ("M 67",),
    "NGC2168": ("M 35",),
    "NGC6705": ("M 11",),
    "NGC6494": ("M 23",),
    "NGC2287": ("M 41",),
    "NGC2099": ("M 37",),
    "NGC1912": ("M 38",),
}

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


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------


def name_key(name: str) -> str:
    """A key that matches the spellings of one cluster name across catalogues.

    "NGC_2632", "NGC 2632", "ngc2632", "NGC 02632" and "Cl NGC 2632" all give "NGC2632"; leading
    zeros of numbers go (CG2018 writes "NGC_0188" in places, others "NGC 188").
    """
    text = str(name).strip().upper().replace("_", " ")
    text = re.sub(r"^CL\s+", "", text)
    text = re.sub(r"\bM\s*(\d)", r"M\1", text)
    parts = re.findall(r"[A-Z]+|\d+", text)
    return "".join(p.lstrip("0") or "0" if p.isdigit() else p for p in parts)


def display_name(region_id: str) -> str:
    """ "NGC_2682" -> "NGC 2682" (the slug's underscores back to spaces)."""
    return str(region_id).replace("_", " ").strip()


def candidate_names(name: str) -> list[str]:
    """Names to try on SIMBAD, in order: the name, "Cl <name>", then the alias table."""
    base = display_name(name)
    out = [base]
    if not base.upper().startswith("CL "):
        out.append(f"Cl {base}")
    out.extend(ALIASES.get(name_key(base), ()))
    seen: set[str] = set()
    return [n for n in out if not (n.casefold() in seen or seen.add(n.casefold()))]


# ---------------------------------------------------------------------------------------------
# SIMBAD
# ---------------------------------------------------------------------------------------------


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


def _float(value: Any) -> float:
    try:
        out = float(np.ma.filled(np.ma.asarray(value, dtype=float), np.nan))
    except (TypeError, ValueError):
        return math.nan
    return out


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
        _float(row["pm_err_maj"]), _float(row["pm_err_min"]), _float(row["pm_err_angle"])
    )
    main_id = " ".join(str(row["main_id"]).split())
    bibs = sorted(
        {str(row[c]) for c in ("pm_bibcode", "plx_bibcode") if str(row[c]) not in ("", "--")}
    )
    out = {
        "source": "SIMBAD",
        "pmra": _float(row["pmra"]),
        "pmra_error": pmra_err,
        "pmdec": _float(row["pmdec"]),
        "pmdec_error": pmdec_err,
        "parallax": _float(row["plx_value"]),
        "parallax_error": _float(row["plx_err"]),
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
            return _clean_row(cached["simbad"])
    row = fetch_simbad(name, client=client, retries=retries, wait_s=wait_s, timeout_s=timeout_s)
    write_json(cache_path, {"name": name, "utc": _utc(), "simbad": row})
    return row


# ---------------------------------------------------------------------------------------------
# offline reference table (config/references.tsv)
# ---------------------------------------------------------------------------------------------


def load_reference_table(path: str | Path) -> pd.DataFrame:
    """Read the offline reference TSV (columns :data:`TABLE_COLUMNS`, ``n_stars`` optional)."""
    path = Path(path)
    try:
        table = pd.read_csv(
            path, sep="\t", comment="#", dtype={"id": str, "name": str, "source": str}
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise OcdecError(f"{path}: cannot read the reference table: {err}") from err
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise OcdecError(f"{path}: reference table lacks column(s) {', '.join(missing)}")
    for col in REFERENCE_KEYS[1:]:
        if col not in table:
            table[col] = np.nan
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() & table[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise OcdecError(
                f"{path}: row {row}, column {col}: not a number: {table[col][bad].iloc[0]!r}"
            )
        table[col] = values.astype(float)
    if table["id"].duplicated().any():
        dup = table["id"][table["id"].duplicated()].iloc[0]
        raise OcdecError(f"{path}: region id {dup!r} appears more than once")
    table["source"] = table["source"].fillna("reference table")
    return table


def reference_table_from_mapping(
    mapping: Mapping[str, Mapping[str, Any]], source: str = "reference table"
) -> pd.DataFrame:
    """The same table from config's ``{region_id: {pmra: ..., pmra_error: ..., ...}}`` form."""
    rows = []
    for region_id, values in (mapping or {}).items():
        if not isinstance(values, Mapping):
            raise OcdecError(f"reference table: entry {region_id!r} is not a mapping of values")
        unknown = set(values) - set(TABLE_COLUMNS) - {"n_stars"}
        if unknown:
            raise OcdecError(
                f"reference table: entry {region_id!r} has unknown key(s) {sorted(unknown)}"
            )
        row = {
            "id": str(region_id),
            "name": values.get("name") or display_name(region_id),
            "source": values.get("source") or source,
        }
        for col in REFERENCE_KEYS[1:]:
            value = values.get(col)
            try:
                row[col] = math.nan if value is None else float(value)
            except (TypeError, ValueError) as err:
                raise OcdecError(
                    f"reference table: {region_id}.{col}: not a number: {value!r}"
                ) from err
        rows.append(row)
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "n_stars"])


def table_reference(table: pd.DataFrame, region_id: str, name: str | None = None) -> dict | None:
    """The offline table's row for a region (by id, else by normalised name), or None."""
    keys = {name_key(region_id)} | ({name_key(name)} if name else set())
    hit = table[table["id"] == region_id]
    if hit.empty:
        hit = table[table["id"].map(name_key).isin(keys) | table["name"].map(name_key).isin(keys)]
    if hit.empty:
        return None
    return _clean_row(hit.iloc[0].to_dict())


# ---------------------------------------------------------------------------------------------
# published cluster tables (VizieR TSV exports and CSVs)
# ---------------------------------------------------------------------------------------------

_NAME_COLUMNS = ("Cluster", "Name", "name", "cluster")
_ALIAS_COLUMNS = ("AllNames", "SimbadName")
_VALUE_COLUMNS = {
    "pmra": ("pmRA", "pmRA*", "pmra", "pmRA_"),
    "pmdec": ("pmDE", "pmdec", "pmDE_"),
    "parallax": ("plx", "Plx", "parallax"),
}
_COUNT_COLUMNS = ("Nstars", "N", "nbstars07", "n07", "N_membs", "Nmemb")
_LABELS = (
    ("cantat-gaudin2018", "CG2018"),
    ("cantat2018", "CG2018"),
    ("cantat-gaudin2020", "CG2020"),
    ("cantat2020", "CG2020"),
    ("hunt2023", "HR2023"),
    ("hunt2024", "HR2024"),
    ("dias2021", "Dias2021"),
    ("ucc", "UCC"),
)
# Without s_ columns, e_ columns whose median exceeds this (mas/yr) are member dispersions, not
# errors of the mean (the CG2020 CSV and Dias 2021 name their standard deviations e_).
_DISPERSION_THRESHOLD = 0.08


def table_label(path: str | Path) -> str:
    """ "CG2018", "HR2023", ... from the file name; the file's stem otherwise."""
    stem = Path(path).name.lower()
    for pattern, label in _LABELS:
        if pattern in stem:
            return label
    return Path(path).name.split(".")[0]


def _read_any_table(path: Path) -> pd.DataFrame:
    text_lines = _read_text(path).splitlines()
    lines = [ln for ln in text_lines if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise OcdecError(f"{path}: empty cluster table")
    sep = "\t" if "\t" in lines[0] else ","
    header = [h.strip().strip('"') for h in lines[0].split(sep)]
    body = [
        ln
        for ln in lines[1:]
        if ln.split(sep)[0].strip() and not set(ln.split(sep)[0].strip()) <= {"-"}
    ]
    import io

    frame = pd.read_csv(
        io.StringIO("\n".join(body)),
        sep=sep,
        header=None,
        names=header,
        dtype=str,
        quotechar='"',
        skipinitialspace=True,
    )
    return frame.apply(lambda s: s.str.strip())


def _read_text(path: Path) -> str:
    import gzip

    try:
        raw = path.read_bytes()
    except OSError as err:
        raise OcdecError(f"{path}: cannot read cluster table: {err}") from err
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def read_cluster_table(path: str | Path, label: str | None = None) -> pd.DataFrame:
    """A published cluster table normalised to one row per cluster: ``key`` (:func:`name_key`),
    ``aliases`` (set of keys), ``name``, the :data:`REFERENCE_KEYS` values and ``source``.

    Reads VizieR TSV exports (#-comments, unit and dash lines) and CSVs of CG2018, CG2020, Hunt &
    Reffert 2023/2024, Dias 2021 and UCC. Errors of the mean come from ``e_`` columns, or from
    dispersion / sqrt(N) where a table gives only dispersions.
    """
    path = Path(path)
    raw = _read_any_table(path)
    name_col = next((c for c in _NAME_COLUMNS if c in raw), None)
    if name_col is None:
        raise OcdecError(
            f"{path}: cluster table has no name column (one of {', '.join(_NAME_COLUMNS)})"
        )
    out = pd.DataFrame({"name": raw[name_col].astype(str)})
    count_col = next((c for c in _COUNT_COLUMNS if c in raw), None)
    n = (
        pd.to_numeric(raw[count_col], errors="coerce")
        if count_col
        else pd.Series(np.nan, index=raw.index)
    )
    out["n_stars"] = n.astype(float)
    columns = {}
    for key, names in _VALUE_COLUMNS.items():
        col = next((c for c in names if c in raw), None)
        if col is None:
            raise OcdecError(
                f"{path}: cluster table has no {key} column (one of {', '.join(names)})"
            )
        bare = col.rstrip("*")
        err_col = next((c for c in (f"e_{col}", f"e_{bare}") if c in raw), None)
        sd_col = next((c for c in (f"s_{col}", f"s_{bare}") if c in raw), None)
        columns[key] = (col, err_col, sd_col)
    # Decided once per table from pmra: the same paper names all its columns the same way.
    pm_err = columns["pmra"][1]
    errors_are_sd = (
        columns["pmra"][2] is None
        and pm_err is not None
        and float(np.nanmedian(pd.to_numeric(raw[pm_err], errors="coerce"))) > _DISPERSION_THRESHOLD
    )
    if errors_are_sd:
        log.info("%s: e_ columns hold member dispersions; errors are dispersion / sqrt(N)", path)
    for key, (col, err_col, sd_col) in columns.items():
        out[key] = pd.to_numeric(raw[col], errors="coerce").astype(float)
        if errors_are_sd:
            sd_col, err_col = err_col, None
        if err_col is not None:
            out[f"{key}_error"] = pd.to_numeric(raw[err_col], errors="coerce").astype(float)
        elif sd_col is not None:
            sd = pd.to_numeric(raw[sd_col], errors="coerce").astype(float)
            out[f"{key}_error"] = sd / np.sqrt(n.where(n > 0))
        else:
            out[f"{key}_error"] = np.nan
    aliases = [{name_key(v)} for v in out["name"]]
    for col in _ALIAS_COLUMNS:
        if col in raw:
            for i, text in enumerate(raw[col].fillna("")):
                aliases[i] |= {name_key(a) for a in re.split(r"[,;]", text) if a.strip()}
    out["key"] = [name_key(v) for v in out["name"]]
    out["aliases"] = aliases
    out["source"] = label or table_label(path)
    log.info(
        "read %d clusters from %s (%s)", len(out), path, out["source"].iloc[0] if len(out) else ""
    )
    return out


def cluster_table_reference(
    table: pd.DataFrame, region_id: str, name: str | None = None
) -> dict | None:
    """The table's row for a region: by primary name first, then by any alias (HR2023 AllNames)."""
    keys = [name_key(region_id)] + ([name_key(name)] if name else [])
    keys += [name_key(a) for a in ALIASES.get(keys[0], ())]
    for key in keys:
        hit = table[table["key"] == key]
        if not hit.empty:
            return _clean_row(hit.iloc[0].to_dict())
    for key in keys:
        hit = table[table["aliases"].map(lambda s, k=key: k in s)]
        if not hit.empty:
            return _clean_row(hit.iloc[0].to_dict())
    return None


# ---------------------------------------------------------------------------------------------
# one region's references, on disk
# ---------------------------------------------------------------------------------------------


def region_references(
    region_id: str,
    name: str | None = None,
    *,
    simbad: bool = False,
    simbad_cache: str | Path | None = None,
    client: TapClient | None = None,
    reference_table: pd.DataFrame | None = None,
    cluster_tables: Iterable[pd.DataFrame] = (),
    retries: int = 3,
    wait_s: float = 2.0,
    timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Reference rows for one region, the comparison's reference first.

    Order: SIMBAD (when ``simbad``), then the offline table's row, then each cluster table that
    lists the cluster. A SIMBAD failure is logged and the offline rows stand in (a run without the
    network still ends in a comparison); it is an error only when nothing else is available.
    """
    name = name or display_name(region_id)
    rows: list[dict[str, Any]] = []
    simbad_error: OcdecError | None = None
    if simbad:
        try:
            if simbad_cache is not None:
                rows.append(
                    simbad_reference(
                        name,
                        simbad_cache,
                        client=client,
                        retries=retries,
                        wait_s=wait_s,
                        timeout_s=timeout_s,
                    )
                )
            else:
                rows.append(
                    fetch_simbad(
                        name, client=client, retries=retries, wait_s=wait_s, timeout_s=timeout_s
                    )
                )
        except OcdecError as err:
            log.warning("%s: no SIMBAD reference: %s", region_id, err)
            simbad_error = err
    if reference_table is not None:
        row = table_reference(reference_table, region_id, name)
        if row is not None:
            rows.append(row)
    for table in cluster_tables:
        row = cluster_table_reference(table, region_id, name)
        if row is not None:
            rows.append(row)
    if simbad_error is not None and not rows:
        raise simbad_error
    if not rows:
        log.warning("%s: no reference values in any source", region_id)
    return rows


def write_references(path: str | Path, region_id: str, name: str, rows: Sequence[Mapping]) -> None:
    """``resources/reference/{region}.json``: {"region", "name", "utc", "references": [rows]}.

    A SIMBAD row is also stored under "simbad", so the same file serves as SIMBAD's cache.
    """
    clean = [_clean_row(r) for r in rows]
    simbad = next((r for r in clean if r["source"] == "SIMBAD"), None)
    write_json(
        path,
        {"region": region_id, "name": name, "utc": _utc(), "references": clean, "simbad": simbad},
    )


def read_references(path: str | Path) -> list[dict[str, Any]]:
    """The reference rows stored by :func:`write_references` (NaN where a value is missing)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise OcdecError(f"{path}: cannot read reference values: {err}") from err
    return [_clean_row(r) for r in data.get("references", [])]


def _clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"source": str(row.get("source") or "reference")}
    for key in REFERENCE_KEYS[1:]:
        value = row.get(key)
        out[key] = math.nan if value is None else _float(value)
    if row.get("detail"):
        out["detail"] = str(row["detail"])
    elif row.get("name") and isinstance(row.get("name"), str):
        out["detail"] = str(row["name"])
    # JSON has no NaN in strict readers; write_json emits NaN, which Python's json reads back.
    return out


def _utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
