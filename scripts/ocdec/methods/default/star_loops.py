"""The peak search's passes over every star, compiled (numba): one loop where numpy made several.

A large field's detection is its passes over stars: for each of some thirty parallax slabs, six
fields (the field and its five resamples) and up to six error classes, the stars' cells in
proper motion, then four to six weighted histograms of them; for each peak, the stars its slab
reaches and their distances from it in proper motion. As numpy expressions each of those is a
pass over a million stars with a temporary array (cells, masks, gathered motions, weights), and
memory traffic, not arithmetic, set their cost. Here each is one loop that reads a star once.

The loops do what the numpy expressions did, in the same order and the same IEEE double
operations (no fast-math: no reassociation, no fused multiply-adds), so the results are the same
to the bit for the float64 arrays the search passes (float32 ones would be computed in
float32): a histogram adds its stars' weights in their order, as :func:`numpy.bincount` does,
and :func:`math.hypot` is the C library's, as numpy's. tests/test_peak_search.py compares them
with the numpy expressions. numba does not check indices: each loop checks its arrays' lengths.

Compiled on first use (about 1 s) and kept in numba's cache beside this file, or in numba's
user cache where that cannot be written (uncached, with a warning, where neither can), so a
job loads them in milliseconds; the warm interpreter loads them before it forks its jobs
(:func:`load`). ``nogil``: the slabs still run side by side in threads.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

log = logging.getLogger(__name__)


def compiled(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``func`` compiled (numba, nogil, and numba's ``options``), cached where a cache can be
    written; without ``func``, the decorator with those options."""
    if func is None:
        return lambda f: compiled(f, **options)
    try:
        return numba.njit(cache=True, nogil=True, **options)(func)
    except RuntimeError as err:  # "cannot cache function ...: no locator available"
        log.warning("compiled loops not cached (%s): each process compiles them", err)
        return numba.njit(nogil=True, **options)(func)


@numba.njit(inline="always")
def maximum(a: float, b: float) -> float:
    """The larger of two numbers, NaN where either is, as numpy.maximum gives it (but for the
    sign of a zero: ``a`` where a == b)."""
    return a if (a >= b or a != a) else b


@compiled
def class_histograms(pmra: np.ndarray, pmdec: np.ndarray, at: np.ndarray, x0: float, dx: float,
                     y0: float, dy: float, nx: int, ny: int, weight: np.ndarray,
                     pm_weight: np.ndarray, sky_w: np.ndarray, fbar: float, block: int,
                     slots: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One error class's histograms on an ``nx`` x ``ny`` grid (cell (i, j) holds x0 + i dx <= x
    < x0 + (i + 1) dx, likewise y; stars outside, or not finite, dropped) of its stars ``at``
    (indices into ``pmra``, ``pmdec`` and ``sky_w``), on the cells they reach.

    Returns (cells, pm, sky, blocks). cells: the cells the stars reach (i ny + j), in the order
    first reached; pm[0], pm[1]: there, the sums of ``pm_weight`` and of its square (none where
    ``pm_weight`` is empty: the class is not in the proper-motion contrast); sky[0], sky[1]: of
    a = weight (sky_w - fbar) and of a^2 (none where ``sky_w`` is empty): float32, each cell's
    sum made in double, its stars' in their order, then rounded (as numpy's bincount and a cast
    make them; every other cell's is 0). blocks[0], blocks[1], float64: over blocks of ``block``
    cells a side (``block`` 0: none), the sums of the positive ``pm_weight`` and the positive a
    (NaN kept, as numpy.maximum keeps it). ``slots``: at least nx ny int32 -1s (a workspace,
    :func:`cell_slots`), left as they were.

    Only the cells reached are returned, not the whole grid: a slab's grid has up to 360,000
    cells and a class may hold a few hundred stars, and the maps made from them are needed only
    on the rows where a peak can be (:mod:`~ocdec.methods.default.density`); zeroing the grids
    was most of a small field's histograms."""
    if weight.size != at.size or (pm_weight.size and pm_weight.size != at.size):
        raise ValueError("class_histograms: a weight per star of the class")
    if slots.size < nx * ny:
        raise ValueError("class_histograms: a slot per cell of the grid")
    with_pm, with_sky = pm_weight.size > 0, sky_w.size > 0
    nby = -(-ny // block) if block > 0 else 0
    blocks = np.zeros((2, (-(-nx // block) if block > 0 else 0) * nby))
    # each star's reached cell's number (-1: dropped), and the reached cells in order
    slot_of = np.empty(at.size, np.int64)
    reached = np.empty(at.size, np.int64)
    n_reached = 0
    for k in range(at.size):
        star = at[k]
        # floor(g) lies in [0, n) exactly where g does: tested before any cast to an integer
        # (NaN fails every test), then truncated, which is floor for g >= 0
        gx = (pmra[star] - x0) / dx
        gy = (pmdec[star] - y0) / dy
        if not (gx >= 0.0 and gx < nx and gy >= 0.0 and gy < ny):
            slot_of[k] = -1
            continue
        cell = int(gx) * ny + int(gy)
        if slots[cell] < 0:
            slots[cell] = n_reached
            reached[n_reached] = cell
            n_reached += 1
        slot_of[k] = slots[cell]
    for c in range(n_reached):
        slots[reached[c]] = -1
    # the sums, each cell's (and block's) in the stars' order
    sums = np.zeros((4, n_reached))
    for k in range(at.size):
        c = slot_of[k]
        if c < 0:
            continue
        cell = reached[c]
        b = (cell // ny // block) * nby + cell % ny // block if block > 0 else 0
        if with_pm:
            wp = pm_weight[k]
            sums[0, c] += wp
            sums[1, c] += wp * wp
            if block > 0:
                blocks[0, b] += maximum(wp, 0.0)
        if with_sky:
            a = weight[k] * (sky_w[at[k]] - fbar)
            sums[2, c] += a
            sums[3, c] += a * a
            if block > 0:
                blocks[1, b] += maximum(a, 0.0)
    # each sum rounded to float32 (as numpy's cast), for the contrasts made
    pm = sums[:2, :n_reached if with_pm else 0].astype(np.float32)
    sky = sums[2:, :n_reached if with_sky else 0].astype(np.float32)
    return reached[:n_reached].copy(), pm, sky, blocks


_workspace = threading.local()


def cell_slots(n_cells: int) -> np.ndarray:
    """This thread's workspace of at least ``n_cells`` int32 -1s for :func:`class_histograms`
    (which leaves it so): made once per thread and grown as needed, where filling 1.4 MB of a
    600 x 600 grid for each class was a third of a small field's histograms."""
    slots = getattr(_workspace, "slots", None)
    if slots is None or slots.size < n_cells:
        slots = np.full(max(n_cells, 1), -1, np.int32)
        _workspace.slots = slots
    return slots


# Squares of lengths decide a comparison of the lengths unless they lie within this relative
# margin of each other, far beyond their rounding (a few parts in 2^53); there the lengths are
# compared as numpy compared them, with math.hypot (the C library's, slow: 20 ns a call).
_SQUARE_MARGIN = 1e-9
# Below this a square may have underflowed (numbers of 1e-154 and less): numpy's way decides.
_SQUARE_FLOOR = 1e-290


@numba.njit(inline="always")
def _order(x2: float, y2: float) -> int:
    """-1 where x < y for sure, 1 where x > y for sure, 0 where their squares x2, y2 are too
    close to tell (or NaN, or y2 so small that the squares may have lost digits below the
    smallest normal number)."""
    if not y2 >= _SQUARE_FLOOR:
        return 0
    if x2 < y2 * (1.0 - _SQUARE_MARGIN):
        return -1
    if x2 > y2 * (1.0 + _SQUARE_MARGIN):
        return 1
    return 0


@compiled
def core_and_control(parallax: np.ndarray, e_plx: np.ndarray, pmra: np.ndarray,
                     pmdec: np.ndarray, e_pm: np.ndarray, plx0: float, half_width: float,
                     pmra0: float, pmdec0: float, pm_scale: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The indices, ascending, of the stars within a peak's parallax slab (|parallax - plx0| <
    hypot(half_width, e_plx)) whose proper motion lies within 1.5 member spreads of the peak's
    (the core) and between 3 and 6 (the control ring), a member spread being hypot(pm_scale,
    e_pm): the same stars as those expressions in numpy (:data:`_SQUARE_MARGIN`)."""
    n = parallax.size
    if not e_plx.size == pmra.size == pmdec.size == e_pm.size == n:
        raise ValueError("core_and_control: one value per star in every array")
    # grown as they fill: arrays as long as the field were 160 MB a peak on 10 M stars
    core = np.empty(min(n, 4096), np.int64)
    control = np.empty(min(n, 4096), np.int64)
    n_core = n_control = 0
    for i in range(n):
        dp, e = abs(parallax[i] - plx0), e_plx[i]
        order = _order(dp * dp, half_width * half_width + e * e)
        if order > 0 or (order == 0 and not dp < math.hypot(half_width, e)):
            continue
        dx, dy, e = pmra[i] - pmra0, pmdec[i] - pmdec0, e_pm[i]
        d2, reach2 = dx * dx + dy * dy, pm_scale * pm_scale + e * e
        order = _order(d2, 2.25 * reach2)
        inner, outer = _order(d2, 9.0 * reach2), _order(d2, 36.0 * reach2)
        if order == 0 or inner == 0 or outer == 0:  # too close to tell: as numpy
            d, reach = math.hypot(dx, dy), math.hypot(pm_scale, e)
            in_core = d < 1.5 * reach
            in_control = d > 3 * reach and d < 6 * reach
        else:
            in_core, in_control = order < 0, inner > 0 and outer < 0
        if in_core:
            if n_core == core.size:
                core = _grown(core)
            core[n_core] = i
            n_core += 1
        elif in_control:
            if n_control == control.size:
                control = _grown(control)
            control[n_control] = i
            n_control += 1
    return core[:n_core].copy(), control[:n_control].copy()


@numba.njit(inline="always")
def _grown(a: np.ndarray) -> np.ndarray:
    """``a`` copied into an array twice as long."""
    out = np.empty(2 * a.size, a.dtype)
    out[:a.size] = a
    return out


@compiled
def spread_classes(e_pm: np.ndarray, intrinsic: float, s0: float, n_classes: int
                   ) -> np.ndarray:
    """Each star's class k = floor(log2(hypot(intrinsic, e_pm) / s0)), at least 0 and at most
    ``n_classes`` (every class from there on is one: beyond the classes kept), int8; -1 where
    the squares cannot tell it (near a power of 2, or not finite): there numpy decides
    (:func:`ocdec.methods.default.density.error_classes`)."""
    out = np.empty(e_pm.size, np.int8)
    edges = s0 * s0 * 4.0 ** np.arange(1, n_classes + 1)  # the class edges as squares of spread
    i2 = intrinsic * intrinsic
    for i in range(e_pm.size):
        e = e_pm[i]
        q = i2 + e * e  # the spread's square
        if not q < math.inf:  # NaN or infinite: as numpy's cast makes it
            out[i] = -1
            continue
        k = 0
        while k < n_classes and _order(q, edges[k]) > 0:
            k += 1
        out[i] = -1 if k < n_classes and _order(q, edges[k]) == 0 else k
    return out


def load() -> None:
    """Compile or load every loop for the argument types the peak search passes (float64
    arrays; int32 and int64 indices), so that the processes forked after it find them ready:
    numba's first load in a process sets up its compiler's tables, 0.2-0.3 s."""
    x = np.zeros(2)
    for at in (np.arange(2, dtype=np.int32), np.arange(2, dtype=np.int64)):
        class_histograms(x, x, at, 0.0, 1.0, 0.0, 1.0, 1, 1, x, x, x, 0.0, 8, cell_slots(1))
    core_and_control(x, x, x, x, x, 0.0, 1.0, 0.0, 0.0, 1.0)
    spread_classes(x, 0.1, 0.1, 6)
