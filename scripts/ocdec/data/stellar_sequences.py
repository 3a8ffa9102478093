"""Stellar sequences for synthetic fields: absolute G and BP-RP of dwarfs, giants and white dwarfs,
the Kroupa mass function, and the Gaia band relations used to split BP-RP into BP and RP.

The shapes are meant to be plausible, not an isochrone fit: a main sequence from the dwarf table of
Pecaut & Mamajek (2013, ApJS 208, 9; Gaia columns of its online update), a red giant branch and red
clump, a white-dwarf cooling sequence, and a turn-off set by a main-sequence lifetime
t_MS = 10 Gyr (m / Msun)^-2.5.
"""

from __future__ import annotations

import numpy as np

# Main sequence (dwarfs): mass (Msun), absolute G, intrinsic BP-RP; approximately Pecaut & Mamajek.
_MS_MASS = np.array(
    [0.08, 0.10, 0.14, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.00, 1.10, 1.20, 1.40,
     1.60, 1.90, 2.30, 3.00, 4.00, 5.00, 7.00, 10.0]
)  # fmt: skip
_MS_MG = np.array(
    [15.6, 14.3, 13.1, 12.0, 10.7, 9.7, 8.9, 8.0, 7.2, 6.2, 5.4, 4.7, 4.1, 3.6, 2.9, 2.4, 1.8,
     1.1, 0.2, -0.6, -1.2, -2.0, -2.9]
)  # fmt: skip
_MS_BPRP = np.array(
    [4.6, 3.9, 3.4, 3.05, 2.65, 2.35, 2.05, 1.80, 1.52, 1.17, 0.96, 0.82, 0.72, 0.63, 0.47, 0.36,
     0.22, 0.05, -0.07, -0.13, -0.17, -0.22, -0.27]
)  # fmt: skip

# Red giant branch from its base to the tip, and the red clump (absolute G, BP-RP).
RGB_BASE = (3.2, 1.00)
RGB_TIP = (-2.5, 2.10)
RED_CLUMP = (0.45, 1.20)

# Extinction ratios for Gaia bands (Wang & Chen 2019, ApJ 877, 116): A_G/A_V, A_BP/A_V, A_RP/A_V.
A_G_PER_AV = 0.789
A_BP_PER_AV = 1.002
A_RP_PER_AV = 0.589

# G - RP as a function of BP-RP, a saturating curve through the Sun (0.82, 0.49) and mid-M dwarfs
# (3.0, 1.24); it only serves to split a colour into two band magnitudes.
_G_RP_SCALE = 1.81
_G_RP_WIDTH = 2.6


def main_sequence(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-age absolute G and intrinsic BP-RP of dwarfs of the given masses (Msun)."""
    logm = np.log10(np.clip(mass, _MS_MASS[0], _MS_MASS[-1]))
    logtable = np.log10(_MS_MASS)
    return np.interp(logm, logtable, _MS_MG), np.interp(logm, logtable, _MS_BPRP)


def dwarf_colour(abs_g: np.ndarray) -> np.ndarray:
    """Intrinsic BP-RP of a solar-metallicity dwarf of absolute magnitude ``abs_g``."""
    # the table runs bright to faint; np.interp needs increasing x
    return np.interp(abs_g, _MS_MG[::-1], _MS_BPRP[::-1])


def turnoff_mass(age_myr: float) -> float:
    """Mass (Msun) whose main-sequence lifetime equals ``age_myr``."""
    return float((max(age_myr, 1.0) / 1.0e4) ** -0.4)


def giant_branch(phase: np.ndarray, start: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Absolute G and BP-RP along subgiant branch -> RGB tip for ``phase`` in [0, 1].

    ``start`` is the turn-off (absolute G, BP-RP); the first quarter of the phase crosses the
    subgiant gap to the base of the giant branch.
    """
    knots = np.array([0.0, 0.25, 1.0])
    mg = np.interp(phase, knots, [start[0], max(RGB_BASE[0], start[0]) + 0.3, RGB_TIP[0]])
    colour = np.interp(phase, knots, [start[1], RGB_BASE[1], RGB_TIP[1]])
    # the RGB's colour rises faster near the tip
    return mg, colour + 0.25 * np.clip(phase - 0.6, 0.0, None) ** 2


def white_dwarfs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Absolute G and BP-RP along a simple cooling sequence (hotter is brighter and bluer)."""
    mg = rng.uniform(10.5, 15.0, n)
    return mg, -0.45 + 0.22 * (mg - 10.5)


def kroupa_masses(rng: np.random.Generator, n: int, m_min: float, m_max: float) -> np.ndarray:
    """Masses from the Kroupa (2001) IMF: dN/dm ~ m^-1.3 below 0.5 Msun, m^-2.3 above."""
    m_break = 0.5
    lo, hi = min(m_min, m_break), max(m_max, m_break)
    n_low = _power_law_integral(lo, m_break, 1.3)
    # continuity at the break: xi_high = m_break * m^-2.3
    n_high = m_break * _power_law_integral(m_break, hi, 2.3)
    low = rng.random(n) < n_low / (n_low + n_high)
    out = np.empty(n)
    out[low] = _sample_power_law(rng, int(low.sum()), lo, m_break, 1.3)
    out[~low] = _sample_power_law(rng, int((~low).sum()), m_break, hi, 2.3)
    return np.clip(out, m_min, m_max)


def _power_law_integral(lo: float, hi: float, alpha: float) -> float:
    return (hi ** (1.0 - alpha) - lo ** (1.0 - alpha)) / (1.0 - alpha)


def _sample_power_law(
    rng: np.random.Generator, n: int, lo: float, hi: float, alpha: float
) -> np.ndarray:
    """Inverse-CDF draws from dN/dm ~ m^-alpha on [lo, hi] (alpha != 1)."""
    k = 1.0 - alpha
    u = rng.random(n)
    return (lo**k + u * (hi**k - lo**k)) ** (1.0 / k)


def split_colour(g: np.ndarray, bp_rp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BP and RP magnitudes from G and BP-RP."""
    g_rp = _G_RP_SCALE * -np.expm1(-bp_rp / _G_RP_WIDTH)
    rp = g - g_rp
    return rp + bp_rp, rp


def add_fluxes(mag1: np.ndarray, mag2: np.ndarray) -> np.ndarray:
    """Magnitude of two unresolved sources (NaN in ``mag2`` means no companion)."""
    flux2 = np.where(np.isfinite(mag2), 10.0 ** (-0.4 * (mag2 - mag1)), 0.0)
    return mag1 - 2.5 * np.log10(1.0 + flux2)
