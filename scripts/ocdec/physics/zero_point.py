"""Gaia parallax zero points.

(E)DR3: per star from Lindegren et al. (2021, A&A 649, A4) through the ``gaiadr3-zeropoint``
package (module ``zero_point``), which needs ``phot_g_mean_mag``, ``nu_eff_used_in_astrometry``
(5-parameter solutions), ``pseudocolour`` (6-parameter), ``ecl_lat`` and
``astrometric_params_solved``. Where a table lacks those columns but has G, BP-RP and a position,
nu_eff is rebuilt from the colour with the relation the DR3 astrometric solution itself used
(Lindegren et al. 2021, Eq. 3: nu_eff = 1.76 - (1.61/pi) atan(0.531 (BP-RP)), in 1/um) and the
ecliptic latitude from ra and dec, taking the star as a 5-parameter solution: ``method`` says so.
Two-parameter solutions and stars outside the recipe's validity range (6 < G < 21,
1.1 < nu_eff < 1.9, 1.24 < pseudocolour < 1.72) get the global quasar offset of -0.017 mas.

DR2: the global -0.029 mas of Lindegren et al. (2018, A&A 616, A2).

Convention (the package's): corrected parallax = parallax - zero_point.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# pandas where a table is read: a skipped region's parameters job imports none (its fixed cost)
if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

GLOBAL_ZERO_POINT = {"dr2": -0.029, "dr3": -0.017}  # mas
ZERO_POINT_COLUMNS = ("nu_eff_used_in_astrometry", "pseudocolour", "ecl_lat",
                      "astrometric_params_solved")


@dataclass(frozen=True)
class ZeroPoint:
    """Per-star zero points (mas) and how they were obtained."""

    values: np.ndarray
    method: str  # "lindegren2021", "lindegren2021-colour", "global"
    n_global: int  # stars that got the global offset

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.values)) if self.values.size else float("nan")


def parallax_zero_point(stars: pd.DataFrame, release: str = "dr3") -> ZeroPoint:
    """Zero points for ``stars`` (canonical columns, optionally :data:`ZERO_POINT_COLUMNS`)."""
    release = release.lower()
    n = len(stars)
    if release == "dr2":
        return ZeroPoint(np.full(n, GLOBAL_ZERO_POINT["dr2"]), "global", n)
    fallback = GLOBAL_ZERO_POINT["dr3"]
    g = _column(stars, "phot_g_mean_mag")
    if all(c in stars for c in ZERO_POINT_COLUMNS):
        nu, pc = _column(stars, "nu_eff_used_in_astrometry"), _column(stars, "pseudocolour")
        beta, solved = _column(stars, "ecl_lat"), _column(stars, "astrometric_params_solved")
        method = "lindegren2021"
    elif np.isfinite(_column(stars, "bp_rp")).any() and "ra" in stars and "dec" in stars:
        nu = 1.76 - (1.61 / np.pi) * np.arctan(0.531 * _column(stars, "bp_rp"))
        pc = np.full(n, np.nan)
        beta = ecliptic_latitude(_column(stars, "ra"), _column(stars, "dec"))
        solved = np.full(n, 31.0)
        method = "lindegren2021-colour"
    else:
        return ZeroPoint(np.full(n, fallback), "global", n)
    values = _lindegren(g, nu, pc, beta, solved)
    bad = ~np.isfinite(values)
    values[bad] = fallback
    log.info("parallax zero point (%s): mean %.4f mas, %d of %d stars global", method,
             float(np.mean(values)) if n else float("nan"), int(bad.sum()), n)
    return ZeroPoint(values, method, int(bad.sum()))


def _column(stars: pd.DataFrame, name: str) -> np.ndarray:
    import pandas as pd

    if name not in stars:
        return np.full(len(stars), np.nan)
    return pd.to_numeric(stars[name], errors="coerce").to_numpy(dtype=float)


def _lindegren(g: np.ndarray, nu: np.ndarray, pc: np.ndarray, beta: np.ndarray,
               solved: np.ndarray) -> np.ndarray:
    """The package's recipe where it is valid; NaN elsewhere (2-p solutions, out of range)."""
    out = np.full(g.size, np.nan)
    ok5 = (solved == 31) & (g > 6) & (g < 21) & (nu > 1.1) & (nu < 1.9) & np.isfinite(beta)
    ok6 = (solved == 95) & (g > 6) & (g < 21) & (pc > 1.24) & (pc < 1.72) & np.isfinite(beta)
    ok = ok5 | ok6
    if not ok.any():
        return out
    try:
        from zero_point import zpt
    except ImportError:
        log.warning("gaiadr3-zeropoint is not installed: global parallax zero point used")
        return out
    zpt.load_tables()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out[ok] = zpt.get_zpt(g[ok], np.where(ok5[ok], nu[ok], np.nan),
                              np.where(ok6[ok], pc[ok], np.nan), beta[ok], solved[ok],
                              _warnings=False)
    return out


def ecliptic_latitude(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Barycentric true ecliptic latitude (deg) of ICRS positions (degrees)."""
    eps = np.deg2rad(23.4392911)  # obliquity at J2000; the recipe needs sin(beta) to ~1e-3
    ra_r, dec_r = np.deg2rad(ra), np.deg2rad(dec)
    sin_beta = np.sin(dec_r) * np.cos(eps) - np.cos(dec_r) * np.sin(eps) * np.sin(ra_r)
    return np.rad2deg(np.arcsin(np.clip(sin_beta, -1, 1)))
