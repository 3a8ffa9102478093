"""Radial structure: a King (1962) profile fitted by maximum likelihood to member positions.

The members' projected radii r_i from their (p_member-weighted) centre follow

    f(r) = f_c 2 pi r K(r) / int_0^R 2 pi r K dr + (1 - f_c) 2 r / R^2

on the disc of radius R holding the members, with K astropy's ``KingProjectedAnalytic1D``
(core radius r_c, tidal radius r_t) and a constant field term (1 - f_c) for the contaminants a
membership list keeps. Each member's log density is weighted by its membership probability.
r50 is the radius holding half the members' weight (as Hunt & Reffert 2023 define it).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIN_MEMBERS = 10
# A tidal radius this close to the core radius means the fit ran onto its bound (r_t = r_c): the
# members' profile within the field shows no core and no tidal edge to fit, as where a nearby
# cluster fills its cone (Hyades, Praesepe). Real clusters have r_t / r_c of 3 or more
# (concentration >= 0.5); a featureless field gave 1.36.
MIN_TIDAL_RATIO = 2.0
# A tidal radius beyond this many times the fitted radius is not measured: the profile's slight
# curvature inside the field is all that places it (Praesepe in a 2 deg cone: 77 deg).
MAX_EXTRAPOLATION = 3.0
# Below this share of the members' weight the King term describes a minority: no profile.
MIN_CLUSTER_SHARE = 0.1
# Position-angle sectors over which the field's covered radius is taken (covered_radius),
# centred on the four axes: a box's farthest star in a sector then lies within 1 / cos(5 deg),
# 0.4 %, of its half-width (sector edges on the axes let it reach 1 / cos(15 deg), 3.5 % with 24).
COVER_SECTORS = 36


@dataclass(frozen=True)
class StructureResult:
    ra: float  # deg, centre
    dec: float
    r50_deg: float
    rc_deg: float
    rt_deg: float
    cluster_fraction: float  # f_c, the King share of the members' weight
    radius_deg: np.ndarray  # per member, projected radius from the centre
    # ok; extrapolated (r_t beyond the fitted radius, within MAX_EXTRAPOLATION times it: the
    # field does not reach the tidal edge, so r_t rests on the profile's shape within it);
    # unconstrained (the fit collapsed, or r_t lies far beyond the field, or the King term is a
    # minority: r_t NaN, r_c too unless it lies within the field); failed (too few members)
    status: str = "ok"
    reason: str | None = None
    fit_radius_deg: float = math.nan  # the profile is fitted within this radius (covered_radius)

    @property
    def concentration(self) -> float:
        """log10(r_t / r_c)."""
        if not (self.rc_deg > 0 and self.rt_deg > 0):
            return math.nan
        return float(np.log10(self.rt_deg / self.rc_deg))

    def to_pc(self, distance_pc: float) -> dict[str, float]:
        """Radii in parsecs at ``distance_pc`` (small-angle)."""
        k = distance_pc * np.pi / 180.0
        return {"r50_pc": self.r50_deg * k, "rc_pc": self.rc_deg * k, "rt_pc": self.rt_deg * k}


@functools.cache
def _king_model() -> Any:
    from astropy.modeling.functional_models import KingProjectedAnalytic1D

    return KingProjectedAnalytic1D()


def king_profile(r: np.ndarray, r_core: float, r_tide: float) -> np.ndarray:
    """King (1962) projected surface density with unit amplitude (zero beyond ``r_tide``)."""
    r = np.asarray(r, dtype=float)
    out = np.zeros_like(r)
    inside = r < r_tide
    # One model reused: evaluate() takes the parameters as arguments, and building a model per
    # call was half of the profile fit's time (thousands of likelihood calls).
    out[inside] = _king_model().evaluate(r[inside], 1.0, r_core, r_tide)
    return out


def projected_radii(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Angular distance (deg) of each position from (ra0, dec0)."""
    ra_r, dec_r = np.deg2rad(ra), np.deg2rad(dec)
    ra0_r, dec0_r = math.radians(ra0), math.radians(dec0)
    cos_d = (np.sin(dec_r) * math.sin(dec0_r)
             + np.cos(dec_r) * math.cos(dec0_r) * np.cos(ra_r - ra0_r))
    return np.rad2deg(np.arccos(np.clip(cos_d, -1.0, 1.0)))


def weighted_centre(ra: np.ndarray, dec: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """The weighted mean position on the sphere (deg)."""
    ra_r, dec_r = np.deg2rad(ra), np.deg2rad(dec)
    xyz = np.stack([np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r), np.sin(dec_r)])
    mean = (xyz * w).sum(axis=1)
    ra0 = math.degrees(math.atan2(mean[1], mean[0])) % 360.0
    dec0 = math.degrees(math.atan2(mean[2], math.hypot(mean[0], mean[1])))
    return ra0, dec0


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(np.interp(q * cw[-1], cw, x[order]))


def covered_radius(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> float:
    """The largest radius about (``ra0``, ``dec0``) that the positions cover in every direction:
    over COVER_SECTORS sectors of position angle, the least of each sector's farthest position
    (0 where a sector is empty). A cone centred off the cluster or a field cut as a box covers
    whole annuli only out to its nearest edge, and the profile's likelihood counts whole annuli;
    beyond that radius the field's edge would pass for a tidal edge."""
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return math.nan
    from ocdec.methods.default.sky import tangent_plane

    xi, eta = tangent_plane(ra[ok], dec[ok], ra0, dec0)  # their position angles about the centre
    sector = (np.floor((np.arctan2(xi, eta) + math.pi) / (2 * math.pi) * COVER_SECTORS + 0.5)
              .astype(int) % COVER_SECTORS)
    far = np.zeros(COVER_SECTORS)
    np.maximum.at(far, sector, projected_radii(ra[ok], dec[ok], ra0, dec0))
    return float(far.min())


def fit_structure(ra: np.ndarray, dec: np.ndarray, weight: np.ndarray,
                  field: tuple[np.ndarray, np.ndarray] | None = None) -> StructureResult:
    """King profile of members at (``ra``, ``dec``) with membership weights ``weight``, fitted
    within the radius the field covers whole about their centre (:func:`covered_radius` of
    ``field``, every star's (ra, dec)); without ``field``, within the outermost member (a list of
    members alone is too sparse to tell its field's edges: a sector of position angle may hold
    none of a few dozen)."""
    ra, dec, w = (np.asarray(a, dtype=float) for a in (ra, dec, weight))
    ok = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(w) & (w > 0)
    nan = math.nan
    if ok.sum() < MIN_MEMBERS:
        return StructureResult(nan, nan, nan, nan, nan, nan, np.full(ra.size, nan), "failed",
                               f"too few members with positions ({int(ok.sum())})")
    ra0, dec0 = weighted_centre(ra[ok], dec[ok], w[ok])
    radius = projected_radii(ra, dec, ra0, dec0)
    r, wk = radius[ok], w[ok]
    r50 = weighted_quantile(r, wk, 0.5)
    cover = (covered_radius(np.asarray(field[0], float), np.asarray(field[1], float), ra0, dec0)
             if field is not None else math.nan)
    r_fit = min(cover, float(r.max())) if math.isfinite(cover) else float(r.max())
    inside = r <= r_fit
    if inside.sum() < MIN_MEMBERS or not r_fit > 0:
        return StructureResult(ra0, dec0, r50, nan, nan, nan, radius, "unconstrained",
                               f"King profile not fitted: {int(inside.sum())} members within the "
                               f"{r_fit:.3g} deg the field covers whole about their centre",
                               r_fit)
    rc, rt, fc = _king_ml(r[inside], wk[inside], r50, r_fit * 1.0001)
    log.info("structure: r50 %.4f deg, King r_c %.4f r_t %.4f deg, cluster share %.2f, fitted "
             "within %.4f deg (%d of %d members)", r50, rc, rt, fc, r_fit, int(inside.sum()),
             r.size)
    status, reason, rc, rt = _king_status(rc, rt, fc, r_fit)
    return StructureResult(ra0, dec0, r50, rc, rt, fc, radius, status, reason, r_fit)


def _king_status(rc: float, rt: float, fc: float, r_fit: float
                 ) -> tuple[str, str | None, float, float]:
    """How far the fitted King radii can be trusted, fitted within ``r_fit``: (status, reason,
    r_c, r_t), a radius that is not measured NaN."""
    nan = math.nan
    within = f"within the {r_fit:.3g} deg the field covers"
    if fc < MIN_CLUSTER_SHARE:
        return "unconstrained", (
            f"King profile unconstrained: it describes {fc:.0%} of the members' weight {within}, "
            "the rest spread as a field: r_c and r_t not given"), nan, nan
    if rt < MIN_TIDAL_RATIO * rc:
        return "unconstrained", (
            f"King profile unconstrained: the fit collapsed onto r_t = {rt / rc:.2f} r_c "
            f"({rt:.3g} deg); {within} the profile shows no core and tidal edge (a cluster "
            "larger than its field?): r_c and r_t not given"), nan, nan
    if rc > r_fit:
        return "unconstrained", (
            f"King profile unconstrained: its core radius {rc:.3g} deg lies beyond the "
            f"{r_fit:.3g} deg the field covers, so the profile within it is nearly flat: r_c and "
            "r_t not given"), nan, nan
    if rt > MAX_EXTRAPOLATION * r_fit:
        return "unconstrained", (
            f"King tidal radius unconstrained: {rt:.3g} deg, more than {MAX_EXTRAPOLATION:g} "
            f"times the {r_fit:.3g} deg the field covers: r_t not given"), rc, nan
    if rt > r_fit:
        return "extrapolated", (
            f"King tidal radius {rt:.3g} deg lies beyond the {r_fit:.3g} deg the field covers "
            "whole about the members' centre: extrapolated from the profile within it"), rc, rt
    return "ok", None, rc, rt


def _king_ml(r: np.ndarray, w: np.ndarray, r50: float, r_max: float) -> tuple[float, float, float]:
    # imported here: a skipped region's parameters job reads the settings, never fits
    from scipy.optimize import minimize

    rr = np.linspace(0.0, r_max, 600)

    def nll(theta: np.ndarray) -> float:
        rc = math.exp(theta[0])
        rt = rc * (1.0 + math.exp(theta[1]))
        fc = 1.0 / (1.0 + math.exp(-theta[2]))
        norm = np.trapezoid(2 * np.pi * rr * king_profile(rr, rc, rt), rr)
        if not norm > 0:
            return 1e30
        dens = fc * 2 * np.pi * r * king_profile(r, rc, rt) / norm + (1 - fc) * 2 * r / r_max**2
        return float(-np.sum(w * np.log(np.maximum(dens, 1e-300))))

    best = None
    for rc0, ratio in ((0.5 * r50, 5.0), (0.25 * r50, 15.0), (r50, 3.0)):
        start = np.array([math.log(max(rc0, 1e-4)), math.log(ratio - 1.0), 2.0])
        res = minimize(nll, start, method="Nelder-Mead",
                       options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 3000})
        if best is None or res.fun < best.fun:
            best = res
    rc = math.exp(best.x[0])
    rt = rc * (1.0 + math.exp(best.x[1]))
    return rc, rt, 1.0 / (1.0 + math.exp(-best.x[2]))
