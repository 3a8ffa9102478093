"""Member masses, cluster mass and Jacobi radius (after Hunt & Reffert 2024, A&A 686, A42).

Each member takes the current mass of the nearest point of the fitted isochrone in the CMD
(G alone where BP-RP is missing). The observed mass is the p_member-weighted sum above the
completeness limit, the mass of the isochrone at the faint edge of the 0.5 mag bin where the
members' luminosity function peaks (:func:`completeness_magnitude`). The total mass
extrapolates it with a Kroupa (2001) IMF down to 0.08 Msun:
M_tot = M_obs(m > m_lim) * int_0.08^m_max m xi dm / int_m_lim^m_max m xi dm. Unresolved binary
companions are not added (a lower limit by roughly 10-20 per cent).

The Jacobi radius r_J = (G M_J / (2 Omega^2))^(1/3) (4 Omega^2 - kappa^2 = 2 Omega^2 for a flat
rotation curve) with Omega = V_c / R_gc, V_c = 236 km/s (Reid et al. 2019, ApJ 885, 131) and the
cluster's Galactocentric radius from astropy's Galactocentric frame; M_J, the total mass inside
projected r_J, and r_J are iterated to a fixed point. Uncertainties: bootstrap over members,
widened by a 10 per cent systematic (:data:`MASS_SYSTEMATIC`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

G_PC = 4.30091727e-3  # gravitational constant in pc (km/s)^2 / Msun
V_CIRC = 236.0  # km/s
KROUPA_BREAKS = (0.08, 0.5)
KROUPA_SLOPES = (0.3, 1.3, 2.3)  # dN/dm ~ m^-alpha below 0.08, 0.08-0.5, above 0.5 Msun
M_LOW = 0.08
#: Fractional systematic added in quadrature to the bootstrap spread: the IMF below the
#: completeness limit, the isochrone's mass-luminosity relation and unresolved companions.
MASS_SYSTEMATIC = 0.10


@dataclass(frozen=True)
class MassResult:
    member_mass: np.ndarray  # Msun per member (NaN where not placed on the isochrone)
    mass_observed: float
    mass_limit: float  # completeness limit, Msun
    mass_total: tuple[float, float, float]  # 16/50/84
    mass_jacobi: tuple[float, float, float]
    jacobi_radius_pc: float
    n_jacobi: int
    r_gc_pc: float


def kroupa_mass_integral(lo: float, hi: float) -> float:
    """int_lo^hi m xi(m) dm for the Kroupa IMF (continuous at the breaks, arbitrary scale)."""
    edges = (0.01, *KROUPA_BREAKS, 1000.0)
    total, scale = 0.0, 1.0
    for i, alpha in enumerate(KROUPA_SLOPES):
        a, b = edges[i], edges[i + 1]
        if i > 0:
            scale *= a ** (KROUPA_SLOPES[i] - KROUPA_SLOPES[i - 1])  # continuity at the break
        lo_i, hi_i = max(lo, a), min(hi, b)
        if hi_i > lo_i:
            p = 2.0 - alpha
            total += scale * (hi_i**p - lo_i**p) / p
    return total


def member_masses(gmag: np.ndarray, colour: np.ndarray, isochrone: np.ndarray) -> np.ndarray:
    """Masses of members from the observed isochrone (columns G, BP-RP, Mini, mass)."""
    iso = isochrone[np.all(np.isfinite(isochrone), axis=1)]
    g, c = np.asarray(gmag, float), np.asarray(colour, float)
    out = np.full(g.size, np.nan)
    if iso.shape[0] < 2:
        return out
    dm = (g[:, None] - iso[None, :, 0]) / 0.15
    dc = (c[:, None] - iso[None, :, 1]) / 0.05
    d2 = np.where(np.isfinite(dc), dc**2, 0.0) + dm**2
    nearest = np.argmin(np.where(np.isfinite(d2), d2, np.inf), axis=1)
    found = np.isfinite(g)
    out[found] = iso[nearest[found], 3]
    return out


def completeness_magnitude(gmag: np.ndarray, weight: np.ndarray, bin_mag: float = 0.5) -> float:
    """The G where the members' weighted luminosity function peaks: fainter, a membership list
    loses stars (Gaia's and the list's own cuts) faster than the IMF adds them."""
    g = gmag[np.isfinite(gmag)]
    if g.size == 0:
        return math.nan
    edges = np.arange(np.floor(g.min()), np.ceil(g.max()) + bin_mag, bin_mag)
    if edges.size < 3:
        return float(g.max())
    counts, _ = np.histogram(gmag, bins=edges, weights=weight)
    peak = int(np.argmax(counts))
    return float(edges[peak + 1])


def galactocentric_radius(ra: float, dec: float, distance_pc: float) -> float:
    """Cylindrical Galactocentric radius (pc) in astropy's default Galactocentric frame."""
    import astropy.units as u
    from astropy.coordinates import Galactocentric, SkyCoord

    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, distance=distance_pc * u.pc)
    g = c.transform_to(Galactocentric())
    return float(np.hypot(g.x.to_value(u.pc), g.y.to_value(u.pc)))


def jacobi_radius(mass_within, r_gc_pc: float, start_mass: float) -> tuple[float, float]:
    """Fixed point of r_J = (G M(<r_J) / 2 Omega^2)^(1/3); returns (r_J pc, M_J Msun)."""
    omega = V_CIRC / r_gc_pc  # km/s/pc
    m = start_mass
    r = (G_PC * m / (2 * omega**2)) ** (1 / 3)
    for _ in range(50):
        m_new = mass_within(r)
        r_new = (G_PC * max(m_new, 1e-6) / (2 * omega**2)) ** (1 / 3)
        if abs(r_new - r) < 1e-4 * r:
            return r_new, m_new
        r, m = r_new, m_new
    return r, m


def _widen(value: float, q: np.ndarray) -> tuple[float, float]:
    """Bootstrap percentiles widened in quadrature by :data:`MASS_SYSTEMATIC` of ``value``."""
    extra = MASS_SYSTEMATIC * value
    return (value - math.hypot(value - q[0], extra), value + math.hypot(q[1] - value, extra))


def cluster_mass(gmag: np.ndarray, colour: np.ndarray, weight: np.ndarray,
                 radius_pc: np.ndarray, isochrone: np.ndarray, r_gc_pc: float,
                 n_boot: int = 200, seed: int = 0) -> MassResult:
    """Member masses, observed and total mass, Jacobi radius and mass (see the module text)."""
    w = np.asarray(weight, float)
    masses = member_masses(gmag, colour, isochrone)
    ok = np.isfinite(masses) & (w > 0)
    g_lim = completeness_magnitude(np.asarray(gmag, float)[ok], w[ok])
    iso = isochrone[np.all(np.isfinite(isochrone), axis=1)]
    unevolved = iso[: max(2, int(np.argmax(iso[:, 3])) + 1)]
    order = np.argsort(unevolved[:, 0])
    m_lim = float(np.interp(g_lim, unevolved[order, 0], unevolved[order, 3]))
    m_max = float(np.nanmax(iso[:, 3]))
    m_lim = min(max(m_lim, M_LOW), m_max)
    factor = kroupa_mass_integral(M_LOW, m_max) / max(kroupa_mass_integral(m_lim, m_max), 1e-12)
    above = ok & (masses >= m_lim)
    m_obs = float(np.sum(w[ok] * masses[ok]))
    r = np.asarray(radius_pc, float)

    def estimate(idx: np.ndarray) -> tuple[float, float, float]:
        sel = idx[above[idx]]
        total = float(np.sum(w[sel] * masses[sel])) * factor
        rs, ms = r[sel], w[sel] * masses[sel] * factor
        order = np.argsort(rs)
        cum = np.cumsum(ms[order])

        def within(radius: float) -> float:
            return float(np.interp(radius, rs[order], cum, left=0.0)) if cum.size else 0.0

        r_j, m_j = jacobi_radius(within, r_gc_pc, total)
        return total, m_j, r_j

    all_idx = np.arange(w.size)
    total, m_j, r_j = estimate(all_idx)
    rng = np.random.default_rng(seed)
    boots = np.array([estimate(rng.choice(all_idx, all_idx.size)) for _ in range(n_boot)])
    t16, t84 = _widen(total, np.percentile(boots[:, 0], [15.866, 84.134]))
    j16, j84 = _widen(m_j, np.percentile(boots[:, 1], [15.866, 84.134]))
    n_j = int(np.sum((r <= r_j) & (w >= 0.5)))
    log.info("mass: observed %.0f, total %.0f, Jacobi %.0f Msun; r_J %.2f pc (%d members), "
             "m_lim %.2f", m_obs, total, m_j, r_j, n_j, m_lim)
    return MassResult(masses, m_obs, m_lim, (float(t16), total, float(t84)),
                      (float(j16), m_j, float(j84)), r_j, n_j, r_gc_pc)
