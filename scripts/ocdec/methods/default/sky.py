"""Sky geometry: separations, the tangent plane, and the positions' part of the mixture likelihood
(:class:`SkyModel`: a Plummer cluster profile against the field's own star density)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from ocdec.methods.default.stars import Astrometry


def angular_separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle separation (haversine, stable at small angles)."""
    r1, d1, r0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    h = np.sin((d1 - d0) / 2) ** 2 + np.cos(d1) * np.cos(d0) * np.sin((r1 - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def tangent_plane(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection (degrees) about (ra0, dec0)."""
    r, d, r0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    xi = np.cos(d) * np.sin(r - r0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(r - r0)) / cosc
    return np.degrees(xi), np.degrees(eta)


class SkyModel:
    """Positions in the likelihood: a Plummer cluster profile against the field's own star density.

    The field density is a smoothed 2-d histogram of all usable stars on the tangent plane, so any
    footprint (cone, box, holes) is handled; the Plummer profile is normalised over the occupied
    cells of that same grid.
    """

    def __init__(self, ast: Astrometry, ra0: float, dec0: float, cells: int = 40) -> None:
        self.ra0, self.dec0 = ra0, dec0
        self.xi, self.eta = tangent_plane(ast.ra, ast.dec, ra0, dec0)
        lo = np.minimum(self.xi.min(), self.eta.min())
        hi = np.maximum(self.xi.max(), self.eta.max())
        self.edges = np.linspace(lo, hi + 1e-9, cells + 1)
        h, _, _ = np.histogram2d(self.xi, self.eta, bins=(self.edges, self.edges))
        self.cell_area = float((self.edges[1] - self.edges[0]) ** 2)
        smooth = ndimage.gaussian_filter(h, 1.0, mode="constant")
        self.occupied = ndimage.binary_dilation(h > 0) & (smooth > 0)
        dens = np.where(self.occupied, smooth, 0.0)
        self.field_density_grid = dens / (dens.sum() * self.cell_area)
        self.centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.ix = np.clip(np.digitize(self.xi, self.edges) - 1, 0, cells - 1)
        self.iy = np.clip(np.digitize(self.eta, self.edges) - 1, 0, cells - 1)

    def log_field(self, idx: np.ndarray) -> np.ndarray:
        d = self.field_density_grid[self.ix[idx], self.iy[idx]]
        return np.log(np.maximum(d, 1e-12))

    def log_cluster(self, idx: np.ndarray, x0: float, y0: float, a: float) -> np.ndarray:
        gx, gy = np.meshgrid(self.centres, self.centres, indexing="ij")
        prof = (1 + ((gx - x0) ** 2 + (gy - y0) ** 2) / a**2) ** -2
        norm = float((prof * self.occupied).sum() * self.cell_area)
        r2 = (self.xi[idx] - x0) ** 2 + (self.eta[idx] - y0) ** 2
        return -2 * np.log1p(r2 / a**2) - math.log(norm)

    def update(self, idx: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
        w = r / max(r.sum(), 1e-12)
        x0, y0 = float(w @ self.xi[idx]), float(w @ self.eta[idx])
        rad = np.hypot(self.xi[idx] - x0, self.eta[idx] - y0)
        order = np.argsort(rad)
        cum = np.cumsum(w[order])
        a = float(rad[order][np.searchsorted(cum, 0.5)])
        return x0, y0, max(a, 2 * (self.edges[1] - self.edges[0]))
