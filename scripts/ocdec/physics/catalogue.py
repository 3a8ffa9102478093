"""The physical-parameters catalogue: one row per region, as an astropy Table with units and
column descriptions, written as FITS and VOTable (TOPCAT opens both as they are)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: name -> (unit or None, description). Order is the catalogue's column order.
COLUMNS: dict[str, tuple[str | None, str]] = {
    "ra": ("deg", "centre of the members, ICRS right ascension"),
    "dec": ("deg", "centre of the members, ICRS declination"),
    "n_members": (None, "members with p_member >= 0.5"),
    "pmra": ("mas / yr", "members' mean proper motion in right ascension (mu_alpha* = mu_alpha "
             "cos(dec)), from the method"),
    "pmra_error": ("mas / yr", "standard error of pmra"),
    "pmdec": ("mas / yr", "members' mean proper motion in declination, from the method"),
    "pmdec_error": ("mas / yr", "standard error of pmdec"),
    "distance_pc": ("pc", "distance, median of the parallax posterior"),
    "distance_pc_16": ("pc", "distance, 16th percentile"),
    "distance_pc_84": ("pc", "distance, 84th percentile"),
    "parallax_mas": ("mas", "cluster parallax after the zero-point correction"),
    "parallax_error_mas": ("mas", "its error, statistical and systematic floor"),
    "parallax_zero_point_mas": ("mas", "mean parallax zero point subtracted"),
    "log_age": (None, "log10 of the age in yr, posterior median"),
    "log_age_16": (None, "log10 age (yr), 16th percentile"),
    "log_age_84": (None, "log10 age (yr), 84th percentile"),
    "av": ("mag", "extinction A_0 at 550 nm (~A_V), posterior median"),
    "av_16": ("mag", "extinction, 16th percentile"),
    "av_84": ("mag", "extinction, 84th percentile"),
    "distance_modulus": ("mag", "distance modulus of the isochrone fit, median"),
    "distance_modulus_16": ("mag", "distance modulus, 16th percentile"),
    "distance_modulus_84": ("mag", "distance modulus, 84th percentile"),
    "feh": (None, "[M/H] of the isochrone (fixed when feh_fixed)"),
    "feh_16": (None, "[M/H], 16th percentile"),
    "feh_84": (None, "[M/H], 84th percentile"),
    "feh_fixed": (None, "True where [M/H] was fixed, not fitted"),
    "r50_pc": ("pc", "radius holding half the members"),
    "rc_pc": ("pc", "King core radius"),
    "rt_pc": ("pc", "King tidal radius"),
    "r50_deg": ("deg", "radius holding half the members"),
    "rc_deg": ("deg", "King core radius"),
    "rt_deg": ("deg", "King tidal radius"),
    "king_fit": (None, "King fit: ok; extrapolated (r_t beyond the radius the field covers, "
                 "within 3 times it); unconstrained (r_t, or both radii, not measured: null); "
                 "failed"),
    "mass_msun": ("solMass", "Jacobi mass (inside r_J), Kroupa-extrapolated, median"),
    "mass_msun_16": ("solMass", "Jacobi mass, 16th percentile (bootstrap)"),
    "mass_msun_84": ("solMass", "Jacobi mass, 84th percentile (bootstrap)"),
    "mass_total_msun": ("solMass", "total mass of the members, Kroupa-extrapolated"),
    "jacobi_radius_pc": ("pc", "Jacobi radius"),
    "n_jacobi": (None, "members with p_member >= 0.5 inside the Jacobi radius"),
    "r_gc_pc": ("pc", "Galactocentric radius (astropy Galactocentric frame)"),
    "status": (None, "ok; failed, skipped or not_fitted (see reason)"),
    "reason": (None, "why there are no parameters, empty when ok"),
}
#: Region columns kept in front (and any lit_* columns, kept at the end with their units).
REGION_COLUMNS = ("id", "name")
LITERATURE_UNITS = {"lit_av": "mag", "lit_distance_modulus": "mag",
                    "lit_distance_pc": "pc", "lit_mass_msun": "solMass",
                    "lit_jacobi_radius_pc": "pc"}


def build_catalogue(parameters: Sequence[Mapping[str, Any]],
                    regions: Sequence[Mapping[str, Any]]) -> Any:
    """The catalogue Table from per-region ``parameters.json`` dicts and their region rows (same
    order; a region row gives ``id``, ``name`` and optional ``lit_*`` literature values)."""
    from astropy.table import Column, Table

    if len(parameters) != len(regions):
        raise ValueError(f"{len(parameters)} parameter sets for {len(regions)} regions")
    table = Table(meta={"ORIGIN": "ocdec", "description": "ocdec physical parameters"})
    for name in REGION_COLUMNS:
        table[name] = Column([str(r.get(name, "")) for r in regions], description=f"region {name}")
    for name, (unit, desc) in COLUMNS.items():
        values = [p.get(name) for p in parameters]
        table[name] = Column(_typed(name, values), unit=unit, description=desc)
    lit = sorted({k for r in regions for k in r if str(k).startswith("lit_")})
    for name in lit:
        table[name] = Column(_typed(name, [r.get(name) for r in regions]),
                             unit=LITERATURE_UNITS.get(name),
                             description=f"reference {name[4:]} (literature, or the simulator's "
                             "truth)")
    return table


def _typed(name: str, values: list[Any]) -> np.ndarray:
    if name in ("status", "reason", "king_fit"):
        return np.array(["" if v is None else str(v) for v in values])
    if name == "feh_fixed":
        return np.array([bool(v) for v in values])
    if name in ("n_members", "n_jacobi"):
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        out.append(f)
    return np.array(out, dtype=float)


def write_catalogue(table: Any, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``catalogue.fits`` and ``catalogue.vot`` in ``out_dir`` atomically."""
    out = Path(out_dir)
    return write_table(table, out / "catalogue.fits", out / "catalogue.vot")


def write_table(table: Any, fits_path: str | os.PathLike[str],
                vot_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the catalogue ``table`` as FITS and VOTable at the given paths, atomically
    (:func:`ocdec.tables.write_table`, as the members and summary tables)."""
    from ocdec.tables import write_table as write_astropy

    paths = (write_astropy(table, fits_path, "fits"), write_astropy(table, vot_path, "votable"))
    log.info("catalogue of %d clusters: %s, %s", len(table), *paths)
    return paths
