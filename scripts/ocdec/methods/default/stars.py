"""The stars as the default method sees them: astrometry arrays and the error model.

:class:`Astrometry` holds the usable stars (finite pmra, pmdec, parallax) as plain arrays with
their uncertainties (:func:`astrometric_errors`: the file's own, else a Gaia DR2-like model against
G). A cluster member's expected spread in (pmra, pmdec, parallax) is the cluster's intrinsic
covariance plus the star's own error variances (:func:`member_covariances`); everything downstream
(the candidate window, the deconvolved mixture, the whitened features DEC sees) is built on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ocdec.data.quality import require_astrometry

# Gaia DR2 end-of-mission-like uncertainties against G (Lindegren et al. 2018, fig. 9/table B.2),
# used only where a file has no error columns; DR3 is better, so this errs on the wide side.
_G_GRID = np.array([10.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0])
_PLX_ERR = np.array([0.03, 0.04, 0.05, 0.07, 0.10, 0.18, 0.33, 0.70, 1.50])
_PM_ERR = np.array([0.05, 0.07, 0.09, 0.13, 0.20, 0.33, 0.60, 1.20, 2.50])


def astrometric_errors(stars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pmra, pmdec, parallax) uncertainties: the file's where present and finite, else a DR2-like
    model against G, else a typical mid-magnitude value."""
    g = _column(stars, "phot_g_mean_mag")
    g_filled = np.where(np.isfinite(g), g, 18.0)
    model_plx = np.interp(g_filled, _G_GRID, _PLX_ERR)
    model_pm = np.interp(g_filled, _G_GRID, _PM_ERR)
    e_plx = _column(stars, "parallax_error")
    has_plx = np.isfinite(e_plx) & (e_plx > 0)
    e_plx = np.where(has_plx, e_plx, model_plx)
    # Without pm errors, the model's (scaling the file's parallax error by the model's ratio
    # instead was measured worse: NGC 188 DR2 F1 0.968 -> 0.959).
    out = []
    for col in ("pmra_error", "pmdec_error"):
        e = _column(stars, col)
        out.append(np.where(np.isfinite(e) & (e > 0), e, model_pm))
    return out[0], out[1], e_plx


def _column(stars: pd.DataFrame, name: str) -> np.ndarray:
    if name not in stars:
        return np.full(len(stars), np.nan)
    return pd.to_numeric(stars[name], errors="coerce").to_numpy(dtype=float)


@dataclass
class Astrometry:
    """The usable stars' astrometry as plain arrays (row index into the input in ``rows``)."""

    rows: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    parallax: np.ndarray
    e_pmra: np.ndarray
    e_pmdec: np.ndarray
    e_plx: np.ndarray
    g: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    has_sky: bool = False

    frame_centre: tuple[float, float] | None = None  # (ra, dec) of the local pm frame, deg

    @classmethod
    def from_stars(cls, stars: pd.DataFrame, centre: tuple[float, float] | None = None,
                   frame_radius: float | None = None, min_rotation: float = 0.0
                   ) -> Astrometry:
        """The usable stars; with positions, proper motions are taken into the local frame at
        ``centre`` (None: the field's mean position), :func:`local_proper_motions`, where the
        frame turns by more than ``min_rotation`` (radians) across the stars within
        ``frame_radius`` (deg; None: a quarter of the field) of the centre."""
        require_astrometry(stars)  # a missing column and one without values told apart
        pmra, pmdec, plx = (_column(stars, c) for c in ("pmra", "pmdec", "parallax"))
        e_pmra, e_pmdec, e_plx = astrometric_errors(stars)
        ok = np.isfinite(pmra) & np.isfinite(pmdec) & np.isfinite(plx)
        rows = np.flatnonzero(ok)
        ra, dec = _column(stars, "ra")[rows], _column(stars, "dec")[rows]
        has_sky = bool(np.isfinite(ra).mean() > 0.99) if rows.size else False
        pmra, pmdec, e_pmra, e_pmdec = pmra[rows], pmdec[rows], e_pmra[rows], e_pmdec[rows]
        frame = None
        if has_sky:
            frame = centre if centre is not None else mean_position(ra, dec)
            ra_f, dec_f = np.nan_to_num(ra, nan=frame[0]), np.nan_to_num(dec, nan=frame[1])
            if frame_rotation(ra_f, dec_f, *frame, frame_radius) > min_rotation:
                pmra, pmdec, e_pmra, e_pmdec = local_proper_motions(
                    ra_f, dec_f, pmra, pmdec, e_pmra, e_pmdec, *frame)
            else:
                frame = None
        return cls(rows, pmra, pmdec, plx[rows], e_pmra, e_pmdec, e_plx[rows],
                   _column(stars, "phot_g_mean_mag")[rows], ra, dec, has_sky, frame)

    def __len__(self) -> int:
        return int(self.rows.size)

    def stack(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pmra, pmdec, parallax) of stars ``idx`` (n, 3) and their error variances (n, 3)."""
        x = np.stack([self.pmra[idx], self.pmdec[idx], self.parallax[idx]], axis=1)
        err2 = np.stack([self.e_pmra[idx], self.e_pmdec[idx], self.e_plx[idx]], axis=1) ** 2
        return x, err2


def mean_position(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """The direction of the mean unit vector (deg): a field's centre, also across ra = 0/360."""
    r, d = np.radians(ra[np.isfinite(ra)]), np.radians(dec[np.isfinite(ra)])
    v = np.array([np.mean(np.cos(d) * np.cos(r)), np.mean(np.cos(d) * np.sin(r)),
                  np.mean(np.sin(d))])
    return (float(np.degrees(np.arctan2(v[1], v[0])) % 360.0),
            float(np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1])))))


def frame_rotation(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float,
                   radius: float | None = None) -> float:
    """The largest angle (radians) by which the local east turns against the centre's, over the
    stars within ``radius`` (deg; None: a quarter of the field's extent, as the sky weights of
    the peak search take a cluster's size without a catalogue) of (ra0, dec0): about
    delta-ra x sin(dec)."""
    da = np.radians(ra - ra0)
    d, d0 = np.radians(dec), math.radians(dec0)
    cos_sep = np.clip(np.sin(d) * math.sin(d0) + np.cos(d) * math.cos(d0) * np.cos(da), -1, 1)
    sep = np.degrees(np.arccos(cos_sep))
    if radius is None and sep.size:
        radius = 0.25 * float(np.quantile(sep, 0.9))
    near = sep <= (radius if radius is not None else 180.0)
    da, d = da[near], d[near]
    if da.size == 0:
        return 0.0
    return float(np.max(np.abs(np.arctan2(math.sin(d0) * np.sin(da), np.cos(da)))))


def local_proper_motions(ra: np.ndarray, dec: np.ndarray, pmra: np.ndarray, pmdec: np.ndarray,
                         e_pmra: np.ndarray, e_pmdec: np.ndarray, ra0: float, dec0: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Proper motions in the tangent-plane frame at (ra0, dec0) (orthographic projection of each
    star's motion vector onto the centre's east and north; Gaia Collaboration, Helmi et al. 2018,
    eq. 2), with their errors propagated (correlations dropped). Near the pole or across a wide
    cone the east/north directions turn from star to star, so one cluster's motions spread in
    (pmra, pmdec) unless they are compared in one frame."""
    da = np.radians(ra - ra0)
    d, d0 = np.radians(dec), math.radians(dec0)
    a11, a12 = np.cos(da), -np.sin(d) * np.sin(da)
    a21 = math.sin(d0) * np.sin(da)
    a22 = np.cos(d) * math.cos(d0) + np.sin(d) * math.sin(d0) * np.cos(da)
    x = a11 * pmra + a12 * pmdec
    y = a21 * pmra + a22 * pmdec
    ex = np.sqrt((a11 * e_pmra) ** 2 + (a12 * e_pmdec) ** 2)
    ey = np.sqrt((a21 * e_pmra) ** 2 + (a22 * e_pmdec) ** 2)
    return x, y, ex, ey


def member_covariances(cov: np.ndarray, err2: np.ndarray) -> np.ndarray:
    """(n, 3, 3): the cluster's intrinsic covariance plus each star's (diagonal) error variances,
    the spread a member has in (pmra, pmdec, parallax)."""
    t = np.repeat(cov[None, :, :], len(err2), axis=0)
    t[:, [0, 1, 2], [0, 1, 2]] += err2
    return t


def inv3(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of many symmetric 3x3 matrices (n, 3, 3) by the adjugate:
    several times faster than batched LAPACK at this size."""
    a, b, c = t[:, 0, 0], t[:, 0, 1], t[:, 0, 2]
    d, e, f = t[:, 1, 1], t[:, 1, 2], t[:, 2, 2]
    c00 = d * f - e * e
    c01 = c * e - b * f
    c02 = b * e - c * d
    c11 = a * f - c * c
    c12 = b * c - a * e
    c22 = a * d - b * b
    det = a * c00 + b * c01 + c * c02
    inv = np.stack([np.stack([c00, c01, c02], -1), np.stack([c01, c11, c12], -1),
                    np.stack([c02, c12, c22], -1)], axis=1) / det[:, None, None]
    return inv, np.log(det)


def log_error_volume(ast: Astrometry, idx: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log |L_i| = 0.5 log det(intrinsic covariance + the star's error covariance): in the whitened
    units of :func:`ocdec.methods.default.window.whitened_features` the field's density at a star
    is its density in proper motion and parallax times |L_i|, so a faint star near the cluster's
    centre faces a field that many times denser than a bright one does (what extreme
    deconvolution accounts for)."""
    return 0.5 * np.linalg.slogdet(member_covariances(cov, ast.stack(idx)[1]))[1]
