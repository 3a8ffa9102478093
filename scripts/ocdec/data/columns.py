"""The canonical star table and readers that bring any Gaia export to it.

Every source (archive download, a user's local file, a simulation) ends as a pandas DataFrame with
:data:`CANONICAL_COLUMNS` in the units of :data:`CANONICAL_UNITS`. Files may use the archive's
``gaia_source`` names (DR2/DR3) or VizieR's I/345 (DR2) and I/355 (DR3) names, in any letter case;
where a file carries units (FITS, VOTable, ECSV, astropy Parquet) they are converted with
astropy units, so a parallax stored in arcsec arrives in mas.

Rows are checked as they are read: rows without a star id are dropped with a warning (unless they
are most of the file), exact duplicate rows are dropped with a warning, and two different rows
with the same ``source_id`` are refused. A file whose suffix says nothing about its format
(``.txt``, ``.dat``, ``.tsv``, none) is recognised by its content: CSV, tab- or '|'-separated,
whitespace-aligned (VizieR's ASCII output, with its unit and dashes lines), ECSV, VOTable, FITS or
Parquet.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ocdec.allocator import release_freed_memory
from ocdec.errors import OcdecError

if TYPE_CHECKING:  # astropy is imported where a file carries units: a second of start-up
    import astropy.units as u
    from astropy.table import Table

log = logging.getLogger(__name__)

CANONICAL_COLUMNS: tuple[str, ...] = (
    "source_id",
    "ra",
    "dec",
    "parallax",
    "parallax_error",
    "pmra",
    "pmra_error",
    "pmdec",
    "pmdec_error",
    "phot_g_mean_mag",
    "phot_bp_mean_mag",
    "phot_rp_mean_mag",
    "bp_rp",
    "ruwe",
)

#: Columns kept beside the canonical ones when present (simulated fields carry the truth).
EXTRA_COLUMNS: tuple[str, ...] = ("true_member",)

#: Numeric columns kept beside the canonical ones where present: what the (E)DR3 parallax
#: zero point of Lindegren et al. (2021) needs (:mod:`ocdec.physics.zero_point`).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "nu_eff_used_in_astrometry": ("nu_eff_used_in_astrometry", "nueff"),
    "pseudocolour": ("pseudocolour", "pscol"),
    "ecl_lat": ("ecl_lat", "ELAT"),
    "astrometric_params_solved": ("astrometric_params_solved", "Solved"),
}

#: Canonical units by column (astropy unit strings; :data:`CANONICAL_UNITS` as astropy units).
CANONICAL_UNIT_NAMES: dict[str, str | None] = {
    "source_id": None,
    "ra": "deg",
    "dec": "deg",
    "parallax": "mas",
    "parallax_error": "mas",
    "pmra": "mas / yr",
    "pmra_error": "mas / yr",
    "pmdec": "mas / yr",
    "pmdec_error": "mas / yr",
    "phot_g_mean_mag": "mag",
    "phot_bp_mean_mag": "mag",
    "phot_rp_mean_mag": "mag",
    "bp_rp": "mag",
    "ruwe": None,
}


def __getattr__(name: str) -> Any:
    # CANONICAL_UNITS is built on first use so that reading Parquet or CSV needs no astropy.
    if name == "CANONICAL_UNITS":
        import astropy.units as u

        units = {k: None if v is None else u.Unit(v) for k, v in CANONICAL_UNIT_NAMES.items()}
        globals()["CANONICAL_UNITS"] = units
        return units
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Accepted names for each canonical column, in order of preference (matched ignoring case).
#: Archive gaia_source names first, then VizieR I/355 (DR3) and I/345 (DR2) labels. RA_ICRS and
#: DE_ICRS are the epoch-2016/2015.5 positions like the archive's ra/dec; RAJ2000 is a fallback.
ALIASES: dict[str, tuple[str, ...]] = {
    "source_id": ("source_id", "Source", "DR3Name", "DR2Name", "EDR3Name", "GaiaDR3", "GaiaEDR3",
                  "GaiaDR2", "designation"),
    "ra": ("ra", "RA_ICRS", "RAdeg", "RA_ICRS_deg", "RAJ2000", "_RAJ2000"),
    "dec": ("dec", "DE_ICRS", "DEdeg", "DE_ICRS_deg", "DEJ2000", "_DEJ2000"),
    "parallax": ("parallax", "Plx"),
    "parallax_error": ("parallax_error", "e_Plx"),
    "pmra": ("pmra", "pmRA", "pmRA*"),
    "pmra_error": ("pmra_error", "e_pmRA", "e_pmRA*"),
    "pmdec": ("pmdec", "pmDE"),
    "pmdec_error": ("pmdec_error", "e_pmDE"),
    "phot_g_mean_mag": ("phot_g_mean_mag", "Gmag"),
    "phot_bp_mean_mag": ("phot_bp_mean_mag", "BPmag"),
    "phot_rp_mean_mag": ("phot_rp_mean_mag", "RPmag"),
    "bp_rp": ("bp_rp", "BP-RP", "BP_RP", "BPRP"),
    "ruwe": ("ruwe", "RUWE"),
}

#: Used to derive parallax_error where an export only kept the signal-to-noise ratio.
_PARALLAX_OVER_ERROR = ("parallax_over_error", "RPlx")

#: At most this fraction of a file's rows may lack a star id (they are dropped with a warning).
MAX_MISSING_ID_FRACTION = 0.5

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".vot": "votable",
    ".xml": "votable",
    ".votable": "votable",
    ".ecsv": "ecsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Suffixes that say nothing about the format: the content decides (see :func:`sniff_format`).
_TEXT_SUFFIXES = frozenset({".txt", ".dat", ".tsv", ".tab", ".asc", ".ascii", ".text", ""})
_DASHES = re.compile(r"^[\s|+]*-[-\s|+]*$")


def read_stars(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a star file (CSV, CSV.gz, FITS, VOTable, ECSV, Parquet) as a canonical table.

    ``frame.attrs["source_id_is_row"]`` is True where the file had no star ids and the 0-based row
    number stands in for ``source_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise OcdecError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise OcdecError(f"{path}: the file is empty")
    fmt = detect_format(path)
    data = _read_raw(path, fmt, own=True)
    # the file's decompressed pages (and Arrow table), freed, must not stay counted in the job's
    # memory while it makes its next copies (ocdec.allocator)
    release_freed_memory()
    if len(data) == 0:
        raise OcdecError(f"{path}: the file holds no rows")
    frame = normalise(data, origin=str(path))
    del data
    release_freed_memory()
    log.info("read %d stars from %s (%s)", len(frame), path, fmt)
    return frame


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame | Table:
    """A star file as read, before normalisation (all its columns, its own names)."""
    path = Path(path)
    if not path.is_file():
        raise OcdecError(f"{path}: no such file")
    return _read_raw(path, detect_format(path))


def detect_format(path: Path) -> str:
    """The reader for ``path`` from its suffix (``.gz`` stripped); ECSV is recognised by content,
    and so is every format behind a suffix that says nothing (``.txt``, ``.dat``, none)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _TEXT_SUFFIXES or not re.fullmatch(r"\.[a-z][a-z0-9]*", last):
        return sniff_format(path)
    fmt = _SUFFIX_FORMATS.get(last)
    if fmt is None:
        known = ", ".join(sorted(_SUFFIX_FORMATS))
        raise OcdecError(f"{path}: unknown star-file format (known suffixes: {known}, also .gz; "
                         f"{', '.join(sorted(s for s in _TEXT_SUFFIXES if s))} are recognised by "
                         "their content)")
    if fmt == "csv" and _starts_with(path, b"# %ECSV"):
        fmt = "ecsv"
    return fmt


def sniff_format(path: Path) -> str:
    """The format of a file from its first bytes: ``parquet``, ``fits``, ``votable``, ``ecsv``,
    ``csv``, ``tsv`` (tabs), ``psv`` ('|') or ``whitespace`` (aligned columns)."""
    head = _head(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if b"\0" in head[:4096]:
        raise OcdecError(f"{path}: cannot tell the format of this binary file (give it a suffix "
                         f"such as {', '.join(sorted(_SUFFIX_FORMATS))})")
    text = head.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("# %ECSV"):
        return "ecsv"
    if stripped.startswith("<?xml") or stripped[:200].upper().startswith("<VOTABLE"):
        return "votable"
    header = next((line for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")), "")
    if "\t" in header:
        return "tsv"
    if "|" in header:
        return "psv"
    if "," in header:
        return "csv"
    return "whitespace"


def _head(path: Path, size: int = 65536) -> bytes:
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(size)
    except (OSError, EOFError) as err:
        raise OcdecError(f"{path}: cannot read ({err})") from err


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _starts_with(path: Path, prefix: bytes) -> bool:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(len(prefix)) == prefix
    except OSError:
        return False


def _read_delimited(path: Path, fmt: str) -> pd.DataFrame:
    """A tab-, '|'- or whitespace-separated table; VizieR's unit and dashes lines below the header
    are skipped, and with a dashes line the columns are cut where its dashes are (so empty cells
    of aligned output stay empty instead of shifting the row)."""
    compression = "gzip" if _is_gzip(path) else None
    lines = _head(path, 1 << 20).decode("utf-8", errors="replace").splitlines()
    header_at = next((i for i, line in enumerate(lines)
                      if line.strip() and not line.lstrip().startswith("#")), 0)
    dashes_at = next((i for i in range(header_at + 1, min(header_at + 4, len(lines)))
                      if _DASHES.match(lines[i])), None)
    skip = list(range(header_at + 1, dashes_at + 1)) if dashes_at is not None else []
    if fmt == "whitespace" and dashes_at is not None:
        spans = [m.span() for m in re.finditer(r"-+", lines[dashes_at])]
        words = lines[header_at].split()
        names = (words if len(words) == len(spans)
                 else [lines[header_at][a:b].strip() or f"col{i}" for i, (a, b) in
                       enumerate(spans)])
        return pd.read_fwf(path, colspecs=spans, names=names, skiprows=dashes_at + 1,
                           comment="#", dtype=str, compression=compression)
    sep = {"tsv": "\t", "psv": "|", "whitespace": r"\s+"}[fmt]
    frame = pd.read_csv(path, sep=sep, comment="#", skiprows=skip, dtype=str,
                        skipinitialspace=True, compression=compression)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_raw(path: Path, fmt: str, own: bool = False) -> pd.DataFrame | Table:
    """The file's table as read. ``own``: only this module sees it (a Parquet file's columns
    may then be pyarrow's read-only buffers, each freed as soon as it is converted)."""
    try:
        if fmt == "csv":
            # pandas is much faster than astropy on the 250,000-row exports and reads .gz itself.
            # The id column is read as text: with empty cells pandas would make it float, and
            # Gaia ids need 63 bits.
            compression = "gzip" if _is_gzip(path) else None
            names = [str(c) for c in pd.read_csv(path, comment="#", nrows=0,
                                                 compression=compression).columns]
            id_name = find_column(names, "source_id")
            return pd.read_csv(path, comment="#", low_memory=False, compression=compression,
                               dtype={id_name: str} if id_name else None)
        if fmt in ("tsv", "psv", "whitespace"):
            return _read_delimited(path, fmt)
        if fmt == "parquet" and not _astropy_parquet(path):
            # no astropy units in the file: pandas reads it faster and without astropy's import
            if not own:
                return pd.read_parquet(path)
            # each column's Arrow memory freed as soon as it is converted (self_destruct)
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)
        from astropy.table import Table

        astropy_format = {"fits": "fits", "votable": "votable", "ecsv": "ascii.ecsv",
                          "parquet": "parquet"}[fmt]
        return Table.read(path, format=astropy_format)
    except pd.errors.EmptyDataError as err:
        raise OcdecError(f"{path}: the file is empty") from err
    except OcdecError:
        raise
    except Exception as err:  # readers raise many types; the user needs one line, not a trace
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OcdecError(f"{path}: cannot read as {fmt}: {first}") from err


def _astropy_parquet(path: Path) -> bool:
    """Whether a Parquet file was written by astropy (its metadata may carry column units)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return b"table_meta_yaml" in metadata


def find_column(names: list[str], canonical: str) -> str | None:
    """The first of ``names`` matching an alias of ``canonical`` (case-insensitive), or None."""
    return _first_match(names, ALIASES[canonical])


def _first_match(names: list[str], aliases: tuple[str, ...]) -> str | None:
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(name.strip().lower(), name)
    for alias in aliases:
        if alias.lower() in by_lower:
            return by_lower[alias.lower()]
    return None


def normalise(data: pd.DataFrame | Table, origin: str) -> pd.DataFrame:
    """Bring a table with archive or VizieR column names to the canonical columns and units.

    ``data`` is a pandas DataFrame (no units: values are taken to be in canonical units) or an
    astropy Table (column units converted). ``origin`` names the data in messages (a file name, a
    query). Raises :class:`OcdecError` when no column is recognised or there is no parallax.
    """
    names = [str(c) for c in data.columns] if isinstance(data, pd.DataFrame) else data.colnames
    matched = {c: find_column(names, c) for c in CANONICAL_COLUMNS}
    if not any(matched.values()):
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise OcdecError(f"{origin}: no usable columns (found: {shown or 'none'})")
    if matched["parallax"] is None:
        raise OcdecError(
            f"{origin}: no parallax column (looked for {', '.join(ALIASES['parallax'])})"
        )
    n_rows = len(data)
    out: dict[str, Any] = {}
    for canonical in CANONICAL_COLUMNS[1:]:
        name = matched[canonical]
        if name is None:
            out[canonical] = np.full(n_rows, np.nan)
        else:
            out[canonical] = _values(data, name, canonical, origin)
    # The frame takes the columns as they are, each already its own copy (_float_values): one
    # copy of the table, not a second one made while the first is alive (a quality job on 18 M
    # rows held both), and never a view of the caller's table.
    frame = pd.DataFrame(out, copy=False)
    del out

    if matched["parallax_error"] is None:
        ratio = _first_match(names, _PARALLAX_OVER_ERROR)
        if ratio is not None:
            # S/N is dimensionless, so the error takes the (already converted) parallax unit.
            snr = _float_values(data, ratio, origin)
            with np.errstate(divide="ignore", invalid="ignore"):
                frame["parallax_error"] = np.abs(frame["parallax"].to_numpy() / snr)
            log.info("%s: parallax_error derived from %s", origin, ratio)

    # Gaia defines bp_rp as BP minus RP; fill it where the export kept only the two magnitudes.
    missing_colour = frame["bp_rp"].isna()
    if missing_colour.any():
        colour = frame["phot_bp_mean_mag"] - frame["phot_rp_mean_mag"]
        frame.loc[missing_colour, "bp_rp"] = colour[missing_colour]

    source_is_row = matched["source_id"] is None
    no_id = np.zeros(n_rows, dtype=bool)
    if source_is_row:
        ids = np.arange(n_rows, dtype=np.int64)
        log.warning("%s: no source id column; using the 0-based row number as source_id", origin)
    else:
        ids, no_id = _source_ids(data, matched["source_id"], origin)
    frame.insert(0, "source_id", ids)

    for extra in EXTRA_COLUMNS:
        name = _first_match(names, (extra,))
        if name is not None:
            frame[extra] = _plain(data, name).astype(bool)

    optional = {c: _first_match(names, a) for c, a in OPTIONAL_COLUMNS.items()}
    for canonical, name in optional.items():
        if name is not None:
            frame[canonical] = _float_values(data, name, origin)

    if no_id.any():
        n_missing = int(no_id.sum())
        if n_missing > MAX_MISSING_ID_FRACTION * n_rows:
            raise OcdecError(
                f"{origin}: column {matched['source_id']!r} is empty in {n_missing} of {n_rows} "
                f"rows (first: row {int(np.flatnonzero(no_id)[0])}); is it the star id column?"
            )
        log.warning("%s: dropped %d of %d rows without a star id in column %r", origin,
                    n_missing, n_rows, matched["source_id"])
        frame = frame.loc[~no_id].reset_index(drop=True)

    absent = [c for c in CANONICAL_COLUMNS[1:] if matched[c] is None]
    if matched["parallax_error"] is None and frame["parallax_error"].notna().any():
        absent.remove("parallax_error")  # derived from parallax_over_error
    if matched["bp_rp"] is None and frame["bp_rp"].notna().any():
        absent.remove("bp_rp")  # derived from BP and RP

    used = {v for v in matched.values() if v} | set(EXTRA_COLUMNS)
    used |= {v for v in optional.values() if v}
    ignored = [n for n in names if n not in used]
    if ignored:
        log.debug("%s: columns not in the canonical table ignored: %s", origin, ", ".join(ignored))
    frame.attrs["source_id_is_row"] = source_is_row
    frame.attrs["origin"] = origin
    frame.attrs["absent_columns"] = absent
    return drop_duplicate_stars(frame, origin)


def drop_duplicate_stars(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """``frame`` without exact duplicate rows (dropped with a warning naming the count); two rows
    with the same ``source_id`` but different values are a one-line :class:`OcdecError`.

    A star counted twice is a member counted twice and skews every score, so neither passes
    silently. Frames whose ``source_id`` is the row number are returned as they are.
    """
    if frame.attrs.get("source_id_is_row") or "source_id" not in frame.columns:
        return frame
    ids = frame["source_id"].to_numpy()
    if ids.dtype.kind in "iu" and bool((ids[1:] > ids[:-1]).all()):
        # ascending ids repeat none: the Gaia archive's order, and so every table made from one
        # (a comparison instead of a hash of every id, which the quality and characterize jobs
        # made three times a region: 0.1 s a million stars each)
        return frame
    repeated = frame["source_id"].duplicated(keep=False)
    if not repeated.any():
        return frame
    exact = frame.duplicated(keep="first")
    kept = frame.loc[~exact]
    conflicting = kept["source_id"].duplicated(keep=False)
    if conflicting.any():
        star = kept.loc[conflicting, "source_id"].iloc[0]
        rows = np.flatnonzero((frame["source_id"] == star).to_numpy())
        n_stars = int(kept.loc[conflicting, "source_id"].nunique())
        raise OcdecError(
            f"{origin}: source_id {star} is in rows {rows[0]} and {rows[1]} with different "
            f"values ({n_stars} star(s) listed more than once so); a star table must list each "
            "star once"
        )
    log.warning("%s: dropped %d exact duplicate row(s) (stars listed more than once)", origin,
                int(exact.sum()))
    out = kept.reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def _plain(data: pd.DataFrame | Table, name: str) -> np.ndarray:
    """The column as a plain numpy array, masked entries as NaN where the type allows."""
    if isinstance(data, pd.DataFrame):
        return data[name].to_numpy()
    column = data[name]
    if not hasattr(column, "mask"):
        return np.asarray(column)
    values = np.ma.asarray(column)
    if not np.ma.getmaskarray(values).any():
        return np.asarray(values.data)  # keeps 64-bit ids exact
    if values.dtype.kind in "fiu":
        return values.astype(np.float64).filled(np.nan)
    return values.astype(object).filled(None)


def _float_values(data: pd.DataFrame | Table, name: str, origin: str) -> np.ndarray:
    values = _plain(data, name)
    try:
        # one copy, the column's own and writable (pandas 3 copies into a Series by default, and
        # a float column's to_numpy is a read-only view of it: two copies where one will do)
        return pd.to_numeric(pd.Series(values, copy=False), errors="raise").to_numpy(
            dtype=np.float64, copy=True)
    except (ValueError, TypeError) as err:
        raise OcdecError(f"{origin}: column {name!r} is not numeric ({err})") from err


def _values(data: pd.DataFrame | Table, name: str, canonical: str, origin: str) -> np.ndarray:
    values = _float_values(data, name, origin)
    unit = None if isinstance(data, pd.DataFrame) else data[name].unit
    if unit is None or CANONICAL_UNIT_NAMES[canonical] is None:
        return values
    import astropy.units as u

    target = u.Unit(CANONICAL_UNIT_NAMES[canonical])
    if unit == u.dimensionless_unscaled:
        return values
    if target == u.mag:
        # Magnitudes carry no scale to convert; spellings vary (mag, mag(AB), "Vega mag").
        return values
    if isinstance(unit, u.UnrecognizedUnit):
        unit = _salvage_unit(str(unit), name, origin)
    try:
        factor = (1.0 * unit).to_value(target)
    except u.UnitConversionError as err:
        raise OcdecError(
            f"{origin}: column {name!r} has unit {unit!s}, not convertible to {target!s}"
        ) from err
    if factor != 1.0:
        log.info("%s: column %s converted from %s to %s", origin, name, unit, target)
    return values * factor


def _salvage_unit(text: str, name: str, origin: str) -> u.UnitBase:
    """Parse unit spellings astropy's readers leave unrecognised: 'mas/yr' quoted, Angle[deg]."""
    import astropy.units as u

    inner = re.search(r"\[([^\]]+)\]", text)
    candidate = (inner.group(1) if inner else text).strip().strip("'\"")
    for fmt in (None, "cds", "vounit"):
        try:
            return u.Unit(candidate, format=fmt)
        except ValueError:
            continue
    raise OcdecError(f"{origin}: column {name!r} has unit {text!r} that is not understood")


def _source_ids(data: pd.DataFrame | Table, name: str,
                origin: str) -> tuple[np.ndarray, np.ndarray]:
    """The ids as int64 and a mask of the rows without one (empty cells; their id is 0).

    A cell that holds something other than an id is a one-line error naming its row.
    """
    if not isinstance(data, pd.DataFrame) and hasattr(data[name], "mask"):
        masked = np.ma.asarray(data[name])
        if masked.dtype.kind in "iu":  # keep 64-bit ids exact: no detour through float
            missing = np.ma.getmaskarray(masked)
            return masked.filled(0).astype(np.int64), missing
    values = _plain(data, name)
    if values.dtype.kind in "iu":
        return values.astype(np.int64), np.zeros(len(values), dtype=bool)
    if values.dtype.kind == "f":
        # Gaia ids need 63 bits: a float column is only exact below 2**53.
        missing = np.isnan(values)
        bad = ~missing & (~np.isfinite(values) | (values % 1 != 0) | (np.abs(values) > 2**53))
        text = None
    else:
        # VizieR's DR3Name/DR2Name hold "Gaia DR3 4295806720": the id is the trailing number.
        cells = pd.Series(values, dtype="string").str.strip()
        missing = (cells.isna() | (cells == "")).to_numpy()
        text = cells.str.extract(r"(\d+)$", expand=False)
        bad = text.isna().to_numpy() & ~missing
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise OcdecError(f"{origin}: column {name!r} row {row}: {values[row]!r} is not a star id")
    if text is None:
        return np.where(missing, 0, values).astype(np.int64), missing
    try:
        ids = text.fillna("0").astype("int64").to_numpy()
    except (OverflowError, ValueError) as err:
        raise OcdecError(f"{origin}: column {name!r} holds a number too large for a star id "
                         f"({err})") from err
    return ids, missing
