"""Error-aware overdensity maps in proper motion for one parallax slab (used by
:func:`ocdec.methods.default.peaks.find_peaks`).

Every star counts, weighted by what its errors allow:

* **parallax through its likelihood** (:func:`slab_weights`): a star's weight for the slab at
  parallax c is p / (1 + p), p the ratio of its likelihood at c (its error and the slab's width
  added) to the field's parallax density for stars of its error. A precise star at c weighs about
  1, one far from c about 0, and one whose error swamps the field's spread about 1/2 in every slab
  (its proper motion still counts, its parallax says nothing);
* **proper motion deconvolved by error class** (:func:`significance_map`): stars are binned by
  their member spread (the cluster's width and their error added), each class is smoothed with a
  Gaussian of its own spread and compared with its own local field, and the classes' excess counts
  are added over their added variances, so faint members spread by their errors are gathered
  instead of diluted. The best prefix of classes (precise first) is kept: a nearby cluster's
  precise members are not drowned by the noise of the faintest stars.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# The Gaussian aperture (sigma 2 cells) and the field box, as counts: the same convention as the
# significance threshold was calibrated with (variance = expected counts, conservative by 2).
_SIGMA_CELLS = 2.0
_APERTURE = 2 * math.pi * _SIGMA_CELLS**2


class FieldParallax:
    """The field's observed parallax density at each star's own parallax, among stars of similar
    parallax error (quantile bins of the error), smoothed over the bin's typical error."""

    def __init__(self, plx: np.ndarray, e_plx: np.ndarray, n_bins: int = 8) -> None:
        self.density = np.empty(plx.size)
        edges = np.unique(np.quantile(e_plx, np.linspace(0, 1, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, e_plx, side="right") - 1, 0, max(len(edges) - 2, 0))
        for b in np.unique(which):
            sel = np.flatnonzero(which == b)
            x = plx[sel]
            # wide enough for a smooth density: the bin's error, the field's own spread / 30
            width = max(float(np.median(e_plx[sel])), float(np.std(x)) / 30.0, 0.01)
            lo, hi = float(x.min()) - 4 * width, float(x.max()) + 4 * width
            n = int(min(4000, max(10, math.ceil((hi - lo) / (width / 2)))))
            h, e = np.histogram(x, bins=n, range=(lo, hi))
            step = e[1] - e[0]
            dens = ndimage.gaussian_filter1d(h.astype(float), width / step, mode="constant")
            dens /= max(dens.sum() * step, 1e-300)
            cell = np.clip(((x - lo) / step).astype(int), 0, n - 1)
            self.density[sel] = np.maximum(dens[cell], 1e-6)


def slab_weights(plx: np.ndarray, e_plx: np.ndarray, field: np.ndarray, c: float,
                 half: float) -> np.ndarray:
    """Each star's weight for the slab at parallax ``c`` (half-width ``half``): p / (1 + p), p the
    likelihood ratio of being at c against the field (``field``: :class:`FieldParallax` density)."""
    var = e_plx**2 + half**2
    like = np.exp(-0.5 * (plx - c) ** 2 / var) / np.sqrt(2 * math.pi * var)
    ratio = like / field
    return ratio / (1.0 + ratio)


def _class_maps(x: np.ndarray, y: np.ndarray, w: np.ndarray, ex: np.ndarray, ey: np.ndarray,
                factor: int, background_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Excess counts and their variance in a Gaussian aperture of sigma 2 coarse cells, a coarse
    cell being ``factor`` fine cells (edges ``ex``, ``ey``); returned on the fine grid (each
    coarse cell's value repeated over its fine cells: cheap, and as fine as such a class places)."""
    nx, ny = ex.size - 1, ey.size - 1
    cx, cy = (ex[1] - ex[0]) * factor, (ey[1] - ey[0]) * factor
    bx = ex[0] + cx * np.arange(-(-nx // factor) + 1)
    by = ey[0] + cy * np.arange(-(-ny // factor) + 1)
    h, _, _ = np.histogram2d(x, y, bins=(bx, by), weights=w)
    h2, _, _ = np.histogram2d(x, y, bins=(bx, by), weights=w * w)
    sm = ndimage.gaussian_filter(h, sigma=_SIGMA_CELLS, mode="constant") * _APERTURE
    bg = ndimage.uniform_filter(h, size=background_cells, mode="constant") * _APERTURE
    var = np.maximum(ndimage.uniform_filter(h2, size=background_cells, mode="constant"), 0.0)
    exc, var = sm - bg, var * _APERTURE
    if factor > 1:
        exc = np.repeat(np.repeat(exc, factor, axis=0), factor, axis=1)[:nx, :ny]
        var = np.repeat(np.repeat(var, factor, axis=0), factor, axis=1)[:nx, :ny]
    return exc, var


def significance_map(pmra: np.ndarray, pmdec: np.ndarray, e_pm: np.ndarray, w: np.ndarray,
                     intrinsic: float, background_cells: int, max_classes: int = 6,
                     max_cells: int = 600, sky_w: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Significance of the overdensity at each cell of a proper-motion grid for stars weighted
    ``w`` (times ``sky_w`` where given), their errors deconvolved by class (module docstring).
    Returns (significance, x edges, y edges, cell)."""
    weight = w if sky_w is None else w * sky_w
    spread = np.hypot(intrinsic, e_pm)
    s0 = max(float(np.quantile(spread, 0.02)), 1e-4)
    cls = np.floor(np.log2(spread / s0)).astype(int)
    keep = cls < max_classes
    q = np.quantile(np.stack([pmra[keep], pmdec[keep]]), [0.002, 0.998], axis=1)
    span = max(float(q[1, 0] - q[0, 0]), float(q[1, 1] - q[0, 1]))
    # One fine grid for all classes: the most precise class's cell (coarser where the grid would
    # exceed max_cells a side); each class is binned in whole multiples of it.
    cell = max(s0 / 2.0, (span + 2 * background_cells * s0 / 2.0) / max_cells)
    pad = background_cells * cell
    nx = int(min(max_cells, math.ceil((q[1, 0] - q[0, 0] + 2 * pad) / cell)))
    ny = int(min(max_cells, math.ceil((q[1, 1] - q[0, 1] + 2 * pad) / cell)))
    ex = q[0, 0] - pad + cell * np.arange(nx + 1)
    ey = q[0, 1] - pad + cell * np.arange(ny + 1)
    total_ex = np.zeros((nx, ny))
    total_var = np.zeros((nx, ny))
    best = None
    for k in range(max_classes):
        sel = np.flatnonzero(cls == k)
        if sel.size < 3:
            continue
        factor = max(1, int(round(s0 * 2.0 ** (k + 0.5) / 2.0 / cell)))
        exc, var = _class_maps(pmra[sel], pmdec[sel], weight[sel], ex, ey, factor,
                               background_cells)
        total_ex += exc
        total_var += var
        sig = total_ex / np.sqrt(total_var + 1.0)
        best = sig if best is None else np.maximum(best, sig)
    if best is None:
        return np.zeros((1, 1)), np.zeros(2), np.zeros(2), 0.0
    return best, ex, ey, cell
