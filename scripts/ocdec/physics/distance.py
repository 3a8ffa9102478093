"""A cluster's distance by maximum likelihood over its members' parallaxes.

Model: each member's zero-point-corrected parallax is ``N(plx_c, sigma_i^2 + s^2)``, with
``plx_c`` the cluster parallax and ``s`` the intrinsic spread of the members' parallaxes (the
cluster's depth, which matters for the Hyades or the Pleiades). Members enter with their
membership probability as a weight and parallaxes more than 5 sigma from the fit are clipped.
The statistical error of ``plx_c`` is combined with a systematic floor, the angular covariance
of Gaia parallaxes at small separations, which does not average down with more members:
10.3 micro-arcsec for (E)DR3 (Maiz Apellaniz, Pantaleoni Gonzalez & Barba 2021, A&A 649, A13)
and 43 micro-arcsec for DR2 (Maiz Apellaniz 2019, A&A 630, A119). The distance posterior is
that Gaussian in parallax under a flat prior in distance: percentiles 16/50/84 from a grid.
It is not 1/mean parallax.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SYSTEMATIC_FLOOR_MAS = {"dr2": 0.043, "dr3": 0.0103}
CLIP_SIGMA = 5.0


@dataclass(frozen=True)
class DistanceResult:
    parallax: float  # mas, corrected cluster parallax
    parallax_error: float  # mas, statistical and systematic combined
    parallax_spread: float  # mas, intrinsic spread s
    distance_pc: float
    distance_pc_16: float
    distance_pc_84: float
    n_used: int

    @property
    def modulus(self) -> tuple[float, float]:
        """Distance modulus and its symmetric 1-sigma from the 16/84 percentiles."""
        mu = 5.0 * np.log10(self.distance_pc) - 5.0
        width = 2.5 * (np.log10(self.distance_pc_84) - np.log10(self.distance_pc_16))
        return float(mu), float(width)


def cluster_distance(parallax: np.ndarray, parallax_error: np.ndarray, weight: np.ndarray,
                     release: str = "dr3") -> DistanceResult:
    """Maximum-likelihood cluster parallax and distance from corrected member parallaxes.

    Raises ValueError with a reason when fewer than 3 usable parallaxes remain or the cluster
    parallax is not significantly positive.
    """
    plx = np.asarray(parallax, dtype=float)
    err = np.asarray(parallax_error, dtype=float)
    w = np.asarray(weight, dtype=float)
    if not np.isfinite(err).any():
        raise ValueError("no parallax errors (give parallax_error, or G for the error model)")
    ok = np.isfinite(plx) & np.isfinite(err) & (err > 0) & np.isfinite(w) & (w > 0)
    if ok.sum() < 3:
        raise ValueError(f"only {int(ok.sum())} members with a usable parallax")
    keep = ok.copy()
    for _ in range(5):
        plx_c, spread, stat = _fit(plx[keep], err[keep], w[keep])
        resid = np.abs(plx - plx_c) / np.sqrt(err**2 + spread**2 + stat**2)
        new = ok & (resid < CLIP_SIGMA)
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    total = float(np.hypot(stat, SYSTEMATIC_FLOOR_MAS.get(release.lower(), 0.0103)))
    if plx_c <= 2.0 * total:
        raise ValueError(f"cluster parallax {plx_c:.4f} +- {total:.4f} mas is not significantly "
                         "positive: no distance")
    d16, d50, d84 = _distance_percentiles(plx_c, total)
    log.info("cluster parallax %.4f +- %.4f mas (spread %.4f, %d members): %.1f pc",
             plx_c, total, spread, int(keep.sum()), d50)
    return DistanceResult(float(plx_c), total, float(spread), d50, d16, d84, int(keep.sum()))


def parallax_error_model(g: np.ndarray) -> np.ndarray:
    """Typical (E)DR3 parallax error (mas) at magnitude G, for member lists without errors:
    sigma = sqrt(40 + 800 z + 30 z^2) micro-arcsec, z = 10^(0.4 (max(G, 13) - 15)) (the Gaia
    science-performance relation, close to Lindegren et al. 2021, Fig. 9, for 5-p solutions)."""
    z = 10 ** (0.4 * (np.maximum(np.asarray(g, dtype=float), 13.0) - 15.0))
    return np.sqrt(40.0 + 800.0 * z + 30.0 * z**2) / 1000.0


def _fit(plx: np.ndarray, err: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """(plx_c, spread, statistical error of plx_c) by weighted maximum likelihood."""
    # imported here: a skipped region's parameters job reads the settings, never fits
    from scipy.optimize import minimize

    def nll(theta: np.ndarray) -> float:
        var = err**2 + np.exp(2 * theta[1])
        return float(0.5 * np.sum(w * ((plx - theta[0]) ** 2 / var + np.log(var))))

    start = np.array([np.average(plx, weights=w), np.log(max(np.std(plx), 1e-4))])
    res = minimize(nll, start, method="Nelder-Mead",
                   options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
    plx_c, spread = float(res.x[0]), float(np.exp(res.x[1]))
    var = err**2 + spread**2
    # effective sample size: p_member weights are not counts of independent measurements
    n_eff = w.sum() ** 2 / np.sum(w**2)
    stat = float(np.sqrt(1.0 / np.sum(w / var) * w.sum() / n_eff))
    return plx_c, spread, stat


def _distance_percentiles(plx: float, sigma: float) -> tuple[float, float, float]:
    lo = 1000.0 / (plx + 8 * sigma)
    hi = 1000.0 / max(plx - 8 * sigma, plx / 50.0)
    d = np.geomspace(lo, hi, 4001)
    post = np.exp(-0.5 * ((1000.0 / d - plx) / sigma) ** 2)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (post[1:] + post[:-1]) * np.diff(d))])
    cdf /= cdf[-1]
    d16, d50, d84 = np.interp([0.15866, 0.5, 0.84134], cdf, d)
    return float(d16), float(d50), float(d84)
