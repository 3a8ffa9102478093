"""Regions from the Dias et al. (2002) open-cluster catalogue (VizieR B/ocl) and the region table.

The catalogue is read with astropy's CDS reader from ``clusters.dat`` and its byte-by-byte
``ReadMe`` (whatever the ReadMe's file name), or from a table fetched from VizieR with astroquery.
Regions are the clusters larger than a minimum apparent diameter (25 arcmin in the thesis: 243 on
B/ocl v3.5); each becomes one row of the region table (``config/regions.tsv``), which users may edit
or regenerate from another catalogue and which :func:`read_regions` validates.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import atomic_path, write_tsv

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

# astropy is imported where the Dias catalogue is read: read_regions, which every workflow run
# calls while Snakemake reads the Snakefile (before any job starts), needs only pandas.

log = logging.getLogger(__name__)

REGION_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "ra",
    "dec",
    "diameter_arcmin",
    "radius_deg",
    "distance_pc",
    "parallax_prior",
    "pmra_prior",
    "pmdec_prior",
)
#: Columns that must hold a number in every row of a region table.
REQUIRED_NUMERIC: tuple[str, ...] = ("ra", "dec", "radius_deg")
#: Columns that may be empty (no prior) but must be numeric where filled.
OPTIONAL_NUMERIC: tuple[str, ...] = (
    "diameter_arcmin",
    "distance_pc",
    "parallax_prior",
    "pmra_prior",
    "pmdec_prior",
)
#: Optional numeric columns read where a table has them (not added where it lacks them):
#: ``expected_stars`` sizes the workflow's memory and runtime requests.
EXTRA_NUMERIC: tuple[str, ...] = ("expected_stars",)
#: Every column ocdec reads (the properties of workflow/schemas/regions.schema.yaml). Other columns
#: (notes, VizieR columns) are kept and ignored, unless one looks like a misspelt known column.
KNOWN_COLUMNS: tuple[str, ...] = REGION_COLUMNS + EXTRA_NUMERIC
#: difflib similarity (0-1, case ignored) from which an unknown column is taken for a misspelling
#: of a known column the table lacks: ``parralax_prior`` (0.93), ``pm_ra_prior`` (0.95),
#: ``raduis_deg`` (0.90), ``Parallax_Prior`` (1.0) are refused; ``notes``, ``Cluster`` and
#: VizieR's ``pmRA`` (0.67), ``Dist`` (0.53), ``RAJ2000`` (0.44) are kept, and so is
#: ``parallax_error`` (0.86) beside a ``parallax_prior``, since only absent columns are matched.
MISSPELT_CUTOFF = 0.85
#: Last words of a column name that make it another quantity than a known column ending in
#: another word, not a misspelling of it: ``parallax_error`` beside ``parallax_prior``,
#: ``distance_kpc``, ``diameter_arcsec`` (a typo, ``pmra_prio``, ends in no such word).
QUANTITY_SUFFIXES = frozenset({
    "error", "err", "e", "sd", "std", "sigma", "unc", "lo", "hi", "min", "max", "16", "84",
    "pc", "kpc", "mpc", "ly", "deg", "rad", "arcmin", "arcsec", "mas", "masyr", "kms",
    "ref", "lit", "flag", "note", "notes", "n", "count",
})

DEFAULT_MIN_DIAMETER_ARCMIN = 25.0
DEFAULT_RADIUS_FACTOR = 1.5
VIZIER_CATALOGUE = "B/ocl"
#: File name of the table saved by :func:`fetch_dias_catalogue`.
FETCHED_NAME = "B_ocl_clusters.ecsv"

_README_NAMES = ("ReadMe", "ReadMe.txt", "README", "readme", "readme.txt", "README.txt")
_SLUG_ALLOWED = re.compile(r"[^A-Za-z0-9_.+-]+")


def slugify(name: str) -> str:
    """A file- and wildcard-safe id: ``"NGC 2682"`` -> ``"NGC_2682"``.

    Runs of spaces (or other unsafe characters) become one underscore; ``+``, ``-`` and ``.`` are
    kept because catalogue designations such as ``Skiff J0058+68.4`` need them to stay distinct.
    """
    slug = _SLUG_ALLOWED.sub("_", name.strip()).strip("_")
    if not slug:
        raise OcdecError(f"cluster name {name!r} gives an empty region id")
    return slug


def _find_readme(directory: Path) -> Path | None:
    for name in _README_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def read_dias_catalogue(location: str | os.PathLike[str]) -> Table:
    """Read B/ocl from a directory, its ReadMe, its ``clusters.dat`` or a fetched table file.

    A directory may hold ``clusters.dat`` with a CDS ReadMe (``ReadMe`` or ``ReadMe.txt``), or the
    table saved by :func:`fetch_dias_catalogue`.
    """
    path = Path(location)
    if not path.exists():
        raise OcdecError(f"{path}: no such catalogue file or directory")
    if path.is_dir():
        data, readme = path / "clusters.dat", _find_readme(path)
        if data.is_file() and readme is not None:
            return _read_cds(data, readme)
        if (path / FETCHED_NAME).is_file():
            return _read_fetched(path / FETCHED_NAME)
        raise OcdecError(
            f"{path}: holds neither clusters.dat with a CDS ReadMe nor {FETCHED_NAME}"
        )
    if path.suffix.lower() in (".ecsv", ".vot", ".xml", ".fits"):
        return _read_fetched(path)
    if path.name.lower().startswith("readme"):
        data = path.parent / "clusters.dat"
        if not data.is_file():
            raise OcdecError(f"{data}: no such file (the catalogue data beside the ReadMe {path})")
        return _read_cds(data, path)
    readme = _find_readme(path.parent)
    if readme is None:
        raise OcdecError(f"{path}: no CDS ReadMe beside it (looked for {', '.join(_README_NAMES)})")
    return _read_cds(path, readme)


def _read_cds(data: Path, readme: Path) -> Table:
    from astropy.io import ascii

    try:
        # The ReadMe describes several files; naming it explicitly lets the reader find the
        # byte-by-byte description of clusters.dat whatever the ReadMe itself is called.
        table = ascii.read(data, format="cds", readme=str(readme))
    except Exception as err:  # the CDS reader raises assorted errors; the user needs one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OcdecError(f"{data}: cannot read with the CDS ReadMe {readme}: {first}") from err
    log.info("read %d clusters from %s (ReadMe %s)", len(table), data, readme)
    return table


def _read_fetched(path: Path) -> Table:
    from astropy.table import Table

    try:
        table = Table.read(path)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OcdecError(f"{path}: cannot read the catalogue table: {first}") from err
    log.info("read %d clusters from %s", len(table), path)
    return table


def _column(table: Table, *names: str) -> str | None:
    lower = {c.lower(): c for c in table.colnames}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _floats(table: Table, name: str | None) -> np.ndarray:
    if name is None:
        return np.full(len(table), np.nan)
    values = np.ma.asarray(table[name])
    if values.dtype.kind in "US":  # VizieR sometimes sends blanks as empty strings
        values = np.ma.asarray(pd.to_numeric(pd.Series(values.filled("")), errors="coerce"))
    return values.astype(np.float64).filled(np.nan)


def _strings(table: Table, name: str) -> list[str]:
    return [str(v).strip() if v is not np.ma.masked else "" for v in table[name]]


def _positions(table: Table) -> SkyCoord:
    """ICRS (J2000) positions from CDS sexagesimal parts, VizieR strings or decimal degrees."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    if {"RAh", "RAm", "RAs", "DEd"} <= set(table.colnames):
        sign_col = _column(table, "DE-")
        signs = _strings(table, sign_col) if sign_col else ["+"] * len(table)
        ra_parts = (_floats(table, n) for n in ("RAh", "RAm", "RAs"))
        de_parts = (_floats(table, _column(table, n)) for n in ("DEd", "DEm", "DEs"))
        ra = [f"{h:.0f}h{m:.0f}m{s}s" for h, m, s in zip(*ra_parts, strict=True)]
        # The sign lives in its own column so that -00 deg keeps it.
        dec = [
            f"{sign or '+'}{d:.0f}d{0 if np.isnan(m) else m:.0f}m{0 if np.isnan(s) else s}s"
            for sign, d, m, s in zip(signs, *de_parts, strict=True)
        ]
        return SkyCoord(ra, dec, frame="icrs")
    ra_deg, de_deg = _column(table, "_RAJ2000", "RAdeg"), _column(table, "_DEJ2000", "DEdeg")
    if ra_deg and de_deg:
        return SkyCoord(_floats(table, ra_deg) * u.deg, _floats(table, de_deg) * u.deg)
    ra_col, de_col = _column(table, "RAJ2000", "RA_ICRS"), _column(table, "DEJ2000", "DE_ICRS")
    if ra_col is None or de_col is None:
        raise OcdecError(f"catalogue has no position columns (have {', '.join(table.colnames)})")
    if table[ra_col].dtype.kind in "US":
        return SkyCoord(_strings(table, ra_col), _strings(table, de_col),
                        unit=(u.hourangle, u.deg), frame="icrs")
    return SkyCoord(_floats(table, ra_col) * u.deg, _floats(table, de_col) * u.deg)


def regions_from_catalogue(
    table: Table,
    min_diameter_arcmin: float = DEFAULT_MIN_DIAMETER_ARCMIN,
    radius_factor: float = DEFAULT_RADIUS_FACTOR,
) -> pd.DataFrame:
    """Select clusters with apparent diameter strictly above ``min_diameter_arcmin``.

    The cone radius is ``radius_factor`` times the catalogue radius (diameter / 2); the parallax
    prior is 1000 / distance (mas); proper-motion priors are the catalogue's where it has them.
    """
    if radius_factor <= 0:
        raise OcdecError(f"radius factor must be positive, got {radius_factor}")
    name_col, diam_col = _column(table, "Cluster", "Name"), _column(table, "Diam")
    if name_col is None or diam_col is None:
        have = ", ".join(table.colnames)
        raise OcdecError(f"catalogue lacks the Cluster or Diam column (have {have})")
    diameter = _floats(table, diam_col)
    keep = np.nan_to_num(diameter, nan=-np.inf) > min_diameter_arcmin
    selected = table[keep]
    coords = _positions(selected)
    names = _strings(selected, name_col)
    distance = _floats(selected, _column(selected, "Dist"))
    with np.errstate(divide="ignore", invalid="ignore"):
        parallax = np.where(distance > 0, 1000.0 / distance, np.nan)
    frame = pd.DataFrame(
        {
            "id": [slugify(n) for n in names],
            "name": names,
            "ra": coords.ra.deg,
            "dec": coords.dec.deg,
            "diameter_arcmin": diameter[keep],
            "radius_deg": radius_factor * diameter[keep] / 2.0 / 60.0,
            "distance_pc": distance,
            "parallax_prior": parallax,
            "pmra_prior": _floats(selected, _column(selected, "pmRA")),
            "pmdec_prior": _floats(selected, _column(selected, "pmDE")),
        }
    )
    frame["id"] = _unique_ids(frame["id"].tolist())
    log.info(
        "selected %d of %d clusters with diameter > %g arcmin (radius factor %g)",
        len(frame), len(table), min_diameter_arcmin, radius_factor,
    )
    return frame


def _unique_ids(ids: list[str]) -> list[str]:
    # B/ocl lists both "FSR 1496" and "FSR_1496"; later copies get a numbered suffix.
    seen: dict[str, int] = {}
    out = []
    for ident in ids:
        count = seen.get(ident, 0) + 1
        seen[ident] = count
        unique = ident if count == 1 else f"{ident}_{count}"
        if count > 1:
            log.warning("region id %s appears %d times; copy named %s", ident, count, unique)
        out.append(unique)
    return out


def write_regions(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a region table as TSV, atomically; priors without a value are left empty."""
    missing = [c for c in REGION_COLUMNS if c not in frame.columns]
    if missing:
        raise OcdecError(f"region table lacks columns {', '.join(missing)}")
    extra = [c for c in frame.columns if c not in REGION_COLUMNS]
    write_tsv(path, frame[list(REGION_COLUMNS) + extra])
    log.info("wrote %d regions to %s", len(frame), path)


def unknown_columns(columns: Iterable[str]) -> list[str]:
    """The columns ocdec does not read (kept in the table, ignored), in their order."""
    return [str(c) for c in columns if c not in KNOWN_COLUMNS]


def misspelt_column(column: str, absent: Iterable[str]) -> str | None:
    """The known column among ``absent`` (those a table lacks) that ``column`` looks like a
    misspelling of (:data:`MISSPELT_CUTOFF`, case ignored), or None."""
    name = column.lower()
    match = difflib.get_close_matches(name, list(absent), n=1, cutoff=MISSPELT_CUTOFF)
    if not match:
        return None
    stem, _, last = name.rpartition("_")
    known_stem, _, known_last = match[0].rpartition("_")
    if stem and last != known_last and last in QUANTITY_SUFFIXES:
        return None  # another quantity of the same thing (an error, another unit)
    return match[0]


def read_regions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a region table (TSV). Extra columns are kept.

    Raises :class:`OcdecError` naming the file, line (the header is line 1), id and column for:
    an unknown column that looks like a misspelt known one the table lacks (``parralax_prior``:
    did you mean ``parallax_prior``?), a missing required column, an empty or duplicated id, a
    non-numeric value, a radius outside (0, 30] deg, a negative ``expected_stars`` (read as a
    number where the table has that column), or a position out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise OcdecError(f"{path}: no such region table")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise OcdecError(f"{path}: the region table is empty") from err
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OcdecError(f"{path}: cannot read as a tab-separated table: {first}") from err
    frame.columns = [c.strip() for c in frame.columns]
    # A misspelt optional column would otherwise be ignored without a word (its values lost).
    absent = [c for c in KNOWN_COLUMNS if c not in frame.columns]
    misspelt = [
        f"unknown column {column!r}: did you mean {meant}?"
        for column in unknown_columns(frame.columns)
        if (meant := misspelt_column(column, absent)) is not None
    ]
    if misspelt:
        raise OcdecError(
            f"{path}: line 1: {'; '.join(misspelt)} (a column of your own needs a name unlike "
            "ocdec's)"
        )
    missing = [c for c in ("id", *REQUIRED_NUMERIC) if c not in frame.columns]
    if missing:
        raise OcdecError(f"{path}: region table lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise OcdecError(f"{path}: the region table has no rows")
    frame = frame.apply(lambda col: col.str.strip())

    def row_of(index: Any) -> str:
        # The line in the file: the header is line 1.
        return f"line {int(index) + 2}"

    for index, value in frame["id"].items():
        if not value:
            raise OcdecError(f"{path}: {row_of(index)}: empty id")
        if slugify(value) != value:
            raise OcdecError(
                f"{path}: {row_of(index)}: id {value!r} has characters unsafe in file names "
                f"(use {slugify(value)!r})"
            )
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        index = frame.index[duplicated][0]
        ident = frame.at[index, "id"]
        first = row_of(frame.index[frame["id"] == ident][0])
        raise OcdecError(
            f"{path}: {row_of(index)}: duplicated id {ident!r} (first on {first})"
        )
    if "name" not in frame.columns:
        frame["name"] = frame["id"].str.replace("_", " ")
    extra_numeric = tuple(c for c in EXTRA_NUMERIC if c in frame.columns)
    for column in REQUIRED_NUMERIC + OPTIONAL_NUMERIC + extra_numeric:
        if column not in frame.columns:
            frame[column] = ""
        text = frame[column]
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = values.isna() & (text != "")
        if bad.any():
            index = frame.index[bad][0]
            raise OcdecError(
                f"{path}: {row_of(index)} ({frame.at[index, 'id']}): column {column!r} value "
                f"{text[index]!r} is not a number"
            )
        empty = values.isna()
        if column in REQUIRED_NUMERIC and empty.any():
            index = frame.index[empty][0]
            raise OcdecError(
                f"{path}: {row_of(index)} ({frame.at[index, 'id']}): column {column!r} is empty"
            )
        frame[column] = values.astype(np.float64)
    checks = (
        ("radius_deg", lambda v: v > 0, "must be > 0"),
        # the workflow's regions schema allows no larger cone
        ("radius_deg", lambda v: v <= 30, "must be <= 30"),
        ("ra", lambda v: (v >= 0) & (v < 360), "must be in [0, 360)"),
        ("dec", lambda v: (v >= -90) & (v <= 90), "must be in [-90, 90]"),
        ("diameter_arcmin", lambda v: v.isna() | (v > 0), "must be > 0"),
        ("distance_pc", lambda v: v.isna() | (v > 0), "must be > 0"),
        ("expected_stars", lambda v: v.isna() | (v >= 0), "must be >= 0"),
    )
    for column, ok, rule in checks:
        if column not in frame.columns:
            continue
        bad = ~ok(frame[column])
        if bad.any():
            index = frame.index[bad][0]
            raise OcdecError(
                f"{path}: {row_of(index)} ({frame.at[index, 'id']}): column {column!r} is "
                f"{frame.at[index, column]:g}, {rule}"
            )
    ordered = [c for c in REGION_COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in REGION_COLUMNS]].reset_index(
        drop=True
    )


def fetch_dias_catalogue(dest_dir: str | os.PathLike[str], vizier: Any = None) -> Path:
    """Download B/ocl from VizieR with astroquery and save it as ``dest_dir/B_ocl_clusters.ecsv``.

    ``vizier`` is an astroquery ``Vizier`` instance (or a test double with ``get_catalogs``); the
    default asks for every column and no row limit (astroquery's default returns only 50 rows).
    """
    if vizier is None:
        from astroquery.vizier import Vizier  # imported here: no network or setup at import

        vizier = Vizier(columns=["**", "_RAJ2000", "_DEJ2000"], row_limit=-1)
    elif hasattr(vizier, "ROW_LIMIT"):
        vizier.ROW_LIMIT = -1
    try:
        tables = vizier.get_catalogs(VIZIER_CATALOGUE)
    except Exception as err:  # network and server faults: one line, not a trace
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OcdecError(f"VizieR {VIZIER_CATALOGUE}: download failed: {first}") from err
    table = _pick_clusters_table(tables)
    destination = Path(dest_dir) / FETCHED_NAME
    with atomic_path(destination) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    log.info("fetched %d clusters of VizieR %s to %s", len(table), VIZIER_CATALOGUE, destination)
    return destination


def _pick_clusters_table(tables: Any) -> Table:
    keys = list(tables.keys()) if hasattr(tables, "keys") else []
    for key in keys:
        if str(key).rstrip("/").endswith("clusters"):
            return tables[key]
    if len(tables) == 0:
        raise OcdecError(f"VizieR {VIZIER_CATALOGUE}: the answer holds no table")
    table = tables[0]
    if _column(table, "Cluster") is None or _column(table, "Diam") is None:
        raise OcdecError(
            f"VizieR {VIZIER_CATALOGUE}: no table with Cluster and Diam (got {keys or 'a list'})"
        )
    return table
