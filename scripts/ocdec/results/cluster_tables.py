"""Published cluster catalogues (Cantat-Gaudin 2018/2020, Hunt & Reffert 2023/2024, Dias 2021,
UCC; VizieR TSV exports and CSVs) read into one normalised table, and a cluster's row in it."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.results.reference_rows import ALIASES, clean_row, name_key

log = logging.getLogger(__name__)

_NAME_COLUMNS = ("Cluster", "Name", "Name(s)", "name", "cluster")
_ALIAS_COLUMNS = ("AllNames", "SimbadName", "Name(s)")
_VALUE_COLUMNS = {
    "pmra": ("pmRA", "pmRA*", "pmra", "pmRA_"),
    "pmdec": ("pmDE", "pmdec", "pmDE_"),
    "parallax": ("plx", "Plx", "parallax"),
}
_POSITION_COLUMNS = {"ra": ("RA_ICRS", "RAJ2000", "RAdeg", "ra", "RA"),
                     "dec": ("DE_ICRS", "DEJ2000", "DEdeg", "dec", "DEC", "DE")}
# Half-number radius: degrees in CG2018/2020 and Hunt & Reffert, arcmin in the UCC.
_R50_COLUMNS = (("r50", 1.0), ("r_50", 1.0 / 60.0))
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
    ``aliases`` (set of keys), ``name``, the :data:`REFERENCE_KEYS` values, ``ra``, ``dec`` and
    ``r50_deg`` (NaN where the table has none) and ``source``.

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
    # the UCC lists every name of a cluster in one cell: the first is its name, all are aliases
    out = pd.DataFrame({"name": raw[name_col].astype(str).str.split("[,;]").str[0].str.strip()})
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
    for key, names in _POSITION_COLUMNS.items():
        col = next((c for c in names if c in raw), None)
        out[key] = (pd.to_numeric(raw[col], errors="coerce").astype(float) if col
                    else np.nan)
    r50 = next(((c, f) for c, f in _R50_COLUMNS if c in raw), None)
    out["r50_deg"] = (pd.to_numeric(raw[r50[0]], errors="coerce").astype(float) * r50[1]
                      if r50 else np.nan)
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
            return clean_row(hit.iloc[0].to_dict())
    for key in keys:
        hit = table[table["aliases"].map(lambda s, k=key: k in s)]
        if not hit.empty:
            return clean_row(hit.iloc[0].to_dict())
    return None
