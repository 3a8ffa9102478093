"""The peak search's filters on its maps, compiled (numba), with scipy's arithmetic.

After the passes over stars, the search's largest cost was filtering its maps: each slab, field
and error class smooths its histograms into apertures (two separable 1-d Gaussian passes) and
its local field (two box passes), some ten thousand filters a large field. scipy.ndimage copies
each line into a buffer of doubles and filters it one cell at a time; here the same sums run
across many lines at once (vector lanes), and only for the cells a caller reads.

Each cell gets the operations scipy (1.17) gives it, in its order, in IEEE double (no fast-math:
no reassociation, no fused multiply-adds), cells beyond the map reading 0 (``mode="constant"``):
for a symmetric Gaussian kernel of radius r, x[0] w[0] and then, from the farthest pair in,
(x[-k] + x[k]) w[-k] (the kernel's left half, as scipy reads it); for a box of n cells, a
running sum (the first n cells added in turn, then the cell entering less the one leaving)
divided by n at each cell. The first pass's result is rounded to the map's type before the
second reads it, as scipy writes it to its output array between the passes. So the maps are the
same to the bit as scipy.ndimage's ``gaussian_filter`` and ``uniform_filter`` give
(tests/test_peak_search.py compares them).

Two more passes over whole maps are here, where numpy made several with a temporary each: the
bound's largest value over each block of a coarse class's map (:func:`block_max`) and the peaks,
the local maxima above the threshold (:func:`local_maxima`). Both only compare values, so they
give numpy's to the bit; on a small field's grids of up to 360,000 cells for a few thousand
stars, numpy's passes were over a quarter of the search under the profiler.
"""

from __future__ import annotations

import numba
import numpy as np

from ocdec.methods.default.star_loops import compiled, maximum


@numba.njit(inline="always")
def _row(h: np.ndarray, i: int, zero: np.ndarray) -> np.ndarray:
    """Row ``i`` of ``h``, or ``zero`` (a row of 0.0, as scipy's constant mode reads) beyond it."""
    return h[i] if 0 <= i < h.shape[0] else zero


@compiled
def _gaussian_cells(h: np.ndarray, w: np.ndarray, r0: int, r1: int, c0: int, c1: int,
                    out: np.ndarray) -> None:
    """``out`` (r1 - r0 by c1 - c0, ``h``'s type) = the 2-d Gaussian of ``h`` (axis 0, then
    axis 1, kernel ``w`` of odd length, symmetric) on rows r0..r1 and columns c0..c1."""
    r = w.size // 2
    nx, ny = h.shape
    if w.size != 2 * r + 1 or out.shape[0] != r1 - r0 or out.shape[1] != c1 - c0:
        raise ValueError("_gaussian_cells: an odd kernel and an output of the region's shape")
    if not (0 <= r0 <= r1 <= nx and 0 <= c0 <= c1 <= ny):
        raise ValueError("_gaussian_cells: the region lies within the map")
    # the columns the second pass reads: the region's and r more each side, within the map
    m0, m1 = max(c0 - r, 0), min(c1 + r, ny)
    acc = np.empty(m1 - m0)
    width = c1 - c0
    # the second pass's line: the first pass's cells, rounded to h's type, 0 beyond the map
    line = np.zeros(width + 2 * r)
    mid = np.empty(m1 - m0, out.dtype)
    acc2 = np.empty(width)
    zero = np.zeros(ny, h.dtype)  # a row beyond the map
    w0 = w[r]
    # Each operand is a slice indexed from 0 by the loop's counter: numba then knows the index
    # is not negative and drops its wraparound test, and the loops run in vector lanes (an
    # offset index, line[r + j - k], kept the second pass one cell at a time: 2.5 times slower).
    for i in range(r0, r1):
        row = h[i, m0:m1]
        for j in range(m1 - m0):
            acc[j] = np.float64(row[j]) * w0
        for k in range(r, 0, -1):
            wk = w[r - k]
            a, b = _row(h, i - k, zero)[m0:m1], _row(h, i + k, zero)[m0:m1]
            for j in range(m1 - m0):
                acc[j] += (np.float64(a[j]) + np.float64(b[j])) * wk
        mid[:] = acc
        # line[t] holds column c0 - r + t
        into = line[m0 - (c0 - r):m1 - (c0 - r)]
        for j in range(m1 - m0):
            into[j] = mid[j]
        centre = line[r:r + width]
        for j in range(width):
            acc2[j] = centre[j] * w0
        for k in range(r, 0, -1):
            wk = w[r - k]
            left, right = line[r - k:r - k + width], line[r + k:r + k + width]
            for j in range(width):
                acc2[j] += (left[j] + right[j]) * wk
        o = out[i - r0]
        for j in range(width):
            o[j] = acc2[j]


def _writable(h: np.ndarray) -> np.ndarray:
    """``h`` as a C-contiguous writable array (a copy only where it is not one): numba types a
    read-only row apart from the writable row of zeros that stands for the rows beyond it."""
    flags = h.flags
    if flags.c_contiguous and flags.writeable:  # nearly always: np.require's checks cost more
        return h
    return np.require(h, requirements=["C", "W"])


def gaussian(h: np.ndarray, weights: np.ndarray,
             region: tuple[slice, slice] | None = None) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(h, sigma, mode="constant")[region]`` for a 2-d float32 or
    float64 map ``h``, to the bit, computed only on ``region`` (default: the whole map);
    ``weights``: the filter's 1-d kernel at ``sigma`` (odd length, symmetric), reversed as
    scipy correlates with it."""
    rows, cols = region if region is not None else (slice(0, h.shape[0]), slice(0, h.shape[1]))
    r0, r1, _ = rows.indices(h.shape[0])
    c0, c1, _ = cols.indices(h.shape[1])
    out = np.empty((max(r1 - r0, 0), max(c1 - c0, 0)), h.dtype)
    if out.size:
        _gaussian_cells(_writable(h), weights, r0, r1, c0, c1, out)
    return out


@compiled
def _box_rows(h: np.ndarray, size: int, r0: int, r1: int, out: np.ndarray) -> None:
    """``out`` (r1 - r0 by the map's columns, ``h``'s type) = the 2-d box filter of ``size``
    cells of ``h`` (axis 0, then axis 1) on rows r0..r1. A running sum gives a cell scipy's
    value only when run from the line's start: the columns run from the map's first row (to
    row r1 + size - size // 2 - 2, the last they read), the rows along their whole length."""
    nx, ny = h.shape
    if size < 1 or out.shape[0] != r1 - r0 or out.shape[1] != ny or not 0 <= r0 <= r1 <= nx:
        raise ValueError("_box_rows: a box of at least one cell, rows within the map")
    before = size // 2  # cells the box reaches before its centre (after: size - before - 1)
    n = np.float64(size)
    column = np.zeros(ny)  # each column's running sum, undivided
    zero = np.zeros(ny, h.dtype)  # a row beyond the map
    for t in range(size):  # the box about row 0: rows -before .. size - before - 1
        row = _row(h, t - before, zero)
        for j in range(ny):
            column[j] += np.float64(row[j])
    mid = np.empty(ny, out.dtype)
    line = np.zeros(ny + size)  # a row of the first pass, rounded, 0 beyond the map
    for i in range(r1):
        if i > 0:
            a, b = _row(h, i - 1 - before, zero), _row(h, i + size - before - 1, zero)
            for j in range(ny):
                column[j] += np.float64(b[j]) - np.float64(a[j])
        if i < r0:
            continue
        for j in range(ny):
            mid[j] = column[j] / n
        into = line[before:before + ny]  # slices indexed from 0 (_gaussian_cells says why)
        for j in range(ny):
            into[j] = mid[j]
        total = 0.0
        for t in range(size):
            total += line[t]
        o = out[i - r0]
        o[0] = total / n
        entering, leaving, rest = line[size:size + ny - 1], line[:ny - 1], o[1:]
        for j in range(ny - 1):
            total += entering[j] - leaving[j]
            rest[j] = total / n


def box(h: np.ndarray, size: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``scipy.ndimage.uniform_filter(h, size, mode="constant")[r0:r1]`` for a 2-d float32 or
    float64 map ``h`` and a box of ``size`` >= 2 cells, to the bit, computed only on the rows
    ``rows`` = (r0, r1) (default: every row)."""
    r0, r1 = rows if rows is not None else (0, h.shape[0])
    out = np.empty((max(r1 - r0, 0), h.shape[1]), h.dtype)
    if out.size:
        _box_rows(_writable(h), size, r0, r1, out)
    return out


@numba.njit(inline="always")
def _reach(i: int, factor: int, block: int, n_blocks: int, m: int) -> tuple[int, int, int]:
    """The coarse lines block ``i`` of ``n_blocks`` reduces over, as numpy's maximum.reduceat at
    its first lines ``lo`` gives them, and then the line of its last fine cell ``hi``: lines
    start..stop and hi (``m`` coarse lines)."""
    lo = min(block * i // factor, m - 1)
    hi = min((block * i + block - 1) // factor, m - 1)
    if i == n_blocks - 1:
        return lo, m, hi
    following = min(block * (i + 1) // factor, m - 1)
    return lo, following if following > lo else lo + 1, hi


@compiled
def _block_max(m: np.ndarray, factor: int, block: int, nbx: int, nby: int, out: np.ndarray
               ) -> None:
    """``out`` (nbx by nby, ``m``'s type) = each block's largest positive value of the coarse
    map ``m`` (0 where none; NaN where it reaches one), as :func:`block_max` says."""
    mx, my = m.shape
    if out.shape[0] != nbx or out.shape[1] != nby or mx < 1 or my < 1 or factor < 1:
        raise ValueError("_block_max: an output of the blocks' shape, a map of one cell or more")
    lines = np.empty(my, m.dtype)  # the largest over a block's rows, for every column
    for bi in range(nbx):
        r0, r1, rh = _reach(bi, factor, block, nbx, mx)
        for c in range(my):
            lines[c] = m[rh, c]
        for r in range(r0, r1):
            row = m[r]
            for c in range(my):
                lines[c] = maximum(lines[c], row[c])
        for bj in range(nby):
            c0, c1, ch = _reach(bj, factor, block, nby, my)
            top = lines[ch]
            for c in range(c0, c1):
                top = maximum(top, lines[c])
            out[bi, bj] = maximum(0.0, top)  # +0.0 where top is a zero, as numpy's


def block_max(m: np.ndarray, factor: int, block: int, nb: tuple[int, int]) -> np.ndarray:
    """The largest of ``numpy.maximum(m, 0)`` over each of the ``nb`` blocks of ``block`` fine
    cells a side, ``m`` a coarse map of ``factor`` fine cells a side: the same values as
    numpy's ``maximum.reduceat`` at each block's first coarse line, then with the line of its
    last fine cell, along each axis (a block's last reduces to the map's end), gave them, in one
    pass instead of six whole-map ones."""
    out = np.empty(nb, m.dtype)
    if out.size:
        _block_max(_writable(m), factor, block, nb[0], nb[1], out)
    return out


@compiled
def _prefix_step(ex: np.ndarray, ex_i: int, ex_j: int, var: np.ndarray, var_i: int, var_j: int,
                 factor: int, ex_sum: np.ndarray, var_sum: np.ndarray, best: np.ndarray) -> None:
    """One class added to a region's prefix sums (:func:`prefix_step`)."""
    nx, ny = ex_sum.shape
    if var_sum.shape != ex_sum.shape or best.shape != ex_sum.shape or factor < 1:
        raise ValueError("_prefix_step: sums of the region's shape, a factor of 1 or more")
    ce = np.empty(ny, np.int64)  # each column's cell in the class's maps
    cv = np.empty(ny, np.int64)
    for j in range(ny):
        ce[j] = (j + ex_j) // factor
        cv[j] = (j + var_j) // factor
    one = np.float32(1.0)
    for i in range(nx):
        er, vr = ex[(i + ex_i) // factor], var[(i + var_i) // factor]
        es, vs, bs = ex_sum[i], var_sum[i], best[i]
        for j in range(ny):
            # numpy's float32 passes in turn: the sums (stored, rounded to float32), then
            # sqrt(var + 1), the quotient and the NaN-keeping maximum
            e = np.float32(es[j] + er[ce[j]])
            v = np.float32(vs[j] + vr[cv[j]])
            es[j], vs[j] = e, v
            t = np.float32(e / np.sqrt(np.float32(v + one)))
            bs[j] = maximum(bs[j], t)


def prefix_step(ex: np.ndarray, ex_i: int, ex_j: int, var: np.ndarray, var_i: int, var_j: int,
                factor: int, ex_sum: np.ndarray, var_sum: np.ndarray, best: np.ndarray) -> None:
    """Add one class to a region's prefix sums (float32 maps ``ex_sum``, ``var_sum``) and keep
    the best significance ``best``, in place: at cell (i, j) the class's excess
    ``ex[(i + ex_i) // factor, (j + ex_j) // factor]`` and variance (``var`` likewise) are
    added, and ``best`` becomes the larger of itself and ``ex_sum / sqrt(var_sum + 1)``, as
    numpy's float32 passes (``+=``, ``np.add(var_sum, 1.0)``, ``np.sqrt``, ``np.divide``,
    ``np.maximum``) give them, to the bit, in one pass without temporaries."""
    if ex_sum.size:
        _prefix_step(_writable(ex), ex_i, ex_j, _writable(var), var_i, var_j, factor, ex_sum,
                     var_sum, best)


@compiled
def _cells_to_rows(cells: np.ndarray, values: np.ndarray, lo: int, ny: int, out: np.ndarray
                   ) -> None:
    """``out`` (2 by rows x ``ny`` cells, zeros) gets ``values`` (2 by n) at the ``cells`` (flat
    grid indices i ny + j) that lie on the grid's rows ``lo`` on."""
    if values.shape[0] != 2 or values.shape[1] != cells.size or out.shape[0] != 2:
        raise ValueError("_cells_to_rows: two values per cell, two maps")
    base, top = lo * ny, lo * ny + out.shape[1]
    for k in range(cells.size):
        c = cells[k]
        if c >= base and c < top:
            out[0, c - base] = values[0, k]
            out[1, c - base] = values[1, k]


def cells_to_rows(cells: np.ndarray, values: np.ndarray, shape: tuple[int, int], lo: int,
                  hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Two maps (``values``' type) on rows ``lo``..``hi`` of a grid of ``shape`` that hold
    ``values`` (2 by n) at ``cells`` (flat indices i ny + j) and 0 elsewhere: one pass over the
    cells, where numpy's took a mask, a gather and a scatter."""
    ny = shape[1]
    out = np.zeros((2, (hi - lo) * ny), values.dtype)
    if out.size and cells.size:
        _cells_to_rows(cells, values, lo, ny, out)
    return out[0].reshape(hi - lo, ny), out[1].reshape(hi - lo, ny)


@compiled
def _maxima(sig: np.ndarray, other: np.ndarray, threshold: float, half: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The cells of s = numpy.maximum(sig, other) (``other`` empty: s = sig) above
    ``threshold`` (in double) that equal the largest s of their square of 2 ``half`` + 1 cells
    (cut at the map's edges), in row-major order."""
    nx, ny = sig.shape
    both = other.size > 0
    if both and (other.shape[0] != nx or other.shape[1] != ny):
        raise ValueError("_maxima: two maps of one shape")
    ii = np.empty(16, np.int64)
    jj = np.empty(16, np.int64)
    n = 0
    for i in range(nx):
        for j in range(ny):
            s = maximum(sig[i, j], other[i, j]) if both else sig[i, j]
            if not np.float64(s) > threshold:
                continue
            top = s
            for a in range(max(i - half, 0), min(i + half + 1, nx)):
                for b in range(max(j - half, 0), min(j + half + 1, ny)):
                    t = maximum(sig[a, b], other[a, b]) if both else sig[a, b]
                    top = maximum(top, t)
            if s != top:
                continue
            if n == ii.size:
                ii = np.concatenate((ii, np.empty(n, np.int64)))
                jj = np.concatenate((jj, np.empty(n, np.int64)))
            ii[n], jj[n] = i, j
            n += 1
    return ii[:n], jj[:n]


def local_maxima(sig: np.ndarray, threshold: float, half: int = 2,
                 other: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the cells above ``threshold`` (compared in double) that hold the
    largest value of their square of 2 ``half`` + 1 cells (cut at the map's edges), in
    row-major order, of the map ``sig`` or, given ``other``, of ``numpy.maximum(sig, other)``
    (not made: one pass over both maps)."""
    rest = np.empty((0, 0), sig.dtype) if other is None else _writable(other)
    return _maxima(_writable(sig), rest, float(threshold), half)


def load() -> None:
    """Compile or load the filters for the maps' types (float32, float64) and the search's
    kernels (read-only arrays: numba compiles those apart from writable ones), so that the
    processes forked after it find them ready (:data:`ocdec.warm.COMPILED`)."""
    w = np.array([0.25, 0.5, 0.25])
    w.setflags(write=False)  # as density._gauss_weights makes its kernels
    for dtype in (np.float32, np.float64):
        gaussian(np.zeros((2, 2), dtype), w)
        box(np.zeros((2, 2), dtype), 2)
    # the bound's blocks and the peaks are taken on float32 maps alone
    block_max(np.zeros((2, 2), np.float32), 2, 2, (1, 1))
    cells_to_rows(np.zeros(1, np.int64), np.zeros((2, 1), np.float32), (1, 1), 0, 1)
    one = np.zeros((1, 1), np.float32)
    prefix_step(one, 0, 0, one, 0, 0, 1, one.copy(), one.copy(), one.copy())
    local_maxima(np.zeros((2, 2), np.float32), 1.0, other=np.zeros((2, 2), np.float32))
    local_maxima(np.zeros((2, 2), np.float32), 1.0)
