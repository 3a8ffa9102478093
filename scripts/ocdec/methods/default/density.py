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

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ocdec.methods.default import map_filters
from ocdec.methods.default.star_loops import cell_slots, class_histograms, spread_classes

# The Gaussian aperture (sigma 2 cells) and the field box, as counts: the same convention as the
# significance threshold was calibrated with (variance = expected counts, conservative by 2).
_SIGMA_CELLS = 2.0
_APERTURE = 2 * math.pi * _SIGMA_CELLS**2
QUANTILE_STARS = 50_000


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
                 half: float, e_plx2: np.ndarray | None = None) -> np.ndarray:
    """Each star's weight for the slab at parallax ``c`` (half-width ``half``): g p / (1 + p), p the
    likelihood ratio of being at c against the field (``field``: :class:`FieldParallax` density).
    ``e_plx2``: ``e_plx**2``, where the caller has it."""
    var = (e_plx**2 if e_plx2 is None else e_plx2) + half**2
    shape = np.exp(-0.5 * (plx - c) ** 2 / var)
    ratio = shape / np.sqrt(2 * math.pi * var) / field
    # times the likelihood's shape: where the field is sparse (a nearby cluster's parallax) the
    # ratio alone saturates far into the tails and every slab near the cluster sees all of it
    return shape * ratio / (1.0 + ratio)


def slab_stars(plx: np.ndarray, e_plx: np.ndarray, field: np.ndarray, c: float, half: float,
               min_weight: float, e_plx2: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The stars weighing more than ``min_weight`` in the slab (ascending indices) and their
    :func:`slab_weights`, the same to the bit, made only for the stars that can weigh that much:
    a weight is below its likelihood's shape g = exp(-d^2 / 2 var), so g > ``min_weight`` needs
    d^2 < 2 ln(1 / min_weight) var, which a few cheap passes test (with a margin far beyond
    their rounding) before the exponentials, roots and divisions of the few stars near ``c``."""
    e_plx2 = e_plx**2 if e_plx2 is None else e_plx2
    var = e_plx2 + half**2
    d2 = plx - c
    np.multiply(d2, d2, out=d2)
    near = np.flatnonzero(d2 < (2.0 * math.log(1.0 / min_weight) + 1.0) * var)
    w = slab_weights(plx[near], e_plx[near], field[near], c, half, e_plx2[near])
    keep = w > min_weight
    return near[keep], w[keep]


@functools.cache
def _gauss_weights(sigma: float) -> np.ndarray:
    """The kernel :func:`scipy.ndimage.gaussian_filter` correlates with at ``sigma`` (truncated at
    4 sigma, normalised, reversed), made once: the filter made it anew on every call."""
    x = np.arange(-_gauss_radius(sigma), _gauss_radius(sigma) + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    w = np.ascontiguousarray((phi / phi.sum())[::-1])
    w.setflags(write=False)  # shared by every call
    return w


def _gaussian(h: np.ndarray, sigma: float, region: Region | None = None) -> np.ndarray:
    """``ndimage.gaussian_filter(h, sigma, mode="constant")[region]`` of a 2-d map, bit for bit,
    made only on ``region`` (default: the whole map): :func:`map_filters.gaussian`, the same
    1-d correlations compiled, without the filter's per-call set-up and over many lines at once
    (the filters were a quarter of the peak search on a field of 360,000 stars)."""
    return map_filters.gaussian(h, _gauss_weights(sigma), region)


def _box(h: np.ndarray, size: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``ndimage.uniform_filter(h, size, mode="constant")[r0:r1]`` of a 2-d map, bit for bit,
    made only on rows ``rows`` = (r0, r1) (default: every row): :func:`map_filters.box`. A size
    of 1 or less is a copy, as scipy skips such axes (a running sum of one cell can differ from
    it in the last bit)."""
    if size <= 1:
        return np.array(h if rows is None else h[rows[0]:rows[1]])
    return map_filters.box(h, size, rows)


def _aperture(h: np.ndarray, region: Region | None = None) -> np.ndarray:
    """Counts in a Gaussian aperture of sigma 2 cells (weight 1 at its centre), on ``region``
    (default: the whole map)."""
    return _gaussian(h, _SIGMA_CELLS, region) * _APERTURE


def _aperture_variance(hv: np.ndarray, region: Region | None = None) -> np.ndarray:
    """Variance of :func:`_aperture` counts from per-cell sums of squared weights, on
    ``region`` (default: the whole map)."""
    smooth = _gaussian(hv, _SIGMA_CELLS / math.sqrt(2), region)
    return np.maximum(smooth, 0.0) * math.pi * _SIGMA_CELLS**2


# The threshold's bound (:func:`_candidate_regions`) is taken on blocks of this many cells a side.
BOUND_BLOCK = 8
# An aperture's largest weight (the Gaussian truncated at 4 sigma, scaled to 1 at its centre, is
# 1.00004 there after scipy normalises the truncated kernel), with room for float32 rounding.
_APERTURE_MAX_WEIGHT = 1.01


def _gauss_radius(sigma: float) -> int:
    """Cells a Gaussian filter reaches (scipy's truncate of 4 sigma)."""
    return int(4.0 * sigma + 0.5)


@dataclass(frozen=True)
class _Cells:
    """A fine class's two histograms (of weights and of squared weights) as the cells its stars
    reach (flat indices i ny + j, :func:`~ocdec.methods.default.star_loops.class_histograms`)
    and their values there, float32 (2, n): every other cell is 0. Made into maps only on the
    rows a slab's candidate regions need (:meth:`rows`)."""

    cells: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def rows(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The two maps on grid rows lo..hi."""
        return map_filters.cells_to_rows(self.cells, self.values, self.shape, lo, hi)

    def first_row(self) -> int:
        """The first row with a cell reached (the number of rows before it where none is)."""
        return int(self.cells.min()) // self.shape[1] if self.cells.size else self.shape[0]

    @classmethod
    def of_maps(cls, h: np.ndarray, h2: np.ndarray) -> _Cells:
        """The cells of two whole maps that are not 0 (maps made elsewhere, as in tests)."""
        cells = np.flatnonzero((h != 0) | (h2 != 0))
        return cls(cells, np.stack([h.ravel()[cells], h2.ravel()[cells]]), h.shape)


@dataclass(frozen=True)
class _Part:
    """One error class's share of one contrast, on a grid coarser than the fine one (factor > 1,
    a fraction of its cells) or on the fine grid (factor 1). A coarse class: ``first``, its
    excess (its aperture's counts, less the local field for the proper-motion contrast) over its
    whole grid, for the bound; ``second``, a proper-motion class's variance over its whole grid,
    a sky class's histogram of squared weights, from which its variance is made on a region's
    cells (:func:`_gaussian` gives each the whole grid's value there). A fine class is made in
    two steps: :func:`_part` keeps its histograms (``hist``) and the block sums of its positive
    weights (``positive``, for the bound); then :func:`_fine_rows` (which must run before its
    maps are read) makes ``first``, its histogram of weights, on the rows from ``band0`` that
    the candidate regions' apertures read, and ``second``: a sky class's histogram of squared
    weights on the same rows; a proper-motion class's variance and its local field's mean
    (``background``) on the candidate regions' rows, from ``row0``."""

    kind: str  # "pm" or "sky"
    factor: int
    first: np.ndarray | None
    second: np.ndarray | None
    background: np.ndarray | None = None  # a fine proper-motion class: the local field's mean
    positive: np.ndarray | None = None
    row0: int = 0  # a fine proper-motion class: the grid row of background's and second's first
    hist: _Cells | None = None  # a fine class's histograms, until _fine_rows
    band0: int = 0  # a fine class: the grid row of first's first (and a sky class's second's)


def _part(kind: str, factor: int, hist: _Cells, background_cells: int,
          positive: np.ndarray | None) -> _Part:
    """A class's part from its histograms, the cells its stars reach: a fine class keeps them
    until :func:`_fine_rows`; a coarse class's maps are made over its whole grid."""
    if factor == 1:
        return _Part(kind, 1, None, None, None, positive, hist=hist)
    h, h2 = hist.rows(0, hist.shape[0])
    if kind == "pm":
        bg, var = _pm_background(h, h2, background_cells)
        return _Part(kind, factor, _aperture(h) - bg, var)
    return _Part(kind, factor, _aperture(h), h2)


def _fine_rows(part: _Part, rows: tuple[int, int], background_cells: int) -> _Part:
    """A fine class with its maps made on the rows the candidate regions' grid rows ``rows`` =
    (start, stop) read, the same values there as over the whole grid: its apertures read
    _MARGIN rows beyond them; a proper-motion class's box filters (:func:`_box`) the box's
    reach after them, and before them from a row whose running sums are exactly 0 on the whole
    grid too (no star in it or within the box's reach after it)."""
    hist = part.hist
    assert hist is not None, "a fine class's histograms"
    nx = hist.shape[0]
    lo, hi = max(rows[0] - _MARGIN, 0), min(rows[1] + _MARGIN, nx)
    if part.kind == "sky":
        h, h2 = hist.rows(lo, hi)
        return replace(part, first=h, second=h2, hist=None, band0=lo)
    after = background_cells - background_cells // 2 - 1  # rows the box reaches after a row
    lo, hi = min(lo, max(hist.first_row() - after - 1, 0)), max(hi, min(rows[1] + after, nx))
    h, h2 = hist.rows(lo, hi)
    at = (rows[0] - lo, rows[1] - lo)
    bg = _box(h, background_cells, at) * _APERTURE
    var = np.maximum(_box(h2, background_cells, at), 0.0) * _APERTURE
    return replace(part, first=h, second=var, background=bg, hist=None, row0=rows[0], band0=lo)


Region = tuple[slice, slice]


def _whole(shape: tuple[int, int]) -> Region:
    return slice(0, shape[0]), slice(0, shape[1])

# Cells a class's aperture and its variance reach: a region's maps read its histograms this
# far beyond it (which decides whether a few regions cost more than the whole grid).
_MARGIN = _gauss_radius(_SIGMA_CELLS) + 1


def _crop(region: Region, shape: tuple[int, int]) -> tuple[Region, Region]:
    """The cells a region's apertures read (the region and _MARGIN, cut at the grid's edges as
    the whole grid's filters are), and the region within them."""
    (rx, ry), m = region, _MARGIN
    x0, y0 = max(rx.start - m, 0), max(ry.start - m, 0)
    outer = (slice(x0, min(rx.stop + m, shape[0])), slice(y0, min(ry.stop + m, shape[1])))
    return outer, (slice(rx.start - x0, rx.stop - x0), slice(ry.start - y0, ry.stop - y0))


def _part_cells(part: _Part, region: Region, shape: tuple[int, int]
                ) -> tuple[np.ndarray, int, int, np.ndarray, int, int, int]:
    """A class's excess and variance on the fine cells of ``region``, the same values as on the
    whole grid, as (excess, its row and column offsets, variance, its offsets, factor): the
    region's cell (i, j) has ``excess[(i + row offset) // factor, (j + column offset) //
    factor]``, likewise the variance. A coarse class's maps are its own cells (each a square of
    ``factor`` fine cells), not repeated onto the fine ones. Gaussian apertures (a fine class's,
    and a sky class's variance) are made on the region's cells alone (:func:`_gaussian` gives
    each cell the whole grid's operations on the same values); a fine class's maps on rows that
    hold the region's (:func:`_fine_rows`, run before)."""
    rx, ry = region
    if part.factor > 1:
        f = part.factor
        assert part.first is not None and part.second is not None, "a coarse class's maps"
        if part.kind == "pm":
            return part.first, rx.start, ry.start, part.second, rx.start, ry.start, f
        cx = slice(rx.start // f, (rx.stop - 1) // f + 1)
        cy = slice(ry.start // f, (ry.stop - 1) // f + 1)
        var = _aperture_variance(part.second, (cx, cy))
        return (part.first, rx.start, ry.start, var, rx.start - cx.start * f,
                ry.start - cy.start * f, f)
    assert part.first is not None and part.second is not None, "a fine class's rows"
    band = slice(rx.start - part.band0, rx.stop - part.band0), ry
    aperture = _aperture(part.first, band)
    if part.kind == "pm":
        at = slice(rx.start - part.row0, rx.stop - part.row0), ry
        return (aperture - part.background[at],  # type: ignore[index]
                0, 0, part.second, rx.start - part.row0, ry.start, 1)
    return aperture, 0, 0, _aperture_variance(part.second, band), 0, 0, 1


def _part_maps(part: _Part, region: Region, shape: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_part_cells` as two maps of the region's cells (a coarse class's cells repeated
    onto the fine cells they cover)."""
    ex, ei, ej, var, vi, vj, f = _part_cells(part, region, shape)
    rx, ry = region
    size = (rx.stop - rx.start, ry.stop - ry.start)

    def cells(m: np.ndarray, oi: int, oj: int) -> np.ndarray:
        rows = (np.arange(size[0]) + oi) // f
        cols = (np.arange(size[1]) + oj) // f
        return m[np.ix_(rows, cols)]

    return cells(ex, ei, ej), cells(var, vi, vj)


def _prefix_significance(parts: list[_Part], region: Region, shape: tuple[int, int]
                         ) -> np.ndarray:
    """The best significance over the prefixes of classes (precise first) on ``region``: each
    prefix's summed excess over the square root of its summed variance plus one (0 where no
    class counts). float32: the grids' passes are the peak search's main cost, and counts need
    no more than 7 digits. Each class is added in one compiled pass
    (:func:`~ocdec.methods.default.map_filters.prefix_step`, numpy's float32 arithmetic to the
    bit), reading a coarse class's own cells: the five numpy passes and temporaries per class,
    and the coarse maps repeated onto the fine cells, were a fifth of a large field's search."""
    rx, ry = region
    size = (rx.stop - rx.start, ry.stop - ry.start)
    ex_sum, var_sum = np.zeros(size, np.float32), np.zeros(size, np.float32)
    best = np.full(size, -np.inf, np.float32)
    for part in parts:
        ex, ei, ej, var, vi, vj, f = _part_cells(part, region, shape)
        map_filters.prefix_step(ex, ei, ej, var, vi, vj, f, ex_sum, var_sum, best)
    return np.where(np.isfinite(best), best, np.float32(0.0))


def _bound(parts: list[_Part], nb: tuple[int, int]) -> np.ndarray:
    """Over each block of BOUND_BLOCK fine cells a side, at least every prefix's significance
    of one contrast: the sum over its classes of their positive excesses (a prefix's excess is
    at most that, and the variance adds to the one under the root). A coarse class's is its map's
    largest over the block; a fine class's its positive weights within its aperture's reach (the
    aperture weighs a star at most _APERTURE_MAX_WEIGHT), from block sums of its stars."""
    reach = -(-_gauss_radius(_SIGMA_CELLS) // BOUND_BLOCK)  # blocks a fine aperture reaches
    bound = np.zeros(nb)
    for part in parts:
        if part.factor == 1:
            assert part.positive is not None, "a fine class without its block sums"
            window = _box(part.positive, 2 * reach + 1)
            bound += _APERTURE_MAX_WEIGHT * (2 * reach + 1) ** 2 * window
        else:
            bound += map_filters.block_max(part.first, part.factor, BOUND_BLOCK, nb)
    return bound


def _candidate_regions(contrasts: list[list[_Part]], shape: tuple[int, int], threshold: float
                       ) -> list[Region]:
    """The regions of the fine grid where a significance could pass ``threshold``
    (:func:`_bound`): outside them every prefix's is below it, so no peak lies there, nor a
    neighbour that could outrank one. In a field most cells of a slab's grid hold no star, and
    the aperture counts that could reach the threshold lie in a fifth of them or less. The whole
    grid where the regions' crops would cover more cells than it has."""
    nb = (-(-shape[0] // BOUND_BLOCK), -(-shape[1] // BOUND_BLOCK))
    candidate = np.zeros(nb, bool)
    for parts in contrasts:
        if parts:
            # float32 sums and roots may round a little above the bound's float64 arithmetic
            candidate |= _bound(parts, nb) >= threshold * (1.0 - 1e-4)
    labels, _ = ndimage.label(candidate, structure=np.ones((3, 3)))
    regions = [(slice(sx.start * BOUND_BLOCK, min(sx.stop * BOUND_BLOCK, shape[0])),
                slice(sy.start * BOUND_BLOCK, min(sy.stop * BOUND_BLOCK, shape[1])))
               for sx, sy in ndimage.find_objects(labels)]
    crops = sum((o[0].stop - o[0].start) * (o[1].stop - o[1].start)
                for o, _ in (_crop(r, shape) for r in regions))
    return [_whole(shape)] if crops >= shape[0] * shape[1] else regions


def _pm_background(h: np.ndarray, h2: np.ndarray, background_cells: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A class's own field about each cell (its local mean over the box, in aperture counts) and
    the variance of its excess over it: the excess is the aperture's counts less the first."""
    bg = _box(h, background_cells) * _APERTURE
    var = np.maximum(_box(h2, background_cells), 0.0)
    return bg, var * _APERTURE


@dataclass(frozen=True)
class ErrorClasses:
    """A slab's stars grouped by member spread (the cluster's width and their error added) in
    factors of 2 from ``s0`` (class 0 also holds every star below it): they depend on errors
    alone, so a field's resamples share them."""

    s0: float
    every: np.ndarray  # the stars of every class
    sample: np.ndarray  # at most about QUANTILE_STARS of them, for the grid's span
    members: tuple[np.ndarray, ...]  # the stars of each class


def error_classes(e_pm: np.ndarray, intrinsic: float, max_classes: int = 6) -> ErrorClasses:
    """Stars of member spread hypot(intrinsic, e_pm) in classes of factors of 2 from the 2 %
    quantile of that spread; those below it belong to the first class."""
    # The grid's scales from quantiles of at most QUANTILE_STARS stars (every n-th: the rows'
    # order carries no proper motion), not of every star: a partial sort per slab was a fifth of
    # the search at 400,000 stars, and the grid only needs its span and cell to a few per cent.
    step = max(1, e_pm.size // QUANTILE_STARS)
    s0 = max(float(np.quantile(np.hypot(intrinsic, e_pm[::step]), 0.02)), 1e-4)
    # The stars below the 2 % quantile join class 0 rather than none: they are the slab's most
    # precise, and in a deep field, where faint stars set the quantile, they are a nearby
    # cluster's bright members and every star whose parallax places it in the slab (pm_ok).
    # Left out (class -1), the proper-motion contrast of such a slab was empty (simulated IC 4756:
    # 913 of 913 such stars, 264 of its 435 members).
    # A compiled pass classes the stars by comparing squares; the few it cannot tell (-1) are
    # classed as numpy classed every star, and the classes are the same to the last star.
    cls = spread_classes(e_pm, intrinsic, s0, max_classes)
    unsure = np.flatnonzero(cls < 0)
    if unsure.size:
        with np.errstate(invalid="ignore"):  # NaN's and infinity's casts: class 0, as before
            exact = np.floor(np.log2(np.hypot(intrinsic, e_pm[unsure]) / s0)).astype(int)
        cls[unsure] = np.clip(exact, 0, max_classes)
    every = np.flatnonzero(cls < max_classes)
    # the stars grouped by class, ascending within each (a stable sort of int8 is a radix sort)
    grouped = np.argsort(cls, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(cls, minlength=max_classes + 1))])
    return ErrorClasses(s0, every, every[::step],
                        tuple(grouped[starts[k]:starts[k + 1]] for k in range(max_classes)))


@dataclass(frozen=True)
class PmGrid:
    """A slab's proper-motion grid: the finest class's cell (coarser where the grid would exceed
    ``max_cells`` a side), the field's span padded by the background box, and the field's
    interquartile spread of motions (which classes get the proper-motion contrast)."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    field_sd: float

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.x0 + self.cell * np.arange(self.nx + 1),
                self.y0 + self.cell * np.arange(self.ny + 1))


def pm_grid(pmra: np.ndarray, pmdec: np.ndarray, classes: ErrorClasses, background_cells: int,
            max_cells: int = 600) -> PmGrid:
    """The grid :func:`significance_maps` bins these stars on (``pmra``, ``pmdec``: all the
    slab's stars, indexed by ``classes``)."""
    s0, kept = classes.s0, classes.sample
    # one partial sort for the grid's span and the field's interquartile spread
    q4 = np.quantile(np.stack([pmra[kept], pmdec[kept]]), [0.002, 0.25, 0.75, 0.998], axis=1)
    q = q4[[0, 3]]
    field_sd = 0.7413 * float(np.mean(q4[2] - q4[1]))
    span = max(float(q[1, 0] - q[0, 0]), float(q[1, 1] - q[0, 1]))
    # One fine grid for all classes: the most precise class's cell; each class is binned in
    # whole multiples of it.
    cell = max(s0 / 2.0, (span + 2 * background_cells * s0 / 2.0) / max_cells)
    pad = background_cells * cell
    nx = int(min(max_cells, math.ceil((q[1, 0] - q[0, 0] + 2 * pad) / cell)))
    ny = int(min(max_cells, math.ceil((q[1, 1] - q[0, 1] + 2 * pad) / cell)))
    return PmGrid(float(q[0, 0] - pad), float(q[0, 1] - pad), cell, nx, ny, field_sd)


@dataclass(frozen=True)
class ClassStars:
    """A slab's stars by error class as :func:`significance_maps` bins them (:func:`class_stars`):
    each class's stars (indices into the arrays searched; None where it has fewer than 3), their
    weights, and their weights in the proper-motion contrast (None: the class is not in it);
    every class's stars, their weights and those weights' sum (the sky contrast's mean). They
    depend on parallaxes and errors alone, so a field and its resamples share them: made once
    per slab and cell scale, not gathered again for every field."""

    s0: float
    at: tuple[np.ndarray | None, ...]
    weight: tuple[np.ndarray | None, ...]
    pm_weight: tuple[np.ndarray | None, ...]
    every_at: np.ndarray
    every_weight: np.ndarray
    every_weight_sum: float


def class_stars(w: np.ndarray, classes: ErrorClasses, grid: PmGrid, pm_class_ratio: float = 0.2,
                pm_ok: np.ndarray | None = None, index: np.ndarray | None = None) -> ClassStars:
    """The :class:`ClassStars` of stars weighted ``w`` in ``classes``: the proper-motion contrast
    for classes whose spread is at most ``pm_class_ratio`` times the field's motions (``grid``'s
    field_sd) and the stars ``pm_ok`` (default all: :func:`significance_maps`). ``index``: the
    stars' indices in the arrays to be searched, ascending (a slab's stars among its field's;
    None: the same arrays as ``w``)."""

    # int32 indices where the largest fits (``index`` is ascending): the plans of a few slabs
    # are held at once, and these are most of them (np.take gathers with them at about the
    # cost of int64 fancy indexing)
    largest = w.size - 1 if index is None else (int(index[-1]) if index.size else 0)
    small = largest < 2**31

    def take(sel: np.ndarray) -> np.ndarray:
        at = sel if index is None else index[sel]
        return at.astype(np.int32) if small else at

    at: list[np.ndarray | None] = []
    weight: list[np.ndarray | None] = []
    pm_weight: list[np.ndarray | None] = []
    for k, sel in enumerate(classes.members):
        if sel.size < 3:
            at.append(None)
            weight.append(None)
            pm_weight.append(None)
            continue
        wk = w[sel]
        at.append(take(sel))
        weight.append(wk)
        in_pm = k == 0 or classes.s0 * 2.0 ** (k + 0.5) <= pm_class_ratio * grid.field_sd
        ok = None if pm_ok is None or not in_pm else pm_ok[sel]
        # a class whose stars all count in proper motion shares its weights (times 1, the same)
        pm_weight.append(None if not in_pm else wk if ok is None or ok.min() == 1.0 else wk * ok)
    every_weight = w[classes.every]
    return ClassStars(classes.s0, tuple(at), tuple(weight), tuple(pm_weight),
                      take(classes.every), every_weight, float(np.sum(every_weight)))


SlabMaps = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, float, int]


def significance_maps(pmra: np.ndarray, pmdec: np.ndarray, stars: ClassStars, grid: PmGrid,
                      background_cells: int, sky_w: np.ndarray | None = None,
                      threshold: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, float]:
    """Significance of the overdensity at each cell of a proper-motion grid for the weighted
    stars ``stars`` (:func:`class_stars`: indices into ``pmra``, ``pmdec`` and ``sky_w``), their
    errors deconvolved by class (module docstring, :func:`error_classes`): in proper motion (the
    classes much narrower than the field's motions, and only the stars whose parallax places
    them in the slab: stars whose parallax says nothing bring the distant field's narrow hump in
    proper motion into every slab) and, with ``sky_w`` (each star's nearness to the centre,
    0-1), on the sky. Returns (pm significance, sky significance or None, x edges, y edges,
    cell). ``grid``: the :func:`pm_grid` to bin on, the field's (its resamples are searched on
    it too). ``threshold``: the maps are made only where a significance could pass it
    (:func:`_candidate_regions`), 0 elsewhere: the same peaks above it, at a fraction of the
    filtering; None, the whole grid. The search itself takes them on the rows where they are
    made (:func:`significance_rows`)."""
    best_pm, best_sky, ex, ey, cell, row0 = significance_rows(
        pmra, pmdec, stars, grid, background_cells, sky_w, threshold)

    def whole(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((grid.nx, grid.ny), np.float32)
        out[row0:row0 + rows.shape[0]] = rows
        return out

    return whole(best_pm), None if best_sky is None else whole(best_sky), ex, ey, cell


def significance_rows(pmra: np.ndarray, pmdec: np.ndarray, stars: ClassStars, grid: PmGrid,
                      background_cells: int, sky_w: np.ndarray | None = None,
                      threshold: float | None = None) -> SlabMaps:
    """:func:`significance_maps` on the grid rows that hold its candidate regions (every other
    cell is 0): (pm significance, sky significance or None, x edges, y edges, cell, the grid
    row of the maps' first). With a positive threshold, the rows of the first region to the
    last (none where no significance can pass it); otherwise every row. A fine class's
    histograms are made into maps only on the rows its filters read there
    (:func:`_fine_rows`): a slab's grid has up to 360,000 cells, and in a small field most of a
    slab's classes have no candidate region, or a few rows of them."""
    s0 = stars.s0
    nx, ny, cell = grid.nx, grid.ny, grid.cell
    ex, ey = grid.edges()
    fbar = 0.0
    if sky_w is not None:
        fbar = float(np.sum(stars.every_weight * sky_w.take(stars.every_at))
                     / max(stars.every_weight_sum, 1e-300))
    factors = [max(1, int(round(s0 * 2.0 ** (k + 0.5) / 2.0 / cell)))
               for k in range(len(stars.at))]
    need_bound = [f == 1 and threshold is not None for f in factors]
    pm: list[_Part] = []
    sky: list[_Part] = []
    no_weights = np.empty(0)
    for k, (factor, at) in enumerate(zip(factors, stars.at, strict=True)):
        if at is None:
            continue
        # the class's grid: ``factor`` fine cells a side from the fine grid's first edges, its
        # step their first difference (as the edge arrays binned before gave it, to the bit)
        coarse = (-(-nx // factor), -(-ny // factor))
        wp = stars.pm_weight[k]
        block = BOUND_BLOCK if need_bound[k] else 0
        slots = cell_slots(coarse[0] * coarse[1])
        try:
            cells, pm_sums, sky_sums, blocks = class_histograms(
                pmra, pmdec, at, ex[0], (ex[0] + cell * factor) - ex[0], ey[0],
                (ey[0] + cell * factor) - ey[0], coarse[0], coarse[1], stars.weight[k],
                no_weights if wp is None else wp, no_weights if sky_w is None else sky_w,
                fbar, block, slots)
        except BaseException:
            slots.fill(-1)  # stopped part way (uncompiled, or bounds-checked): made whole again
            raise
        nb = (-(-coarse[0] // BOUND_BLOCK), -(-coarse[1] // BOUND_BLOCK))
        # each contrast's two histograms (float32) and block sums, only where it is made
        for kind, j, parts, sums, made in (("pm", 0, pm, pm_sums, wp is not None),
                                           ("sky", 1, sky, sky_sums, sky_w is not None)):
            if not made:
                continue
            positive = blocks[j].reshape(nb) if block else None
            parts.append(_part(kind, factor, _Cells(cells, sums, coarse), background_cells,
                               positive))
    shape = (nx, ny)
    regions = ([_whole(shape)] if threshold is None
               else _candidate_regions([pm, sky], shape, threshold))
    rows = (0, 0)
    if regions:
        rows = (min(r[0].start for r in regions), max(r[0].stop for r in regions))
        pm = [_fine_rows(p, rows, background_cells) if p.factor == 1 else p for p in pm]
        sky = [_fine_rows(p, rows, background_cells) if p.factor == 1 else p for p in sky]
    if threshold is not None and not threshold > 0:
        rows = (0, nx)  # a 0 outside the regions may be a peak there: every row is kept
    band = (rows[1] - rows[0], ny)
    best_pm = np.zeros(band, np.float32)
    best_sky = np.zeros(band, np.float32) if sky_w is not None else None
    for region in regions:
        at = slice(region[0].start - rows[0], region[0].stop - rows[0]), region[1]
        best_pm[at] = _prefix_significance(pm, region, shape)
        if best_sky is not None:
            best_sky[at] = _prefix_significance(sky, region, shape)
    return best_pm, best_sky, ex, ey, cell, rows[0]
