"""Mean astrometric parameters of a selected group of stars, with errors and dispersions.

Shared by every method (K-Means, DEC, DEC filtered, the default) so their rows compare like
with like.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

ASTROMETRY = ("pmra", "pmdec", "parallax")
# Mean and standard error of each, the columns every table of cluster values shares.
MEANS_WITH_ERRORS = tuple(name for col in ASTROMETRY for name in (col, f"{col}_error"))
# 1.4826 turns a median absolute deviation into a Gaussian standard deviation; the standard error of
# a median is sqrt(pi/2) times that of a mean for Gaussian data.
MAD_TO_SIGMA = 1.4826
MEDIAN_ERROR_FACTOR = math.sqrt(math.pi / 2.0)


def weighted_mean(values: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    """The mean of a group with an intrinsic spread, each star weighted by 1 / (its error^2 +
    the spread^2), and its standard error; the spread^2 is the sample variance less the mean
    error^2 (not below 0). For bright members (errors below the spread) it is the plain mean; for
    a distant cluster, whose hundreds of faint members have parallax errors several times the
    cluster's parallax, the plain mean is pulled by them (Berkeley 76: 0.054 mas against Hunt &
    Reffert's 0.156) and can even be negative."""
    spread2 = max(float(values.var(ddof=1)) - float(np.mean(errors**2)), 0.0)
    w = 1.0 / (errors**2 + spread2)
    return float(np.sum(w * values) / np.sum(w)), float(math.sqrt(1.0 / np.sum(w)))


def cluster_parameters(stars: pd.DataFrame, member: np.ndarray) -> dict[str, Any]:
    """Count, mean +- standard error, dispersion and a robust (median / MAD) variant of each of
    pmra, pmdec, parallax over ``stars[member]``; the sky centre and the half-number radius r50.
    Where the stars have errors (``{col}_error``) the mean is :func:`weighted_mean`, else plain.

    Empty selections give NaN values and ``n_members`` 0, never an exception, so a failed method
    still has a row in the comparison table.
    """
    member = np.asarray(member, dtype=bool)
    sel = stars.loc[member]
    n = int(member.sum())
    out: dict[str, Any] = {"n_members": n}
    robust: dict[str, float] = {}
    for col in ASTROMETRY:
        values = sel[col].to_numpy(dtype=float) if col in sel else np.array([])
        errors = (sel[f"{col}_error"].to_numpy(dtype=float) if f"{col}_error" in sel
                  else np.full(values.size, np.nan))
        ok = np.isfinite(values)
        values, errors = values[ok], errors[ok]
        m = values.size
        if m == 0:
            out.update({col: math.nan, f"{col}_error": math.nan, f"{col}_std": math.nan})
            robust.update({col: math.nan, f"{col}_error": math.nan, f"{col}_std": math.nan})
            continue
        std = float(values.std(ddof=1)) if m > 1 else math.nan
        out[col] = float(values.mean())
        out[f"{col}_std"] = std
        out[f"{col}_error"] = std / math.sqrt(m) if m > 1 else math.nan
        if m > 1 and np.all(np.isfinite(errors) & (errors > 0)):
            out[col], out[f"{col}_error"] = weighted_mean(values, errors)
        med = float(np.median(values))
        rstd = MAD_TO_SIGMA * float(np.median(np.abs(values - med)))
        robust[col] = med
        robust[f"{col}_std"] = rstd
        robust[f"{col}_error"] = MEDIAN_ERROR_FACTOR * rstd / math.sqrt(m) if m > 1 else math.nan
    out["robust"] = robust
    out.update(sky_centre_and_r50(sel))
    return out


def sky_centre_and_r50(sel: pd.DataFrame) -> dict[str, float]:
    """Centre as the normalised mean unit vector (safe across RA = 0) and the median separation."""
    if not {"ra", "dec"} <= set(sel.columns) or len(sel) == 0:
        return {"ra": math.nan, "dec": math.nan, "r50_deg": math.nan}
    centre = _centre(sel["ra"].to_numpy(dtype=float), sel["dec"].to_numpy(dtype=float))
    if centre is None:
        return {"ra": math.nan, "dec": math.nan, "r50_deg": math.nan}
    ra0, dec0, mean, xyz = centre
    sep = np.degrees(np.arccos(np.clip(mean @ xyz, -1.0, 1.0)))
    return {"ra": ra0, "dec": dec0, "r50_deg": float(np.median(sep))}


def sky_centre(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """(ra, dec) of :func:`sky_centre_and_r50` (degrees; NaN where no position is finite),
    without the separations."""
    centre = _centre(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float))
    return (math.nan, math.nan) if centre is None else centre[:2]


def _centre(ra_deg: np.ndarray, dec_deg: np.ndarray
            ) -> tuple[float, float, np.ndarray, np.ndarray] | None:
    """(ra, dec) in degrees of the normalised mean unit vector of the finite positions, that
    vector and their unit vectors (3, n); None where none is finite."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return None
    ra, dec = ra[ok], dec[ok]
    xyz = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    mean = xyz.mean(axis=1)
    mean /= np.linalg.norm(mean)
    ra0 = math.degrees(math.atan2(mean[1], mean[0])) % 360.0
    dec0 = math.degrees(math.asin(float(np.clip(mean[2], -1.0, 1.0))))
    return ra0, dec0, mean, xyz
