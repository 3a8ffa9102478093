"""Synthetic member lists drawn from the PARSEC isochrones themselves (injection-recovery tests).

Unlike :mod:`ocdec.data.simulate`, whose stellar sequences are an empirical main sequence with a
schematic turn-off, these clusters follow the fitted model exactly: Kroupa masses placed on the
isochrone, 30 % unresolved binaries (companion mass ratio uniform in 0.1-1), the Fitzpatrick
extinction, Gaia-like photometric and parallax errors, a few field contaminants, and a Plummer
sky distribution. What they test is the fit machinery, not the isochrones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ocdec.physics.cmd_fit import photometric_errors
from ocdec.physics.distance import parallax_error_model
from ocdec.physics.extinction import gaia_extinction
from ocdec.physics.isochrones import IsochroneGrid, interpolate
from ocdec.physics.mass import M_LOW


def _kroupa(rng: np.random.Generator, n: int, hi: float) -> np.ndarray:
    """Kroupa masses in [0.08, hi] by rejection from a log-uniform proposal."""
    out = np.empty(0)
    while out.size < n:
        m = np.exp(rng.uniform(np.log(M_LOW), np.log(hi), 4 * n))
        xi_m = np.where(m < 0.5, m ** -0.3, 0.5 * m ** -1.3)  # m * xi(m), continuous at 0.5
        out = np.concatenate([out, m[rng.random(m.size) < xi_m / xi_m.max()]])
    return out[:n]


def synthetic_members(grid: IsochroneGrid, log_age: float, av: float, distance_pc: float,
                      n_stars: int = 1500, feh: float = 0.0, binary_fraction: float = 0.3,
                      outlier_fraction: float = 0.03, g_max: float = 19.0,
                      seed: int = 0) -> pd.DataFrame:
    """Members of a synthetic cluster brighter than ``g_max``; ``attrs["true_mass"]`` is the mass
    (Msun) of all the living stars drawn (``n_stars`` singles and primaries, and companions)."""
    rng = np.random.default_rng(seed)
    iso = interpolate(grid, feh, log_age)
    iso = iso[np.all(np.isfinite(iso), axis=1)]
    mini, first = np.unique(iso[:, 2], return_index=True)
    iso = iso[first]
    mass = _kroupa(rng, n_stars, 8.0)
    alive = mass <= mini[-1]
    mass = mass[alive]
    abs_g = np.interp(mass, mini, iso[:, 0])
    col0 = np.interp(mass, mini, iso[:, 1])
    current = np.interp(mass, mini, iso[:, 3])
    binary = (rng.random(mass.size) < binary_fraction) & (mass < mini[-1] * 0.95)
    q_mass = np.clip(mass * rng.uniform(0.1, 1.0, mass.size), mini[0], None)
    c_g, c_col = np.interp(q_mass, mini, iso[:, 0]), np.interp(q_mass, mini, iso[:, 1])
    # combine fluxes in G, and in BP and RP through the colour (BP-RP of the sum)
    f1, f2 = 10 ** (-0.4 * abs_g), np.where(binary, 10 ** (-0.4 * c_g), 0.0)
    g_tot = -2.5 * np.log10(f1 + f2)
    col_tot = np.where(binary, (f1 * col0 + f2 * c_col) / (f1 + f2), col0)
    a_g, e_col = gaia_extinction(col_tot, av)
    dm = 5 * np.log10(distance_pc) - 5
    g = g_tot + a_g + dm
    colour = col_tot + e_col
    n = g.size
    n_out = int(round(outlier_fraction * n))
    idx = rng.choice(n, n_out, replace=False)
    g[idx] = rng.uniform(np.nanmin(g), g_max, n_out)
    colour[idx] = rng.uniform(np.nanmin(colour), np.nanmax(colour), n_out)
    sig_c, sig_g = photometric_errors(g)
    g = g + rng.normal(0, sig_g)
    colour = colour + rng.normal(0, sig_c)
    plx_err = parallax_error_model(g)
    r = 0.5 * np.sqrt(1.0 / rng.uniform(1e-3, 1.0, n) ** (2 / 3) - 1.0)  # Plummer, a = 0.5 deg
    r = np.minimum(r, 3.0) * (1000.0 / distance_pc)
    phi = rng.uniform(0, 2 * np.pi, n)
    frame = pd.DataFrame({
        "source_id": np.arange(n), "ra": 120.0 + r * np.cos(phi) / np.cos(np.radians(-30.0)),
        "dec": -30.0 + r * np.sin(phi), "parallax": 1000.0 / distance_pc
        + rng.normal(0, plx_err), "parallax_error": plx_err, "phot_g_mean_mag": g,
        "bp_rp": colour, "p_member": 1.0,
    })
    companions = np.where(binary, np.interp(q_mass, mini, iso[:, 3]), 0.0)
    frame.attrs["true_mass"] = float(np.sum(current) + np.sum(companions))
    return frame[frame["phot_g_mean_mag"] < g_max].reset_index(drop=True)
