"""A small synthetic star field with one (or two) clusters, for fast membership tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ocdec.data.columns import CANONICAL_COLUMNS


def synthetic_field(n_field: int = 6000, n_cluster: int = 300, seed: int = 7,
                    cluster: tuple[float, float, float] = (-5.0, 3.0, 1.0),
                    second: tuple[float, float, float] | None = None,
                    centre: tuple[float, float] = (120.0, -30.0),
                    cluster_g: tuple[float, float] = (11.0, 19.0), n_faint: int = 0
                    ) -> pd.DataFrame:
    """Field: broad proper motions and parallaxes, uniform in a 1 deg cone. Cluster(s): Gaussian in
    (pmra, pmdec, parallax) with 0.15 mas/yr and 0.03 mas intrinsic widths plus G-dependent
    errors, Plummer-like on the sky (r50 0.15 deg), G uniform in ``cluster_g``. ``n_faint``: more
    field stars at G 19.5-21, mostly distant, as in a deep DR2 cone. ``true_member`` marks the
    first cluster."""
    rng = np.random.default_rng(seed)
    ra0, dec0 = centre

    def sky(n: int, r50: float | None) -> tuple[np.ndarray, np.ndarray]:
        if r50 is None:
            r = np.sqrt(rng.uniform(0, 1, n))  # uniform in the unit disc (deg)
        else:
            u = rng.uniform(0, 0.95, n)
            r = np.minimum(r50 * np.sqrt(u / (1 - u)), 1.0)
        phi = rng.uniform(0, 2 * np.pi, n)
        return ra0 + r * np.cos(phi) / np.cos(np.radians(dec0)), dec0 + r * np.sin(phi)

    parts = []
    specs = [(cluster, True)] + ([(second, False)] if second is not None else [])
    for (pmra, pmdec, plx), truth in specs:
        g = rng.uniform(*cluster_g, n_cluster)
        ra, dec = sky(n_cluster, 0.15)
        parts.append(dict(ra=ra, dec=dec, g=g, pmra=pmra + 0.15 * rng.standard_normal(n_cluster),
                          pmdec=pmdec + 0.15 * rng.standard_normal(n_cluster),
                          parallax=plx + 0.03 * rng.standard_normal(n_cluster),
                          truth=np.full(n_cluster, truth)))
    g = rng.uniform(11, 19.5, n_field)
    ra, dec = sky(n_field, None)
    parts.append(dict(ra=ra, dec=dec, g=g, pmra=rng.normal(-2, 5, n_field),
                      pmdec=rng.normal(0, 5, n_field),
                      parallax=np.abs(rng.normal(0.8, 0.6, n_field)) + 0.05,
                      truth=np.zeros(n_field, bool)))
    if n_faint:
        ra, dec = sky(n_faint, None)
        parts.append(dict(ra=ra, dec=dec, g=rng.uniform(19.5, 21, n_faint),
                          pmra=rng.normal(-2, 5, n_faint), pmdec=rng.normal(0, 5, n_faint),
                          parallax=np.abs(rng.normal(0.5, 0.4, n_faint)) + 0.05,
                          truth=np.zeros(n_faint, bool)))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = cat["ra"].size
    e_plx = 0.02 + 0.3 * np.exp((cat["g"] - 19) / 1.2)
    e_pm = 1.3 * e_plx
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in CANONICAL_COLUMNS})
    frame["source_id"] = np.arange(n, dtype=np.int64) + 10**15
    frame["ra"], frame["dec"] = cat["ra"], cat["dec"]
    frame["parallax"] = cat["parallax"] + e_plx * rng.standard_normal(n)
    frame["pmra"] = cat["pmra"] + e_pm * rng.standard_normal(n)
    frame["pmdec"] = cat["pmdec"] + e_pm * rng.standard_normal(n)
    frame["parallax_error"], frame["pmra_error"], frame["pmdec_error"] = e_plx, e_pm, e_pm
    frame["phot_g_mean_mag"] = cat["g"]
    frame["bp_rp"] = rng.uniform(0.5, 2.5, n)
    frame["true_member"] = cat["truth"]
    order = rng.permutation(n)  # members not first
    return frame.iloc[order].reset_index(drop=True)
