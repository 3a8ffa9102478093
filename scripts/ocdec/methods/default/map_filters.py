"""The peak search's Gaussian apertures on its maps, compiled (numba), with scipy's arithmetic.

After the passes over stars, the search's largest cost was filtering its maps: each slab, field
and error class smooths its histograms into apertures (two separable 1-d Gaussian passes),
some ten thousand filters a large field. :func:`scipy.ndimage.correlate1d` copies each line into
a buffer of doubles and runs the kernel along it, one cell at a time; here the same sums run
across many lines at once (vector lanes), and only for the cells a caller reads.

Each cell gets the operations scipy gives it, in its order, in IEEE double (no fast-math: no
reassociation, no fused multiply-adds): for a symmetric kernel of radius r, x[0] w[0] and then,
from the farthest pair in, (x[-k] + x[k]) w[k], cells beyond the map reading 0 (``mode=
"constant"``); the first pass's result is rounded to the map's type before the second reads it,
as scipy writes it to its output array between the passes. So the maps are the same to the bit
as :func:`scipy.ndimage.gaussian_filter`'s (tests/test_peak_search.py compares them).
"""

from __future__ import annotations

import numpy as np

from ocdec.methods.default.star_loops import compiled


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
    w0 = w[r]
    for i in range(r0, r1):
        row = h[i]
        for j in range(m1 - m0):
            acc[j] = np.float64(row[m0 + j]) * w0
        for k in range(r, 0, -1):
            wk = w[r - k]
            if i - k >= 0 and i + k < nx:
                a, b = h[i - k], h[i + k]
                for j in range(m1 - m0):
                    acc[j] += (np.float64(a[m0 + j]) + np.float64(b[m0 + j])) * wk
            elif i - k >= 0:
                a = h[i - k]
                for j in range(m1 - m0):
                    acc[j] += (np.float64(a[m0 + j]) + 0.0) * wk
            elif i + k < nx:
                b = h[i + k]
                for j in range(m1 - m0):
                    acc[j] += (0.0 + np.float64(b[m0 + j])) * wk
            else:
                for j in range(m1 - m0):
                    acc[j] += (0.0 + 0.0) * wk
        # line[t] holds column c0 - r + t
        mid[:] = acc
        for j in range(m1 - m0):
            line[m0 - (c0 - r) + j] = mid[j]
        for j in range(width):
            acc2[j] = line[r + j] * w0
        for k in range(r, 0, -1):
            wk = w[r - k]
            for j in range(width):
                acc2[j] += (line[r + j - k] + line[r + j + k]) * wk
        o = out[i - r0]
        for j in range(width):
            o[j] = acc2[j]


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
        _gaussian_cells(np.ascontiguousarray(h), weights, r0, r1, c0, c1, out)
    return out


def load() -> None:
    """Compile or load the filter for the maps' types (float32, float64), so that the
    processes forked after it find it ready (:data:`ocdec.warm.COMPILED`)."""
    w = np.array([0.25, 0.5, 0.25])
    for dtype in (np.float32, np.float64):
        gaussian(np.zeros((2, 2), dtype), w)
