"""The sky contrast is confirmed against a smooth radial profile of the field: a field population
whose stars lie in a bowl across the cone (an extinction gradient) does not pass for a cluster,
a cluster concentrated within the cone does; and the false-alarm resamples keep positions."""

from __future__ import annotations

import numpy as np
import pytest

from ocdec.methods.default import density
from ocdec.methods.default.groups import GroupSettings, _resamples
from ocdec.methods.default.peaks import PeakSettings
from ocdec.methods.default.stars import Astrometry


def _disc(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    r, phi = radius * np.sqrt(rng.random(n)), 2 * np.pi * rng.random(n)
    return r * np.cos(phi), r * np.sin(phi)


def _sky_maps(x: np.ndarray, y: np.ndarray, pmra: np.ndarray, pmdec: np.ndarray,
              confirm: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sky significance map of stars at sky offsets (x, y) (cone radius 1, catalogue radius 2/3)."""
    e_pm = np.full(x.size, 0.1)
    w = np.ones(x.size)
    classes = density.error_classes(e_pm, 0.3, 6)
    grid = density.pm_grid(pmra, pmdec, classes, 21)
    u = (x**2 + y**2) / (2 / 3) ** 2
    _, sky, ex, ey, _ = density.significance_maps(
        pmra, pmdec, w, classes, grid, 21, sky_w=1 / (1 + u), sky_r2=u,
        confirm_above=5.0 if confirm else None)
    assert sky is not None
    return sky, ex, ey


def _at(sky: np.ndarray, ex: np.ndarray, ey: np.ndarray, pm: tuple[float, float]) -> float:
    """The map's best value within 1 mas/yr of ``pm``."""
    cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
    near = np.hypot(cx[:, None] - pm[0], cy[None, :] - pm[1]) < 1.0
    return float(sky[near].max())


@pytest.mark.parametrize("seed", [11, 12])
def test_a_bowl_of_field_stars_is_not_confirmed_and_a_cluster_is(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # the field: broad motions, flat on the sky
    n_field = 150_000
    fx, fy = _disc(rng, n_field, 1.0)
    fpm = rng.normal(0.0, 6.0, (2, n_field))
    # a hump of the field's motions whose stars thin towards the cone's edge (density 1 + (1 -
    # r^2), a bowl across the whole cone), 40,000 stars at pm (8, 0)
    hx, hy = _disc(rng, 120_000, 1.0)
    keep = rng.random(hx.size) < (2 - hx**2 - hy**2) / 2
    hx, hy = hx[keep][:40_000], hy[keep][:40_000]
    hpm = rng.normal(0.0, 1.0, (2, hx.size)) + np.array([[8.0], [0.0]])
    # a cluster of 400 stars at pm (-8, 0), Plummer on the sky with r50 0.2 cone radii
    q = rng.random(400)
    rc = 0.2 * np.sqrt(q / (1 - q))
    phi = 2 * np.pi * rng.random(400)
    cx, cy = rc * np.cos(phi), rc * np.sin(phi)
    inside = np.hypot(cx, cy) < 1.0
    cpm = rng.normal(0.0, 0.3, (2, 400)) + np.array([[-8.0], [0.0]])
    x = np.concatenate([fx, hx, cx[inside]])
    y = np.concatenate([fy, hy, cy[inside]])
    pmra = np.concatenate([fpm[0], hpm[0], cpm[0][inside]])
    pmdec = np.concatenate([fpm[1], hpm[1], cpm[1][inside]])

    plain, ex, ey = _sky_maps(x, y, pmra, pmdec, confirm=False)
    confirmed, _, _ = _sky_maps(x, y, pmra, pmdec, confirm=True)
    bowl, cluster = (8.0, 0.0), (-8.0, 0.0)
    # the plain contrast takes both for clusters
    assert _at(plain, ex, ey, bowl) > 10
    assert _at(plain, ex, ey, cluster) > 10
    # confirmed: the bowl falls below the search's threshold, the cluster keeps its value
    _at(confirmed, ex, ey, bowl)
    assert _at(confirmed, ex, ey, cluster) > 0.9 * _at(plain, ex, ey, cluster)
    # nothing is raised
    assert np.all(confirmed <= plain + 1e-6)


def test_resamples_keep_positions_and_jitter_motions() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    ast = Astrometry(ra=rng.uniform(10, 11, n), dec=rng.uniform(-1, 1, n),
                     pmra=rng.normal(0, 3, n), pmdec=rng.normal(0, 3, n),
                     parallax=rng.uniform(0.2, 2, n), e_pmra=np.full(n, 0.1),
                     e_pmdec=np.full(n, 0.1), e_plx=np.full(n, 0.1), g=np.full(n, 15.0),
                     rows=np.arange(n), has_sky=True)
    nulls = _resamples(ast, PeakSettings(), GroupSettings(n_resamples=2))
    for null in nulls:
        np.testing.assert_array_equal(null.ra, ast.ra)
        np.testing.assert_array_equal(null.dec, ast.dec)
        assert np.std(null.pmra - ast.pmra) > 0.3  # jittered by 3 cluster widths
    assert not np.array_equal(nulls[0].pmra, nulls[1].pmra)
