"""Members tables and the catalogue summary in the files the community's tools open.

``members.parquet`` and ``summary.tsv`` are always written: the workflow's later rules (the
comparison, figures, summary and report) read them. :func:`export_members` and
:func:`export_summary` add copies in more formats, written with astropy, every column with its
unit and a description, so TOPCAT, astropy, Aladin or a FITS viewer show what each column is:

=========  ===============  =========================================================
format     file             notes
=========  ===============  =========================================================
parquet    ``*.parquet``    astropy's Parquet (units in its metadata); pandas reads it too
fits       ``*.fits``       binary table, units in ``TUNITn``, descriptions in ``TCOMMn``
votable    ``*.vot``        VOTable 1.4, units and ``DESCRIPTION`` per ``FIELD``
csv        ``*.csv``        ECSV: comma-separated, units and descriptions in ``#`` header lines
=========  ===============  =========================================================

(``members.parquet`` itself stays the pandas-written file with the run's provenance; the parquet
format applies to the catalogue summary, ``summary.parquet``.) Writes are atomic: a temporary
file beside the target, renamed onto it when complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import atomic_path
from ocdec.physics.catalogue import COLUMNS as PHYSICS_COLUMNS
from ocdec.products import TABLE_FORMATS

if TYPE_CHECKING:
    from astropy.table import Table

log = logging.getLogger(__name__)

#: Table formats by name, with their file suffix.
FORMATS = TABLE_FORMATS
#: astropy's writer for each format.
_WRITERS = {"parquet": "parquet", "fits": "fits", "votable": "votable", "csv": "ascii.ecsv"}

_PM = "mas / yr"
#: Unit and description of every column a members table may have (the method's own ones too).
MEMBER_COLUMNS: dict[str, tuple[str | None, str]] = {
    "source_id": (None, "Gaia source_id (row number where the input had no identifier)"),
    "p_member": (None, "membership probability (default method: mean over the seeds)"),
    "member": (None, "member of the cluster: p_member >= the threshold"),
    "group": (None, "the method's group of the star (the cluster's group or a field group)"),
    "kmeans_group": (None, "thesis: K-Means group (k chosen by silhouette)"),
    "kmeans_member": (None, "thesis: in the K-Means group picked as the cluster"),
    "dec_group": (None, "thesis: DEC group"),
    "dec_member": (None, "thesis: in the DEC group picked as the cluster"),
    "dec_filtered_member": (None, "thesis: DEC member inside the 0.1/0.9 quantiles of each "
                                  "astrometric feature"),
    "ra": ("deg", "right ascension (ICRS, epoch of the Gaia release)"),
    "dec": ("deg", "declination (ICRS, epoch of the Gaia release)"),
    "parallax": ("mas", "parallax"),
    "parallax_error": ("mas", "standard error of parallax"),
    "pmra": (_PM, "proper motion in right ascension, mu_alpha* = mu_alpha cos(dec)"),
    "pmra_error": (_PM, "standard error of pmra"),
    "pmdec": (_PM, "proper motion in declination"),
    "pmdec_error": (_PM, "standard error of pmdec"),
    "phot_g_mean_mag": ("mag", "Gaia G mean magnitude"),
    "phot_bp_mean_mag": ("mag", "Gaia BP mean magnitude"),
    "phot_rp_mean_mag": ("mag", "Gaia RP mean magnitude"),
    "bp_rp": ("mag", "BP - RP colour"),
    "ruwe": (None, "renormalised unit weight error (Gaia DR3)"),
    "true_member": (None, "simulated fields: the star was drawn as a cluster member (truth)"),
}

#: Unit and description of the catalogue summary's columns; method-prefixed (thesis_, hdbscan_),
#: reference_ and *_error / *_std / *_offset_sigma columns are described from these.
SUMMARY_COLUMNS: dict[str, tuple[str | None, str]] = {
    "region": (None, "region identifier (regions table id)"),
    "name": (None, "cluster name"),
    "status": (None, "found, not_found, skipped or failed"),
    "reason": (None, "why the cluster was not found, or the region skipped or failed"),
    "false_alarm_probability": (None, "how often the field without a cluster gives a detection "
                                "this strong (resamples of the field itself)"),
    "tension_centre": (None, "distance of the detection from the catalogue centre, in cone radii"),
    "tension_pm": (None, "proper-motion offset from the catalogue's, in units of its typical "
                   "uncertainty (3 mas/yr)"),
    "tension_parallax": (None, "|ln parallax ratio| to the catalogue's, in units of its typical "
                         "uncertainty (0.25)"),
    "n_unknown_groups": (None, "significant groups in the cone matching no published cluster"),
    "n_input": (None, "stars in the region's input table"),
    "n_stars": (None, "stars kept by the quality cuts"),
    "n_members": (None, "members found"),
    "pmra": (_PM, "members' mean pmra"),
    "pmdec": (_PM, "members' mean pmdec"),
    "parallax": ("mas", "members' mean parallax as measured (no zero-point correction, as "
                 "published cluster catalogues give it; parallax_mas is corrected)"),
    "ra": ("deg", "members' centre, right ascension"),
    "dec": ("deg", "members' centre, declination"),
    "r50_deg": ("deg", "radius holding half the members"),
    "reference_source": (None, "where the reference values come from"),
    "seeds": (None, "seeds of the ensemble"),
    "seed_jaccard": (None, "mean pairwise Jaccard index of the seeds' member sets"),
    "seed_jaccard_min": (None, "least pairwise Jaccard index of the seeds' member sets"),
    "runtime_s": ("s", "characterization time"),
    "kmeans_k": (None, "number of K-Means groups chosen by silhouette"),
    "parameters_status": (None, "physical parameters: ok, failed, skipped or not_fitted"),
    "parameters_reason": (None, "why there are no physical parameters, empty when ok"),
}
# The physical parameters (ocdec.physics) keep the catalogue's units and descriptions.
SUMMARY_COLUMNS.update({name: PHYSICS_COLUMNS[name] for name in (
    "distance_pc", "distance_pc_16", "distance_pc_84", "parallax_mas", "parallax_error_mas",
    "parallax_zero_point_mas", "log_age", "log_age_16", "log_age_84",
    "av", "av_16", "av_84", "distance_modulus", "distance_modulus_16", "distance_modulus_84",
    "feh", "feh_16", "feh_84", "rc_pc", "rt_pc", "r50_pc", "king_fit", "mass_msun", "mass_msun_16",
    "mass_msun_84", "jacobi_radius_pc")})


def describe(name: str, known: Mapping[str, tuple[str | None, str]] = SUMMARY_COLUMNS,
             ) -> tuple[str | None, str]:
    """Unit and description of column ``name`` (empty description if it is not documented)."""
    if name in known:
        return known[name]
    for prefix, what in (("reference_", "reference"), ("thesis_", "thesis mode (DEC filtered)"),
                         ("hdbscan_", "HDBSCAN"), ("default_", "default method")):
        if name.startswith(prefix):
            unit, text = describe(name[len(prefix):], known)
            return unit, f"{what}: {text}" if text else what
    if name.endswith("_offset_sigma"):
        base = name[: -len("_offset_sigma")]
        return None, (f"offset of the members' mean {base} from the reference, in combined "
                      "statistical standard errors (no systematic floor: the parallaxes of "
                      "Gaia DR2 and DR3 differ by a few hundredths of a mas, many such errors "
                      "for a well-measured cluster)")
    for suffix, text in (("_error", "standard error of the members' mean {}"),
                         ("_std", "standard deviation of the members' {}")):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            return describe(base, known)[0], text.format(base)
    return None, ""


def to_astropy(frame: pd.DataFrame, columns: Mapping[str, tuple[str | None, str]],
               meta: Mapping[str, Any] | None = None) -> Table:
    """An astropy Table of ``frame`` with units and descriptions from ``columns``."""
    from astropy.table import Table

    frame = frame.copy()
    for col in frame.columns:
        # FITS and VOTable hold one type per column: text with gaps becomes "" not NaN/None
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: "" if v is None or v != v else str(v))
    table = Table.from_pandas(frame)
    for col in table.colnames:
        unit, text = describe(col, columns)
        if unit:
            table[col].unit = unit
        if text:
            table[col].description = text
    table.meta.update(meta or {})
    return table


def write_table(table: Table, path: str | os.PathLike[str], fmt: str) -> Path:
    """Write an astropy ``table`` (units, descriptions, ``meta``) to ``path`` in ``fmt``,
    atomically; its ``meta['description']`` becomes a FITS COMMENT."""
    path = Path(path)
    kwargs: dict[str, Any] = {}
    if fmt == "csv":
        kwargs["delimiter"] = ","
    if fmt == "fits":  # header keywords: 8 characters at most; the description as a COMMENT
        meta = dict(table.meta)
        table = table.copy(copy_data=False)
        table.meta.clear()
        table.meta["comments"] = [str(meta.pop("description", ""))]
        table.meta.update({str(k).upper()[:8]: v for k, v in meta.items()})
    with atomic_path(path) as tmp:
        # the temporary name has no telling suffix, so the writer is always named
        table.write(tmp, format=_WRITERS[fmt], overwrite=True, **kwargs)
    return path


def check_formats(formats: Iterable[str]) -> list[str]:
    """``formats`` as a list, a one-line error naming any unknown one."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise OcdecError(f"unknown table format {', '.join(map(repr, unknown))}: choose from "
                         f"{', '.join(FORMATS)}")
    return formats


def table_path(path: str | os.PathLike[str], fmt: str) -> Path:
    """``path`` with the suffix of ``fmt`` (members.parquet -> members.fits)."""
    return Path(path).with_suffix(f".{FORMATS[fmt]}")


def write_members(members: pd.DataFrame, path: str | os.PathLike[str], fmt: str,
                  meta: Mapping[str, Any] | None = None) -> Path:
    """Write a members table to ``path`` in ``fmt`` with units and column descriptions."""
    check_formats([fmt])
    meta = {"description": "ocdec members table: one row per star of the field", **(meta or {})}
    write_table(to_astropy(members, MEMBER_COLUMNS, meta), path, fmt)
    return Path(path)


def export_members(members_parquet: str | os.PathLike[str], formats: Iterable[str],
                   meta: Mapping[str, Any] | None = None) -> list[Path]:
    """Copies of ``members.parquet`` beside it in every format of ``formats`` except parquet
    (that file is already there); returns the paths written."""
    formats = [f for f in check_formats(formats) if f != "parquet"]
    if not formats:
        return []
    members = pd.read_parquet(members_parquet)
    written = [write_members(members, table_path(members_parquet, fmt), fmt, meta)
               for fmt in formats]
    log.info("members table also written as %s", ", ".join(str(p) for p in written))
    return written


def export_summary(summary: pd.DataFrame, paths: Mapping[str, str | os.PathLike[str]]) -> None:
    """The catalogue summary (``results/summary.tsv``'s table) written to ``paths[fmt]``."""
    meta = {"description": "ocdec catalogue summary: one row per region"}
    for fmt, path in paths.items():
        check_formats([fmt])
        write_table(to_astropy(summary, SUMMARY_COLUMNS, meta), path, fmt)
        log.info("catalogue summary also written as %s", path)
