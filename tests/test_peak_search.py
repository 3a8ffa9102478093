"""The peak search's fast paths give what the plain computations give: the compiled loops'
histograms against numpy's histogram2d and, to the bit, the bincounts they replaced, the coarse
classes added onto the fine grid, the maps made only where the threshold can be passed against
the whole grid's (bit for bit), the filters against scipy's, local maxima against scipy's
maximum filter, the field's resamples the same whatever the number of threads that search them,
and the search made a few slabs at a time the same as over its whole plans."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ocdec.methods.default import density, map_filters
from ocdec.methods.default.groups import GroupSettings, _resamples, search_with_nulls
from ocdec.methods.default.peaks import (
    PeakSettings,
    _local_maxima,
    _suppress_duplicates,
    find_peaks,
    search_fields,
    search_plan,
    search_plans,
)
from ocdec.methods.default.star_loops import cell_slots, class_histograms
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.priors import ClusterPriors
from ocdec.threads import available_threads, thread_map
from synthetic_field import synthetic_field


def test_local_maxima_match_the_maximum_filter_at_edges_and_ties() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(5)
    sig = rng.gamma(2.0, 2.0, (60, 45)).astype(np.float32)
    sig[0, 0] = sig[-1, 20] = sig[30, -1] = 40.0  # maxima on the edges and in a corner
    sig[10, 10] = sig[10, 12] = 30.0  # a tie within one window: both are maxima
    sig[50, 5] = np.float32(5.0)  # exactly at the threshold: not above it
    expected = (sig == ndimage.maximum_filter(sig, size=5)) & (sig > 5.0)
    found = _local_maxima(sig, 5.0)
    assert found == list(zip(*np.nonzero(expected), strict=True))
    assert {(0, 0), (59, 20), (30, 44), (10, 10), (10, 12)} <= set(found)
    assert _local_maxima(np.zeros((8, 8), np.float32), 5.0) == []
    # a threshold float32 cannot hold is compared in double: float32(0.1) is just above 0.1
    tenth = np.zeros((5, 5), np.float32)
    tenth[2, 2] = np.float32(0.1)
    assert _local_maxima(tenth, 0.1) == [(2, 2)]


def test_local_maxima_of_two_maps_are_those_of_their_maximum() -> None:
    """Given a second map (the sky's), the maxima are those of numpy.maximum of the two, found
    without making it; a NaN cell is no maximum and keeps its neighbours from being one, as
    numpy's maximum and comparisons treat it."""
    rng = np.random.default_rng(6)
    pm = rng.gamma(2.0, 2.0, (70, 53)).astype(np.float32)
    sky = rng.gamma(2.0, 2.0, (70, 53)).astype(np.float32)
    sky[0, 3] = pm[40, 52] = 45.0  # one map's maxima on the edges
    pm[20, 20] = sky[20, 22] = 35.0  # a tie across the two maps: both are maxima
    sky[60, 30] = np.nan
    both = np.maximum(pm, sky)
    padded = np.pad(both, 2, constant_values=-np.inf)
    top = np.max([padded[di:di + 70, dj:dj + 53] for di in range(5) for dj in range(5)], axis=0)
    expected = (both == top) & (both > 5.0)
    found = _local_maxima(pm, 5.0, other=sky)
    assert found == list(zip(*np.nonzero(expected), strict=True))
    assert {(0, 3), (40, 52), (20, 20), (20, 22)} <= set(found)
    assert not {(i, j) for i, j in found if abs(i - 60) <= 2 and abs(j - 30) <= 2}


@pytest.mark.parametrize(("shape", "factor"), [((1, 1), 2), ((7, 5), 3), ((40, 17), 2),
                                               ((23, 61), 5), ((30, 30), 8), ((9, 4), 11)])
def test_block_max_is_numpys_reduceat(shape, factor) -> None:
    """The bound's largest positive value of a coarse class over each block (compiled,
    map_filters.block_max) is what numpy's maximum.reduceat at the blocks' first coarse lines and
    the lines of their last cells gave, the last block reducing to the map's end: the same
    values to the bit (+0.0 where numpy's is), NaN where a block reaches one."""
    rng = np.random.default_rng(12)
    block = density.BOUND_BLOCK
    m = rng.normal(0.0, 3.0, shape).astype(np.float32)
    m[m < -2.0] = -0.0  # blocks whose largest is a negative zero: numpy's gives +0.0
    m.flat[rng.integers(0, m.size, 2)] = np.nan
    # the fine grid the coarse one covers: its last coarse cell partly filled
    fine = [n * factor - int(rng.integers(0, factor)) for n in shape]
    nb = (-(-fine[0] // block), -(-fine[1] // block))
    want = np.maximum(m, 0.0)
    for axis, n in enumerate(nb):
        first = block * np.arange(n)
        lo = np.minimum(first // factor, want.shape[axis] - 1)
        hi = np.minimum((first + block - 1) // factor, want.shape[axis] - 1)
        want = np.maximum(np.maximum.reduceat(want, lo, axis=axis), np.take(want, hi, axis=axis))
    got = map_filters.block_max(m, factor, block, nb)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))  # to the bit
    nothing_positive = np.full(shape, -1.0, np.float32)
    nothing_positive.flat[-1] = -0.0
    zeros = map_filters.block_max(nothing_positive, factor, block, nb)
    assert zeros.view(np.uint32).tolist() == np.zeros(nb, np.float32).view(np.uint32).tolist()


def _dense(cells: np.ndarray, sums: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The whole maps of the compiled loop's sums at the cells reached (0 elsewhere)."""
    out = np.zeros((sums.shape[0], shape[0] * shape[1]), sums.dtype)
    out[:, cells] = sums
    return out.reshape(sums.shape[0], *shape)


def _histograms(x: np.ndarray, y: np.ndarray, bx: np.ndarray, by: np.ndarray, w: np.ndarray,
                block: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The compiled loop's histograms of w and w^2 on the uniform edges bx, by (float32, as the
    maps take them) and its block sums of the positive w (None without ``block``)."""
    shape = (bx.size - 1, by.size - 1)
    cells, sums, sky, blocks = class_histograms(
        x, y, np.arange(x.size), bx[0], bx[1] - bx[0], by[0], by[1] - by[0], *shape, w, w,
        np.empty(0), 0.0, block, cell_slots(shape[0] * shape[1]))
    assert sums.dtype == np.float32 and sky.size == 0  # no sky weights: no sky maps
    nb = (-(-shape[0] // max(block, 1)), -(-shape[1] // max(block, 1)))
    h, h2 = _dense(cells, sums, shape)
    return h, h2, blocks[0].reshape(nb) if block else None


def test_class_histograms_are_the_bincounts_of_the_stars_inside() -> None:
    """The compiled loop's histograms match numpy's histogram2d and drop the stars outside the
    grid (a NaN star too), and they are, to the bit, what the numpy expressions it replaced gave:
    the cells as floor((x - x0) / dx), bincounts of the stars inside in their order, a^2 and the
    block sums of the positive weights; the sky's a = weight (sky_w - fbar) for stars reached
    through their indices."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 2, 5000), rng.normal(1, 3, 5000)  # many outside the edges
    w = rng.random(5000)
    bx, by = -3 + 0.25 * np.arange(25), -2 + 0.5 * np.arange(13)
    for weights in (w, np.ones_like(w)):
        h, h2, _ = _histograms(x, y, bx, by, weights)
        np.testing.assert_allclose(h, np.histogram2d(x, y, bins=(bx, by), weights=weights)[0],
                                   rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(
            h2, np.histogram2d(x, y, bins=(bx, by), weights=weights**2)[0], rtol=1e-6, atol=1e-4)
    assert _histograms(x, y, bx, by, np.ones_like(w))[0].sum() < 5000  # dropped, not clipped
    x[7] = np.nan
    ix, iy = np.floor((x - bx[0]) / 0.25), np.floor((y - by[0]) / 0.5)
    inside = np.flatnonzero((ix >= 0) & (ix < 24) & (iy >= 0) & (iy < 12))
    cell = ix[inside].astype(np.int64) * 12 + iy[inside].astype(np.int64)
    block = (ix[inside].astype(np.int64) // 4) * 3 + iy[inside].astype(np.int64) // 4

    def bincount(flat: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
        return np.bincount(flat, weights[inside], minlength=n)

    signed = w * w - 0.3
    h, h2, positive = _histograms(x, y, bx, by, signed, 4)
    np.testing.assert_array_equal(h, bincount(cell, signed, 288).reshape(24, 12)
                                  .astype(np.float32))
    np.testing.assert_array_equal(h2, bincount(cell, signed * signed, 288).reshape(24, 12)
                                  .astype(np.float32))
    np.testing.assert_array_equal(positive, bincount(block, np.maximum(signed, 0.0), 18)
                                  .reshape(6, 3))
    # the sky's weights, of stars given by their indices into the field's arrays, in any order
    at = rng.permutation(5000)[:3000].astype(np.int32)
    sky_w = rng.random(5000)
    slots = cell_slots(288)
    cells, pm_sums, sums, blocks = class_histograms(x, y, at, bx[0], 0.25, by[0], 0.5, 24, 12,
                                                    w[at], np.empty(0), sky_w, 0.4, 4, slots)
    maps = _dense(cells, sums, (24, 12)).reshape(2, -1)
    a = w[at] * (sky_w.take(at) - 0.4)
    fx, fy = np.floor((x[at] - bx[0]) / 0.25), np.floor((y[at] - by[0]) / 0.5)
    kept = np.flatnonzero((fx >= 0) & (fx < 24) & (fy >= 0) & (fy < 12))
    cell = fx[kept].astype(np.int64) * 12 + fy[kept].astype(np.int64)
    block = (fx[kept].astype(np.int64) // 4) * 3 + fy[kept].astype(np.int64) // 4
    assert pm_sums.size == 0 and not blocks[0].any()  # no pm weights
    # the cells reached, each once, in the order their first star reaches them
    _, first = np.unique(cell, return_index=True)
    np.testing.assert_array_equal(cells, cell[np.sort(first)])
    # each cell summed in double in the stars' order, then rounded: the bincount, cast
    np.testing.assert_array_equal(
        maps[0], np.bincount(cell, a[kept], minlength=288).astype(np.float32))
    np.testing.assert_array_equal(
        maps[1], np.bincount(cell, (a * a)[kept], minlength=288).astype(np.float32))
    np.testing.assert_array_equal(
        blocks[1], np.bincount(block, np.maximum(a, 0.0)[kept], minlength=18))
    assert (slots == -1).all()  # the workspace is left as it was found
    with pytest.raises(ValueError, match="a weight per star"):  # numba checks no index
        class_histograms(x, y, at, bx[0], 0.25, by[0], 0.5, 24, 12, w[:10], np.empty(0), sky_w,
                         0.4, 4, slots)
    with pytest.raises(ValueError, match="a slot per cell"):
        class_histograms(x, y, at, bx[0], 0.25, by[0], 0.5, 24, 12, w[at], np.empty(0), sky_w,
                         0.4, 4, slots[:100])


def test_prefix_significance_adds_coarse_classes_block_by_block() -> None:
    """A coarse class's cells are repeated onto the fine cells they cover, on the whole grid and
    on a region cut out of it; a fine class's maps on a region are the whole grid's there, bit
    for bit (its apertures made over the region and a margin, its box filters over the grid)."""
    rng = np.random.default_rng(4)
    nx, ny, bc = 43, 37, 21
    shape, whole_grid = (nx, ny), (slice(0, nx), slice(0, ny))
    h = rng.poisson(0.3, shape).astype(np.float32)
    h2 = (h * rng.random(shape)).astype(np.float32)
    # a coarse sky class: its excess, and its histogram of squared weights
    coarse_ex, coarse_h2 = rng.normal(size=(15, 13)), rng.random((15, 13))
    coarse_var = density._aperture_variance(coarse_h2.astype(np.float32)).astype(float)
    fine = density._part("sky", 1, density._Cells.of_maps(h, h2), bc, None)
    parts = [density._fine_rows(fine, (0, nx), bc),
             density._Part("sky", 3, coarse_ex.astype(np.float32),
                           coarse_h2.astype(np.float32))]
    fine_ex = density._aperture(h).astype(float)
    fine_var = density._aperture_variance(h2).astype(float)
    first = fine_ex / np.sqrt(fine_var + 1)
    up = np.kron(coarse_ex, np.ones((3, 3)))[:nx, :ny]
    up_var = np.kron(coarse_var, np.ones((3, 3)))[:nx, :ny]
    second = (fine_ex + up) / np.sqrt(fine_var + up_var + 1)
    whole = density._prefix_significance(parts, whole_grid, shape)
    np.testing.assert_allclose(whole, np.maximum(first, second), rtol=1e-5, atol=1e-6)
    region = (slice(13, 29), slice(4, 36))  # starts inside a coarse cell; within the margin
    np.testing.assert_array_equal(density._prefix_significance(parts, region, shape),
                                  whole[region])
    for kind in ("pm", "sky"):  # a fine class alone
        part = density._part(kind, 1, density._Cells.of_maps(h, h2), bc, None)
        # made on the rows a region's filters read, and on all rows
        at_region = density._fine_rows(part, (13, 29), bc)
        at_whole = density._fine_rows(part, (0, nx), bc)
        if kind == "pm":
            assert at_region.background.shape == (16, ny)
        else:
            assert at_region.first.shape == (16 + 2 * density._MARGIN, ny)
        np.testing.assert_array_equal(
            density._prefix_significance([at_region], region, shape),
            density._prefix_significance([at_whole], whole_grid, shape)[region])
    # a coarse sky class's variance made on a crop around the region's coarse cells
    sky_coarse = density._part("sky", 3, density._Cells.of_maps(
        coarse_ex.astype(np.float32), coarse_h2.astype(np.float32)), bc, None)
    np.testing.assert_array_equal(
        density._prefix_significance([sky_coarse], region, shape),
        density._prefix_significance([sky_coarse], whole_grid, shape)[region])


def test_a_coarse_sky_class_variance_on_a_crop_is_the_whole_grids() -> None:
    """A coarse sky class's variance is made on a crop of its grid around a region's coarse cells
    (much smaller than the grid here): the region's maps are the whole grid's, to the bit."""
    rng = np.random.default_rng(6)
    nx, ny, f = 150, 121, 3
    coarse = (-(-nx // f), -(-ny // f))
    ex = rng.normal(size=coarse).astype(np.float32)
    h2 = (rng.poisson(0.5, coarse) * rng.random(coarse)).astype(np.float32)
    part = density._part("sky", f, density._Cells.of_maps(ex, h2), 21, None)
    whole = density._part_maps(part, (slice(0, nx), slice(0, ny)), (nx, ny))
    for region in ((slice(70, 83), slice(61, 64)), (slice(0, 5), slice(110, 121))):
        for cut, full in zip(density._part_maps(part, region, (nx, ny)), whole, strict=True):
            np.testing.assert_array_equal(cut, full[region])


def test_the_prefix_step_is_numpys_float32_passes_bit_for_bit() -> None:
    """map_filters.prefix_step adds a class to a region's prefix sums and keeps the best
    significance as numpy's float32 passes did (+=, np.add(var_sum, 1.0), np.sqrt, np.divide,
    np.maximum): to the bit, with NaN, infinities, negative variances and zeros of either sign,
    for fine classes (factor 1) and coarse ones read at an offset into their own cells."""
    from ocdec.methods.default import map_filters

    rng = np.random.default_rng(5)
    nx, ny = 37, 29
    ex_sum = (rng.normal(0, 3, (nx, ny))).astype(np.float32)
    var_sum = np.abs(rng.normal(0, 9, (nx, ny))).astype(np.float32)
    best = rng.normal(0, 4, (nx, ny)).astype(np.float32)
    best.flat[:5] = [-np.inf, np.nan, 0.0, -0.0, np.inf]
    for dtype in (np.float32, np.float64):
        for factor, (oi, oj) in ((1, (0, 0)), (1, (3, 5)), (3, (2, 1)), (6, (11, 0))):
            shape = ((nx - 1 + oi) // factor + 1, (ny - 1 + oj) // factor + 1)
            ex = rng.normal(0, 5, shape).astype(dtype)
            var = rng.normal(2, 4, shape).astype(dtype)  # some below -1: NaN under the root
            ex.flat[:4] = [np.nan, np.inf, -0.0, 0.0]
            var.flat[4:7] = [np.inf, -1.0, np.nan]
            rows = (np.arange(nx) + oi) // factor
            cols = (np.arange(ny) + oj) // factor
            want_ex, want_var, want_best = ex_sum.copy(), var_sum.copy(), best.copy()
            tmp = np.empty((nx, ny), np.float32)
            with np.errstate(all="ignore"):
                want_ex += ex[np.ix_(rows, cols)]
                want_var += var[np.ix_(rows, cols)]
                np.add(want_var, 1.0, out=tmp)
                np.sqrt(tmp, out=tmp)
                np.divide(want_ex, tmp, out=tmp)
                np.maximum(want_best, tmp, out=want_best)
            map_filters.prefix_step(ex, oi, oj, var, oi, oj, factor, ex_sum, var_sum, best)
            for got, want in ((ex_sum, want_ex), (var_sum, want_var), (best, want_best)):
                np.testing.assert_array_equal(got.view(np.uint32)[~np.isnan(want)],
                                              want.view(np.uint32)[~np.isnan(want)])
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (40, 17), (230, 190)])
def test_the_filters_are_scipys_bit_for_bit(shape) -> None:
    """The peak search's own Gaussian and box filters (compiled, ocdec.methods.default.
    map_filters) give what scipy's gaussian_filter and uniform_filter give, to the bit, on the
    whole map and on a region's cells or rows; and a proper-motion class's local field on a band
    of rows is the whole grid's there."""
    from scipy import ndimage

    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        h = (rng.poisson(0.4, shape) * rng.normal(1e3, 3e2, shape)).astype(dtype)
        h.flat[rng.integers(0, h.size, 3)] *= -1.0  # negative excesses, and -0.0 among zeros
        for sigma in (density._SIGMA_CELLS, density._SIGMA_CELLS / math.sqrt(2), 1.0):
            want = ndimage.gaussian_filter(h, sigma, mode="constant")
            got = density._gaussian(h, sigma)
            assert got.dtype == want.dtype
            # to the bit: the sign of a zero too
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
            # a region's cells alone: at the map's edges, inside, one cell, none
            nx, ny = shape
            for region in ((slice(0, nx), slice(0, ny)), (slice(nx // 3, nx // 2 + 1),
                           slice(ny // 4, ny)), (slice(nx - 1, nx), slice(0, 1)),
                           (slice(0, 0), slice(0, ny))):
                cut = density._gaussian(h, sigma, region)
                np.testing.assert_array_equal(cut.view(np.uint8), want[region].view(np.uint8))
        for size in (21, 20, 5, 2, 1):
            box = density._box(h, size)
            want = ndimage.uniform_filter(h, size, mode="constant")
            np.testing.assert_array_equal(box.view(np.uint8), want.view(np.uint8))
            assert not np.shares_memory(box, h)
            for rows in ((0, shape[0]), (shape[0] // 3, shape[0] // 2 + 1),
                         (shape[0] - 1, shape[0]), (1, 1)):
                band = density._box(h, size, rows)
                np.testing.assert_array_equal(band.view(np.uint8),
                                              want[rows[0]:rows[1]].view(np.uint8))
    h = rng.poisson(0.4, shape).astype(np.float32)
    h2 = (h * rng.random(shape)).astype(np.float32)
    for cells in (21, 20, 1):  # odd and even boxes (scipy centres an even one off by one), none
        bg, var = density._pm_background(h, h2, cells)
        part = density._part("pm", 1, density._Cells.of_maps(h, h2), cells, None)
        for rows in ((0, shape[0]), (shape[0] // 3, shape[0] // 2 + 1),
                     (shape[0] - 1, shape[0])):
            band = density._fine_rows(part, rows, cells)
            np.testing.assert_array_equal(band.background, bg[rows[0]:rows[1]])
            np.testing.assert_array_equal(band.second, var[rows[0]:rows[1]])


def test_the_warm_load_compiles_every_filter_the_search_calls() -> None:
    """map_filters.load(), which the warm interpreter runs before it forks its jobs, compiles
    (or loads) each variant the search then calls: float32 and float64 maps, and the Gaussian
    with the search's read-only kernels, which numba compiles apart from writable ones; the
    bound's block maxima and the local maxima (of one map, and of two) on float32 maps, and a
    fine class's maps made from the cells its stars reach. Run in
    a fresh interpreter, so that no earlier test has compiled them already."""
    import subprocess
    import sys

    code = """
import numpy as np
from ocdec.methods.default import density, map_filters, peaks
kernels = (map_filters._gaussian_cells, map_filters._box_rows, map_filters._block_max,
           map_filters._maxima, map_filters._cells_to_rows)
map_filters.load()
loaded = [set(f.overloads) for f in kernels]
for dtype in (np.float32, np.float64):
    h = np.ones((12, 9), dtype)
    density._aperture(h, (slice(2, 5), slice(0, 9)))
    density._aperture_variance(h)
    density._box(h, 5, (1, 4))
coarse = np.ones((4, 3), np.float32) - density._aperture(np.ones((4, 3), np.float32))
density._bound([density._Part("pm", 3, coarse, coarse)], (2, 2))
best = np.zeros((12, 9), np.float32)
peaks._local_maxima(best, 3.0, other=best)
peaks._local_maxima(best, 3.0)
cells = density._Cells(np.array([4, 30]), np.ones((2, 2), np.float32), (12, 9))
cells.rows(0, 12), cells.rows(2, 5)
used = [set(f.overloads) for f in kernels]
print(used == loaded, *(len(u) for u in used))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "2", "2", "1", "1", "1"], out


@pytest.mark.parametrize("kind", ["pm", "sky"])
def test_the_bound_holds_every_positive_excess_of_a_block(kind) -> None:
    """Over each block the bound is at least every cell's positive excess: for a lone star of
    weight 1 (on the sky, tight to the aperture's largest weight: a smaller constant or a shorter
    reach would fail), for a crowd and for a coarse class."""
    rng = np.random.default_rng(8)
    nx, ny, bc, block = 61, 45, 21, density.BOUND_BLOCK
    nb = (-(-nx // block), -(-ny // block))

    def block_max(m: np.ndarray) -> np.ndarray:
        padded = np.zeros((nb[0] * block, nb[1] * block))
        padded[:nx, :ny] = m
        return padded.reshape(nb[0], block, nb[1], block).max(axis=(1, 3))

    edges = np.arange(nx + 1.0), np.arange(ny + 1.0)
    lone = (np.array([30.5]), np.array([20.5]), np.array([1.0]))
    crowd = (rng.uniform(0, nx, 3000), rng.normal(22, 6, 3000),
             rng.random(3000) * (1 if kind == "pm" else rng.choice([-1, 1], 3000)))
    for x, y, w in (lone, crowd):
        h, h2, positive = _histograms(x, y, *edges, w, block)
        part = density._part(kind, 1, density._Cells.of_maps(h, h2), bc, positive)
        maps = density._fine_rows(part, (0, nx), bc)
        ex, _ = density._part_maps(maps, (slice(0, nx), slice(0, ny)), (nx, ny))
        exact = block_max(np.maximum(ex, 0.0))
        bound = density._bound([part], nb)
        assert np.all(bound >= exact)
        if x.size == 1 and kind == "sky":  # the proper-motion excess is less its field's mean
            assert bound.max() <= 1.02 * exact.max()
    coarse_edges = (3.0 * np.arange(-(-nx // 3) + 1), 3.0 * np.arange(-(-ny // 3) + 1))
    h, h2, _ = _histograms(*crowd[:2], *coarse_edges, crowd[2])
    coarse = density._part(kind, 3, density._Cells.of_maps(h, h2), bc, None)
    ex, _ = density._part_maps(coarse, (slice(0, nx), slice(0, ny)), (nx, ny))
    assert np.all(density._bound([coarse], nb) >= block_max(np.maximum(ex, 0.0)))


def test_maps_are_made_only_where_the_threshold_can_be_passed() -> None:
    """With a threshold the maps are made only in the regions where a significance could pass
    it: there they are the whole grid's, every cell of the whole grid above the threshold lies
    in them, the peaks are the same, and most of the grid is left out."""
    from ocdec.methods.default.peaks import _map_peaks, _sky_weights

    stars = synthetic_field(n_field=20000, n_cluster=200, seed=12)
    ast = Astrometry.from_stars(stars)
    priors = ClusterPriors(ra=120.0, dec=-30.0, radius_deg=1.5)
    s = PeakSettings()
    sky_w = _sky_weights(ast, priors)
    assert sky_w is not None
    computed = cells = above = rows = grid_rows = 0
    for slab in search_plan(ast, priors, s):
        grid_rows += slab.grid.nx
        args = (ast.pmra, ast.pmdec, slab.stars, slab.grid, s.background_cells)
        whole = density.significance_maps(*args, sky_w=sky_w)
        cut = density.significance_maps(*args, sky_w=sky_w, threshold=s.min_significance)
        for full, part in zip(whole[:2], cut[:2], strict=True):
            inside = part != 0
            np.testing.assert_array_equal(part[inside], full[inside])  # to the bit
            assert np.all(full[~inside] <= s.min_significance)  # nothing lost outside
            computed += int(inside.sum())
            cells += full.size
            above += int((full > s.min_significance).sum())
        want = [p.as_dict() for p in _map_peaks(whole, slab.parallax, slab.half_width,
                                                slab.scale, s)]
        np.testing.assert_equal(
            [p.as_dict() for p in _map_peaks(cut, slab.parallax, slab.half_width, slab.scale, s)],
            want)
        # the search takes them on the rows of the regions alone: the same peaks
        *band, row0 = density.significance_rows(*args, sky_w=sky_w,
                                                threshold=s.min_significance)
        rows += band[0].shape[0]
        np.testing.assert_equal([p.as_dict() for p in _map_peaks(
            tuple(band), slab.parallax, slab.half_width, slab.scale, s, row0)], want)
        np.testing.assert_array_equal(band[0], cut[0][row0:row0 + band[0].shape[0]])
    assert above > 0  # the cluster and the field's humps pass the threshold somewhere
    assert computed < 0.5 * cells
    assert rows < 0.8 * grid_rows  # the rows without a region left out


def test_a_fine_class_on_a_band_of_rows_is_the_whole_grids_there() -> None:
    """A fine class's maps made from the cells its stars reach on the rows a region's filters
    read (:func:`density._fine_rows`) are the whole grid's there, bit for bit: the apertures, and
    a proper-motion class's local field, whose running sums start at a row below which no star
    lies (as the whole grid's are exactly 0 there), above the band or at the grid's first row."""
    rng = np.random.default_rng(13)
    nx, ny, bc = 120, 40, 21
    shape, whole_grid = (nx, ny), (slice(0, nx), slice(0, ny))
    for first_row in (0, 4, 40):  # the stars' first row
        x = rng.uniform(first_row, 100, 3000)
        y = rng.normal(20, 8, 3000)
        w = rng.uniform(0.02, 1.0, 3000)  # rounding in every sum
        h, h2, _ = _histograms(x, y, np.arange(nx + 1.0), np.arange(ny + 1.0), w)
        assert h[first_row].any() and not h[:first_row].any()
        flat = np.flatnonzero(h.ravel() != 0)
        order = rng.permutation(flat.size)  # any order of the cells reached
        cells = density._Cells(flat[order], np.stack([h.ravel(), h2.ravel()])[:, flat[order]],
                               shape)
        for kind in ("pm", "sky"):
            whole = density._fine_rows(
                density._part(kind, 1, density._Cells.of_maps(h, h2), bc, None), (0, nx), bc)
            for rows in ((70, 85), (45, 46), (0, 12), (110, 120), (20, 100)):
                band = density._fine_rows(density._part(kind, 1, cells, bc, None), rows, bc)
                lo = max(rows[0] - density._MARGIN, 0)
                if kind == "pm":  # the box's running sums start 11 rows before the first star
                    lo = min(lo, max(first_row - 11, 0))
                assert band.band0 == lo
                region = (slice(*rows), slice(3, 37))
                for got, want in zip(density._part_maps(band, region, shape),
                                     density._part_maps(whole, region, shape), strict=True):
                    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
                np.testing.assert_array_equal(
                    density._prefix_significance([band], region, shape),
                    density._prefix_significance([whole], whole_grid, shape)[region])
    # the rows of the cells reached, in any band, are the whole maps' rows
    got = cells.rows(33, 77)
    np.testing.assert_array_equal(got[0], h[33:77])
    np.testing.assert_array_equal(got[1], h2[33:77])


def test_a_shared_plan_gives_the_same_peaks() -> None:
    stars = synthetic_field(n_field=6000, n_cluster=150, seed=5)
    ast = Astrometry.from_stars(stars)
    priors = ClusterPriors()
    plain = find_peaks(ast, priors)
    planned = find_peaks(ast, priors, plan=search_plan(ast, priors))
    assert plain and [p.as_dict() for p in plain] == [p.as_dict() for p in planned]


def test_resamples_do_not_depend_on_the_threads(monkeypatch) -> None:
    stars = synthetic_field(n_field=4000, n_cluster=120, seed=6)
    ast = Astrometry.from_stars(stars)
    runs = []
    for threads in ("1", "3"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        # a catalogue parallax below the first search's floor: both search plans are made (in
        # threads, slab by slab); one inside the field's parallaxes would leave the bracket empty
        priors = ClusterPriors(parallax=0.1)
        assert search_plans(ast, priors, PeakSettings())[1]
        peaks, maxima = search_with_nulls(ast, priors, PeakSettings(),
                                          GroupSettings(n_resamples=3))
        runs.append(([p.as_dict() for p in peaks], maxima.tolist()))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) == 3 and max(runs[0][1]) < runs[0][0][0]["significance"] * 3


@pytest.mark.parametrize(("value", "expected"), [("4", 4), ("1", 1)])
def test_available_threads_follows_omp_num_threads(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert available_threads() == expected


def test_available_threads_without_the_variable_is_the_cpu_affinity(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert available_threads() == 3


def test_duplicates_are_judged_by_the_map_resolution_not_the_member_spread() -> None:
    from ocdec.methods.default.peaks import Peak, _suppress_duplicates

    # a deep field: members' errors make the spread 1.5 mas/yr; the map resolves 0.4 mas/yr
    hump = Peak(pmra=-2.6, pmdec=-4.7, parallax=1.24, pm_scale=1.5, plx_half_width=0.15,
                significance=37.0, resolution=0.4)
    cluster = Peak(pmra=-1.7, pmdec=-6.5, parallax=1.29, pm_scale=1.5, plx_half_width=0.15,
                   significance=14.0, resolution=0.4)
    echo = Peak(pmra=-1.8, pmdec=-6.4, parallax=1.11, pm_scale=1.5, plx_half_width=0.13,
                significance=12.0, resolution=0.4)
    kept = _suppress_duplicates([echo, hump, cluster])
    assert kept == [hump, cluster]  # the cluster's echo in the next slab goes, the cluster stays
    # peaks without a map resolution fall back to the member spread, which merges them
    old = [Peak(**{**p.__dict__, "resolution": float("nan")}) for p in (hump, cluster)]
    assert _suppress_duplicates(old) == [old[0]]


def test_resamples_are_searched_on_the_fields_own_grid(monkeypatch) -> None:
    from ocdec.methods.default import peaks

    stars = synthetic_field(n_field=4000, n_cluster=120, seed=8)
    ast = Astrometry.from_stars(stars)
    seen = []
    real = peaks.significance_rows

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append((args[3], out[2][0], out[3][0], out[4]))  # args[3]: the grid
        return out

    monkeypatch.setattr(peaks, "significance_rows", recording)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    search_with_nulls(ast, ClusterPriors(), PeakSettings(), GroupSettings(n_resamples=2))
    grids = {id(g) for g, *_ in seen}
    assert len(seen) == 3 * len(grids)  # each slab's grid served the field and both resamples
    for grid, x0, y0, cell in seen:
        assert (x0, y0, cell) == (grid.x0, grid.y0, grid.cell)


@pytest.mark.parametrize("parallax", [0.05, 1.0, 8.0])
def test_the_bracket_searches_only_where_the_first_search_does_not_reach(parallax) -> None:
    """Distant (below the 0.15 mas floor), within the field's parallaxes, and nearby: 30 stars
    at 8 mas among 40,000, above the field's 99.9 % quantile, where only the bracket reaches."""
    stars = synthetic_field(n_field=40_000, n_cluster=30, seed=9, second=(20.0, -10.0, 8.0))
    ast = Astrometry.from_stars(stars)
    s = PeakSettings()
    every, bracket = search_plans(ast, ClusterPriors(parallax=parallax), s)
    # the first search is the catalogue-free one, whatever the catalogue's parallax
    assert [p.parallax for p in every] == [p.parallax for p in search_plan(ast, ClusterPriors(),
                                                                           s)]
    centres = sorted({p.parallax for p in every})
    half_step = np.sqrt(s.slab_ratio)
    full = sorted({p.parallax for p in search_plan(ast, ClusterPriors(parallax=parallax), s)})
    kept = sorted({p.parallax for p in bracket})
    # the bracket keeps exactly its own slabs that lie beyond the first search's, half a step out
    assert kept == [c for c in full if c < centres[0] / half_step or c > centres[-1] * half_step]
    if parallax == 1.0:  # inside the field's parallaxes: nothing left to add
        assert kept == []
    else:  # a distant (below the 0.15 mas floor) or a nearby cluster: the bracket reaches it
        assert kept and min(abs(np.log(np.array(kept) / parallax))) < np.log(s.slab_ratio)
    assert search_plans(ast, ClusterPriors(), s)[1] is None


def test_slab_stars_are_every_weight_above_the_floor_to_the_bit(monkeypatch) -> None:
    """Only the stars near the slab get weights made, and they are the ones (and the values)
    that weighing every star gives, stars on the shape's edge, NaNs and huge errors included."""
    rng = np.random.default_rng(11)
    n = 200_000
    plx = rng.normal(0.8, 0.7, n)
    e_plx = rng.gamma(1.5, 0.15, n)
    e_plx[:50] = np.inf
    plx[50:60] = np.nan
    field = density.FieldParallax(np.nan_to_num(plx), np.where(np.isfinite(e_plx), e_plx, 9.9))
    c, half, floor = 0.9, 0.108, 0.02
    # stars on the edge: the likelihood's shape within a few units in the last place of the floor
    var = e_plx[60:160] ** 2 + half**2
    plx[60:160] = c + np.sqrt(2 * math.log(1 / floor) * var) * (1 + rng.normal(0, 1e-15, 100))
    dens = field.density.copy()
    dens[60:160] = 1e-6  # a sparse field: the ratio saturates and the weight is nearly the shape
    every = density.slab_weights(plx, e_plx, dens, c, half)
    want = np.flatnonzero(every > floor)
    idx, w = density.slab_stars(plx, e_plx, dens, c, half, floor)
    np.testing.assert_array_equal(idx, want)
    assert w.tobytes() == every[want].tobytes()
    assert 0 < idx.size < n
    weighed: list[int] = []
    plain = density.slab_weights
    monkeypatch.setattr(density, "slab_weights",
                        lambda p, *a, **k: weighed.append(p.size) or plain(p, *a, **k))
    idx2, w2 = density.slab_stars(plx, e_plx, dens, c, half, floor, e_plx**2)
    assert idx.size <= weighed[0] < 0.8 * n  # the far stars' weights were never made
    np.testing.assert_array_equal(idx2, idx)
    assert w2.tobytes() == w.tobytes()


def test_the_most_precise_stars_are_in_the_first_error_class() -> None:
    """The stars below the 2 % quantile of member spread belong to class 0, not to none."""
    e_pm = np.concatenate([np.full(50, 0.01), np.geomspace(0.5, 3.0, 5000)])
    classes = density.error_classes(e_pm, intrinsic=0.05)
    in_a_class = np.concatenate(classes.members)
    assert np.isin(np.arange(50), classes.members[0]).all()
    # every star within the classes' span is counted once
    assert np.array_equal(np.sort(in_a_class), classes.every)


def test_error_classes_are_numpys_to_the_last_star() -> None:
    """The compiled classing (squares against powers of 4, numpy where they cannot tell) gives
    the classes numpy's floor(log2(hypot / s0)) gave, for stars one unit in the last place
    either side of every class edge and on it, and for NaN and infinite errors."""
    from ocdec.methods.default.star_loops import spread_classes

    rng = np.random.default_rng(6)
    n, intrinsic = 120_000, 0.07
    e_pm = rng.uniform(0.01, 3.0, n)
    # s0 is the 2 % quantile of every 2nd star's spread: the odd stars can sit on its edges
    s0 = float(np.quantile(np.hypot(intrinsic, e_pm[::2]), 0.02))
    odd = np.arange(1, n, 2)[:6000]
    k = rng.integers(1, 8, odd.size)
    edge = np.sqrt((s0 * 2.0**k) ** 2 - intrinsic**2)
    e_pm[odd] = np.nextafter(edge, rng.choice([-np.inf, np.inf], odd.size))
    e_pm[odd[::3]] = edge[::3]
    e_pm[odd[:4]] = [np.nan, np.inf, 0.0, 1e-300]
    classes = density.error_classes(e_pm, intrinsic, max_classes=6)
    assert classes.s0 == s0
    with np.errstate(invalid="ignore"):
        cls = np.maximum(np.floor(np.log2(np.hypot(intrinsic, e_pm) / s0)).astype(int), 0)
    np.testing.assert_array_equal(classes.every, np.flatnonzero(cls < 6))
    for j in range(6):
        np.testing.assert_array_equal(classes.members[j], np.flatnonzero(cls == j))
    unsure = spread_classes(e_pm, intrinsic, s0, 6) < 0
    assert unsure[odd].sum() > 1000 and not unsure[::2].any()


def test_a_slabs_class_stars_index_the_field_and_give_the_slabs_maps() -> None:
    """A slab's stars by class, indexed among the field's stars (as the search shares them
    between a field and its resamples), give the maps, to the bit, that the slab's own arrays
    give; their proper-motion weights are the class weights times pm_ok, the same array where
    every star of a class counts."""
    rng = np.random.default_rng(3)
    n = 30_000
    pmra, pmdec = rng.normal(0, 5, n), rng.normal(0, 5, n)
    pmra[:300], pmdec[:300] = rng.normal(2, 0.1, 300), rng.normal(-1, 0.1, 300)  # a clump
    e_pm = np.concatenate([np.full(300, 0.05), rng.uniform(0.02, 2.0, n - 300)])
    sky_w = rng.uniform(0, 1, n)
    sky_w[:300] = 0.9
    idx = np.flatnonzero(rng.uniform(size=n) < 0.7)
    idx = np.union1d(idx, np.arange(300))
    w = rng.uniform(0.01, 1.0, idx.size)
    pm_ok = (e_pm[idx] < 1.0).astype(float)
    classes = density.error_classes(e_pm[idx], intrinsic=0.1)
    grid = density.pm_grid(pmra[idx], pmdec[idx], classes, 15)
    local = density.class_stars(w, classes, grid, 0.2, pm_ok)
    field = density.class_stars(w, classes, grid, 0.2, pm_ok, idx)
    counted = [k for k, wp in enumerate(field.pm_weight) if wp is not None]
    assert counted and field.every_at.dtype == np.int32
    for k in counted:
        sel = classes.members[k]
        np.testing.assert_array_equal(field.at[k], idx[sel])
        np.testing.assert_array_equal(field.pm_weight[k], w[sel] * pm_ok[sel])
        assert (field.pm_weight[k] is field.weight[k]) == bool(pm_ok[sel].min() == 1.0)
    assert any(field.pm_weight[k] is field.weight[k] for k in counted)  # the precise class
    # indices past int32's range stay int64 (a field of more than 2^31 stars)
    far = density.class_stars(w, classes, grid, 0.2, pm_ok, idx + 2**31)
    assert far.every_at.dtype == np.int64 and far.every_at.min() >= 2**31
    for threshold in (None, 4.0):
        a = density.significance_maps(pmra[idx], pmdec[idx], local, grid, 15, sky_w[idx],
                                      threshold)
        b = density.significance_maps(pmra, pmdec, field, grid, 15, sky_w, threshold)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert a[0].max() > 4.0 and a[1].max() > 4.0  # the clump shows in both contrasts


def test_a_nearby_cluster_in_a_deep_field_is_found() -> None:
    """A deep field's faint stars set the error classes' floor above the bright stars' errors:
    the cluster's bright members, and every star whose parallax places it in the slab, are the
    most precise. They once fell below the first class and out of every map, and the search
    found nothing (the simulated IC 4756 and NGC 6475 of the thesis catalogue)."""
    stars = synthetic_field(n_field=1500, n_cluster=150, seed=11, cluster=(1.0, -5.0, 2.0),
                            cluster_g=(12.0, 16.0), n_faint=60_000)
    ast = Astrometry.from_stars(stars)
    priors = ClusterPriors(ra=120.0, dec=-30.0, radius_deg=1.0, pmra=1.0, pmdec=-5.0,
                           parallax=2.0)
    peaks = find_peaks(ast, priors)
    near = [p for p in peaks if math.hypot(p.pmra - 1.0, p.pmdec + 5.0) < 0.5
            and abs(p.parallax / 2.0 - 1.0) < 0.25]
    assert near and near[0].significance > 10.0, [p.as_dict() for p in peaks[:3]]


def _whole_plan_search(ast: Astrometry, fields: list[Astrometry], priors: ClusterPriors,
                       s: PeakSettings) -> list[list[dict]]:
    """Each field's peaks as the search made them before it went slab by slab: both searches'
    plans made whole, then each field searched over them."""
    every, bracket = search_plans(ast, priors, s)
    out = []
    for field in fields:
        peaks = find_peaks(field, priors.centre_only(), s, every)
        if bracket is not None:
            peaks = _suppress_duplicates(find_peaks(field, priors, s, bracket) + peaks)
        out.append([p.as_dict() for p in peaks])
    return out


@pytest.mark.parametrize("parallax", [None, 0.1])
def test_searching_slab_by_slab_finds_what_the_whole_plans_find(parallax) -> None:
    """A field and its resamples searched a few slabs at a time, in one thread or in three: the
    same peaks, in the same order, as over the whole plans (with a catalogue parallax below the
    floor, the bracket search too)."""
    stars = synthetic_field(n_field=5000, n_cluster=120, seed=11)
    ast = Astrometry.from_stars(stars)
    fields = [ast, *_resamples(ast, PeakSettings(), GroupSettings(n_resamples=2))[0]]
    priors = ClusterPriors(parallax=parallax)
    s = PeakSettings()
    expected = _whole_plan_search(ast, fields, priors, s)
    assert expected[0]
    if parallax is not None:  # below the floor: the bracket has slabs of its own
        assert search_plans(ast, priors, s)[1]
    for workers in (1, 3):
        with thread_map(workers) as tmap:
            found = search_fields(fields, priors, s, tmap)
        np.testing.assert_equal([[p.as_dict() for p in peaks] for peaks in found], expected)


def test_a_resamples_sky_weights_are_the_fields_permuted() -> None:
    """The resamples' sky weights taken from the field's through their permutations are the
    numbers computed from their own positions, bit for bit, and the search finds the same peaks
    with them (with the catalogue's centre, and about the field's own)."""
    from ocdec.methods.default.peaks import _fields_sky_weights, _sky_weights

    stars = synthetic_field(n_field=5000, n_cluster=120, seed=11)
    ast = Astrometry.from_stars(stars)
    nulls, perms = _resamples(ast, PeakSettings(), GroupSettings(n_resamples=2))
    for null, perm in zip(nulls, perms, strict=True):
        np.testing.assert_array_equal(null.ra, ast.ra[perm])
    fields, orders = [ast, *nulls], [None, *perms]
    for priors in (ClusterPriors(ra=float(np.median(ast.ra)), dec=float(np.median(ast.dec)),
                                 radius_deg=0.5, parallax=0.1), ClusterPriors()):
        own = [_sky_weights(f, priors) for f in fields]
        permuted = _fields_sky_weights(fields, priors, orders)
        if own[0] is None:
            assert permuted == own
            continue
        for a, b in zip(own, permuted, strict=True):
            np.testing.assert_array_equal(a, b)
        with thread_map(2) as tmap:
            plain = search_fields(fields, priors, PeakSettings(), tmap)
            ordered = search_fields(fields, priors, PeakSettings(), tmap, orders=orders)
        assert plain[1] and [[p.as_dict() for p in f] for f in plain] == \
            [[p.as_dict() for p in f] for f in ordered]


def test_scoring_measures_every_star_once_with_the_same_numbers() -> None:
    """Scoring reads each peak's separations from one pass over the stars (a resample's from the
    field's, permuted) and finds its centre without the separations: each peak's scores,
    concentrations and centres are the same, bit for bit, as measured peak by peak."""
    import pandas as pd

    from ocdec.methods.astrometry import sky_centre, sky_centre_and_r50
    from ocdec.methods.default.peaks import (
        _core_and_control,
        score_peaks,
        separation_from_centre,
    )
    from ocdec.methods.default.sky import angular_separation_deg

    stars = synthetic_field(n_field=5000, n_cluster=120, seed=11)
    ast = Astrometry.from_stars(stars)
    priors = ClusterPriors(ra=float(np.median(ast.ra)) + 0.1, dec=float(np.median(ast.dec)),
                           radius_deg=0.5)
    nulls, perms = _resamples(ast, PeakSettings(), GroupSettings(n_resamples=2))
    separation = separation_from_centre(ast, priors)
    assert separation is not None and separation_from_centre(ast, ClusterPriors()) is None
    e_pm = np.hypot(ast.e_pmra, ast.e_pmdec) / math.sqrt(2)
    for field, perm in ((ast, None), *zip(nulls, perms, strict=True)):
        peaks = find_peaks(field, priors)
        shared = separation if perm is None else separation[perm]
        scored = score_peaks(field, peaks, priors, separation=shared)
        assert scored and [p.as_dict() for p in scored] == \
            [p.as_dict() for p in score_peaks(field, peaks, priors)]
        for p in scored:
            core, control = _core_and_control(field, e_pm, p)
            if core.size < 5 or control.size < 5:
                assert math.isnan(p.concentration)
                continue
            with_r50 = sky_centre_and_r50(pd.DataFrame({"ra": field.ra[core],
                                                        "dec": field.dec[core]}))
            assert (p.ra, p.dec) == (with_r50["ra"], with_r50["dec"])
            r = [np.median(angular_separation_deg(field.ra[i], field.dec[i], priors.ra,
                                                  priors.dec)) for i in (core, control)]
            assert p.concentration == r[1] / max(r[0], 1e-6)
    assert all(math.isnan(x) for x in sky_centre(np.array([np.nan]), np.array([1.0])))


def test_a_peaks_core_and_control_are_the_masks_over_every_star() -> None:
    """Scoring measures proper motions only for the stars the peak's slab reaches: the same core
    and control ring as the masks over every star."""
    from ocdec.methods.default.peaks import _core_and_control

    stars = synthetic_field(n_field=5000, n_cluster=120, seed=11)
    ast = Astrometry.from_stars(stars)
    e_pm = np.hypot(ast.e_pmra, ast.e_pmdec) / math.sqrt(2)
    found = find_peaks(ast, ClusterPriors())
    assert found
    for p in found[:5]:
        in_slab = np.abs(ast.parallax - p.parallax) < np.hypot(p.plx_half_width, ast.e_plx)
        dpm = np.hypot(ast.pmra - p.pmra, ast.pmdec - p.pmdec)
        reach = np.hypot(p.pm_scale, e_pm)
        core, control = _core_and_control(ast, e_pm, p)
        np.testing.assert_array_equal(core, np.flatnonzero(in_slab & (dpm < 1.5 * reach)))
        np.testing.assert_array_equal(
            control, np.flatnonzero(in_slab & (dpm > 3 * reach) & (dpm < 6 * reach)))
        assert core.size > 0 and control.size > 0


def test_core_and_control_decide_the_last_bit_as_numpy() -> None:
    """Stars one unit in the last place either side of every boundary (the slab's edge, 1.5, 3
    and 6 member spreads) and on it, with NaN motions and errors, and at scales where squares
    underflow: the compiled loop, which compares squares where they tell, keeps the same stars
    as numpy's hypot expressions."""
    from ocdec.methods.default.star_loops import core_and_control

    rng = np.random.default_rng(4)
    for unit in (1.0, 1e-160, 1e-300):  # 1e-160: squares underflow; 1e-300: subnormal values
        half, scale = 0.07 * unit, 0.31 * unit
        e_plx, e_pm = unit * rng.uniform(0.01, 0.5, 4000), unit * rng.uniform(0.01, 2.0, 4000)
        e_pm[:3] = [0.0, np.nan, np.inf]
        edge = np.hypot(half, e_plx)
        reach = np.hypot(scale, e_pm)
        c = rng.choice([1.5, 3.0, 6.0], 4000)
        # the peak at 0: parallaxes on, just inside or just outside the slab's edge; motions
        # likewise for one of the radii (the products c * reach as numpy rounds them)
        parallax = np.where(rng.random(4000) < 0.5, 0.5 * edge,
                            np.nextafter(edge, rng.choice([-np.inf, np.inf], 4000)))
        pmra = np.nextafter(c * reach, rng.choice([-np.inf, 0.0, np.inf], 4000))
        pmdec = np.zeros(4000)
        pmdec[5] = np.nan
        core, control = core_and_control(parallax, e_plx, pmra, pmdec, e_pm, 0.0, half, 0.0,
                                         0.0, scale)
        in_slab = np.abs(parallax) < edge
        with np.errstate(invalid="ignore"):
            dpm = np.hypot(pmra, pmdec)
            np.testing.assert_array_equal(core, np.flatnonzero(in_slab & (dpm < 1.5 * reach)))
            np.testing.assert_array_equal(
                control, np.flatnonzero(in_slab & (dpm > 3 * reach) & (dpm < 6 * reach)))
        assert core.size > 300 and control.size > 300
    with pytest.raises(ValueError, match="one value per star"):
        core_and_control(parallax, e_plx, pmra, pmdec, e_pm[:3], 0.0, half, 0.0, 0.0, scale)
    # fields where every star is in the core, or in the ring: the index arrays grow to hold them
    rng = np.random.default_rng(5)
    x = rng.normal(size=10_000)
    core, control = core_and_control(x, np.abs(x), x, x, np.abs(x), 0.0, 1e3, 0.0, 0.0, 1e3)
    np.testing.assert_array_equal(core, np.arange(10_000))
    assert control.size == 0
    ones = np.ones(10_000)
    core, control = core_and_control(x, ones, 4.5 * ones, 0 * ones, ones, 0.0, 10.0, 0.0, 0.0,
                                     0.0)
    np.testing.assert_array_equal(control, np.arange(10_000))
    assert core.size == 0


def test_the_search_holds_only_a_few_slabs_plans_at_once(monkeypatch) -> None:
    """The plans of a whole search (most of the default method's memory) are never all alive:
    at most SLABS_AT_ONCE slabs' (two cell scales each) while their maps are made."""
    import weakref

    from ocdec.methods.default import peaks as peaks_module

    alive, most, made = [0], [0], [0]

    def dropped() -> None:
        alive[0] -= 1

    planner = peaks_module._SlabPlanner.__call__

    def counted(self, c: float) -> list:
        plans = planner(self, c)
        for plan in plans:
            weakref.finalize(plan, dropped)
        alive[0] += len(plans)
        made[0] += len(plans)
        most[0] = max(most[0], alive[0])
        return plans

    monkeypatch.setattr(peaks_module._SlabPlanner, "__call__", counted)
    stars = synthetic_field(n_field=5000, n_cluster=120, seed=11)
    ast = Astrometry.from_stars(stars)
    scales = len(PeakSettings().scale_factors)
    for workers in (1, 3):
        alive[0] = most[0] = made[0] = 0
        with thread_map(workers) as tmap:
            search_fields([ast, ast], ClusterPriors(parallax=0.1), PeakSettings(), tmap)
        assert made[0] > 3 * peaks_module.SLABS_AT_ONCE * scales
        assert most[0] <= peaks_module.SLABS_AT_ONCE * scales
        assert alive[0] == 0
