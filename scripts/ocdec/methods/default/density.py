"""Error-aware overdensity maps in proper motion for one parallax slab (used by
:func:`ocdec.methods.default.peaks.find_peaks`).

Every star counts, weighted by what its errors allow:

* **parallax through its likelihood** (:func:`slab_weights`): a star's weight for the slab at
  parallax c is g p / (1 + p), p the ratio of its likelihood at c (its error and the slab's width
  added) to the field's parallax density for stars of its error, g the likelihood's shape (1 at
  c). A precise star at c weighs about 1, one far from c about 0, and one whose error swamps the
  field's spread about 1/2 in every slab (its proper motion still counts, its parallax says
  nothing);
* **proper motion deconvolved by error class** (:func:`significance_maps`): stars are binned by
  their member spread (the cluster's width and their error added); each class is smoothed with a
  Gaussian of its own spread, and the classes' excess counts are added over their added
  variances, so faint members spread by their errors are gathered instead of diluted. The best
  prefix of classes (precise first) is kept: a nearby cluster's precise members are not drowned
  by the noise of the faintest stars.

Two contrasts are measured. **In proper motion** (against the class's own field around the cell;
only for classes much narrower than the field's motions, where a smooth local field can be told
from a cluster) and **on the sky** (the same stars weighted by nearness to the centre against all
of them times the mean weight: the field's own humps in proper motion, which faint classes cannot
tell from a cluster, have no sky concentration and cancel; a compact cluster does not).
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
    """Each star's weight for the slab at parallax ``c`` (half-width ``half``): g p / (1 + p), p the
    likelihood ratio of being at c against the field (``field``: :class:`FieldParallax` density)."""
    var = e_plx**2 + half**2
    shape = np.exp(-0.5 * (plx - c) ** 2 / var)
    ratio = shape / np.sqrt(2 * math.pi * var) / field
    # times the likelihood's shape: where the field is sparse (a nearby cluster's parallax) the
    # ratio alone saturates far into the tails and every slab near the cluster sees all of it
    return shape * ratio / (1.0 + ratio)



def _aperture(h: np.ndarray) -> np.ndarray:
    """Counts in a Gaussian aperture of sigma 2 cells (weight 1 at its centre)."""
    return ndimage.gaussian_filter(h, sigma=_SIGMA_CELLS, mode="constant") * _APERTURE


def _aperture_variance(hv: np.ndarray) -> np.ndarray:
    """Variance of :func:`_aperture` counts from per-cell sums of squared weights."""
    smooth = ndimage.gaussian_filter(hv, sigma=_SIGMA_CELLS / math.sqrt(2), mode="constant")
    return np.maximum(smooth, 0.0) * math.pi * _SIGMA_CELLS**2


def _upsample(a: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """A coarse map onto the fine grid, each coarse cell repeated over its fine cells."""
    if factor == 1:
        return a
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]


def _pm_contrast(h: np.ndarray, h2: np.ndarray, background_cells: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Excess over the class's own field (its local mean about the cell) and its variance."""
    bg = ndimage.uniform_filter(h, size=background_cells, mode="constant") * _APERTURE
    var = np.maximum(ndimage.uniform_filter(h2, size=background_cells, mode="constant"), 0.0)
    return _aperture(h) - bg, var * _APERTURE


def significance_maps(pmra: np.ndarray, pmdec: np.ndarray, e_pm: np.ndarray, w: np.ndarray,
                      intrinsic: float, background_cells: int, max_classes: int = 6,
                      max_cells: int = 600, sky_w: np.ndarray | None = None,
                      pm_class_ratio: float = 0.2, pm_ok: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, float]:
    """Significance of the overdensity at each cell of a proper-motion grid for stars weighted
    ``w``, their errors deconvolved by class (module docstring): in proper motion (classes whose
    spread is at most ``pm_class_ratio`` times the field's motions) and, with ``sky_w`` (each
    star's nearness to the centre, 0-1), on the sky. Returns (pm significance, sky significance
    or None, x edges, y edges, cell). ``pm_ok``: the stars whose parallax places them in the
    slab, the only ones the proper-motion contrast uses (default all): stars whose parallax says
    nothing bring the distant field's narrow hump in proper motion into every slab."""
    spread = np.hypot(intrinsic, e_pm)
    s0 = max(float(np.quantile(spread, 0.02)), 1e-4)
    cls = np.floor(np.log2(spread / s0)).astype(int)
    keep = cls < max_classes
    q = np.quantile(np.stack([pmra[keep], pmdec[keep]]), [0.002, 0.998], axis=1)
    field_sd = 0.7413 * float(np.mean(np.subtract(*np.quantile(
        np.stack([pmra[keep], pmdec[keep]]), [0.75, 0.25], axis=1))))
    span = max(float(q[1, 0] - q[0, 0]), float(q[1, 1] - q[0, 1]))
    # One fine grid for all classes: the most precise class's cell (coarser where the grid would
    # exceed max_cells a side); each class is binned in whole multiples of it.
    cell = max(s0 / 2.0, (span + 2 * background_cells * s0 / 2.0) / max_cells)
    pad = background_cells * cell
    nx = int(min(max_cells, math.ceil((q[1, 0] - q[0, 0] + 2 * pad) / cell)))
    ny = int(min(max_cells, math.ceil((q[1, 1] - q[0, 1] + 2 * pad) / cell)))
    ex = q[0, 0] - pad + cell * np.arange(nx + 1)
    ey = q[0, 1] - pad + cell * np.arange(ny + 1)
    fbar = 0.0
    if sky_w is not None:
        fbar = float(np.sum(w[keep] * sky_w[keep]) / max(np.sum(w[keep]), 1e-300))
    pm_ex, pm_var = np.zeros((nx, ny)), np.zeros((nx, ny))
    sky_ex, sky_var = np.zeros((nx, ny)), np.zeros((nx, ny))
    best_pm = np.full((nx, ny), -np.inf)
    best_sky = np.full((nx, ny), -np.inf)
    for k in range(max_classes):
        sel = np.flatnonzero(cls == k)
        if sel.size < 3:
            continue
        s_k = s0 * 2.0 ** (k + 0.5)
        factor = max(1, int(round(s_k / 2.0 / cell)))
        bx = ex[0] + cell * factor * np.arange(-(-nx // factor) + 1)
        by = ey[0] + cell * factor * np.arange(-(-ny // factor) + 1)
        x, y, wk = pmra[sel], pmdec[sel], w[sel]

        def hist(weights: np.ndarray, x: np.ndarray = x, y: np.ndarray = y,
                 bx: np.ndarray = bx, by: np.ndarray = by) -> np.ndarray:
            return np.histogram2d(x, y, bins=(bx, by), weights=weights)[0]

        if k == 0 or s_k <= pm_class_ratio * field_sd:
            wp = wk if pm_ok is None else wk * pm_ok[sel]
            e, v = _pm_contrast(hist(wp), hist(wp * wp), background_cells)
            pm_ex += _upsample(e, factor, (nx, ny))
            pm_var += _upsample(v, factor, (nx, ny))
            best_pm = np.maximum(best_pm, pm_ex / np.sqrt(pm_var + 1.0))
        if sky_w is not None:
            a = wk * (sky_w[sel] - fbar)
            sky_ex += _upsample(_aperture(hist(a)), factor, (nx, ny))
            sky_var += _upsample(_aperture_variance(hist(a * a)), factor, (nx, ny))
            best_sky = np.maximum(best_sky, sky_ex / np.sqrt(sky_var + 1.0))
    best_pm = np.where(np.isfinite(best_pm), best_pm, 0.0)
    sky = np.where(np.isfinite(best_sky), best_sky, 0.0) if sky_w is not None else None
    return best_pm, sky, ex, ey, cell
