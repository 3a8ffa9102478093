"""Step 1 of the default method: find the cluster's peak in proper motion and parallax.

Within parallax slabs, every star counts, weighted by its parallax likelihood at the slab; proper
motions are gathered by error class at the width a cluster at that parallax has (internal velocity
dispersion times parallax, plus each class's errors), and the excess is measured in proper motion
against the local field and on the sky against the same stars' spread
(:mod:`~ocdec.methods.default.density`, :func:`find_peaks`). Peaks are ranked
(:func:`score_peaks`) by that significance, by how concentrated their stars are on the sky, and by
the catalogue priors where given (log-normal in parallax, 3 mas/yr Gaussian in proper motion, the
weight's square root): never by a literature answer. docs/detection.md has the measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ocdec.errors import OcdecError
from ocdec.methods.astrometry import sky_centre
from ocdec.methods.default import map_filters
from ocdec.methods.default.density import (
    ClassStars,
    FieldParallax,
    PmGrid,
    class_stars,
    error_classes,
    pm_grid,
    significance_rows,
    slab_stars,
)
from ocdec.methods.default.sky import angular_separation_deg
from ocdec.methods.default.star_loops import core_and_control
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.priors import ClusterPriors
from ocdec.threads import MapFn

# 4.74047 km/s is 1 AU/yr: v_t [km/s] = 4.74 * pm [mas/yr] / parallax [mas].
KMS_PER_MASYR_KPC = 4.74047


# Issue 10's detection constants (module level: the workflow's config schema lists the settings).
MIN_PLX_FLOOR_PRIOR = 0.02  # mas: the deepest slab with a parallax prior
MIN_HALF_WIDTH = 0.05  # mas: the narrowest slab (half-width)
MIN_WEIGHT = 0.02  # stars weighing less than this in a slab are left out of it (speed)
ERROR_CLASSES = 6  # proper-motion error classes (factors of 2 in member spread)
SKY_MIN_SCALE = 0.05  # the sky weight's scale, at least this fraction of the field
# proper-motion contrast only for error classes this much narrower than the field's motions
PM_CLASS_RATIO = 0.2
# mas: the proper-motion contrast uses only stars whose parallax errors are below this (or the
# slab's half-width): stars whose parallax says nothing carry the distant field's own narrow hump
# in proper motion into every slab (TeachAstro Hyades field: 73 sigma at 0.21 mas). The sky
# contrast still counts every star. With a catalogue parallax the search once skipped the cut so
# that faint members count (Berkeley 73: 4.5 sigma with it, 12.8 without), but in deep DR2 fields
# (the simulated thesis catalogue, G <= 21) the field's humps then passed as groups of 15-90
# sigma near the catalogue's parallax and were taken for the cluster (12 of 25 regions found
# wrong), because the resamples' jitter, which scales with a faint star's errors, smooths them.
PM_CONTRAST_MAX_PLX_ERROR = 0.08
PRIOR_POWER = 0.5  # the prior weight enters the score to this power (score_peaks)
DUPLICATE_RESOLUTIONS = 3.0  # peaks this many map resolutions apart are one (_suppress_duplicates)


@dataclass(frozen=True)
class PeakSettings:
    sigma_v_kms: float = 1.0  # internal velocity dispersion that sets the pm cell at each parallax
    # The search is repeated with the dispersion times each factor: a nearby cluster's proper
    # motions spread with its depth and across the sky (the Hyades: several mas/yr), and at one
    # cell of 1 km/s it is diluted below a compact co-moving group (TeachAstro Hyades, no prior).
    scale_factors: tuple[float, ...] = (1.0, 2.5)
    slab_ratio: float = 1.12  # consecutive parallax slab centres differ by this factor
    slab_half_width: float = 0.12  # relative half-width of a slab (absolute floor below)
    min_plx_floor: float = 0.15  # mas: the deepest slab without a prior
    background_cells: int = 21  # side of the box (in cells) over which the local field is averaged
    min_significance: float = 5.0
    max_peaks: int = 12
    plx_prior_log_sigma: float = 0.25  # Dias distances are often 10-30% off
    pm_prior_sigma: float = 3.0  # mas/yr: pre-Gaia proper motions can be several mas/yr off


@dataclass(frozen=True)
class Peak:
    pmra: float
    pmdec: float
    parallax: float
    pm_scale: float  # mas/yr: the cell (cluster width) used at this parallax
    plx_half_width: float
    significance: float
    n_core: int = 0
    concentration: float = math.nan
    prior_weight: float = 1.0
    score: float = 0.0
    # Added by issue 10: the two searches' significances (significance is the larger), and the
    # sky centre of the peak's core stars (NaN without positions).
    pm_significance: float = math.nan
    sky_significance: float = math.nan
    ra: float = math.nan
    dec: float = math.nan
    # mas/yr: the significance map's aperture (sigma, 2 cells), the width of proper motion it
    # resolves; NaN for peaks made elsewhere
    resolution: float = math.nan

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def _slab_centres(ast: Astrometry, priors: ClusterPriors, s: PeakSettings) -> np.ndarray:
    good = ast.parallax[ast.parallax > 0]
    if good.size == 0:
        raise OcdecError("no star has a positive parallax")
    if priors.parallax is not None:
        # A wide bracket around the catalogue distance; the soft prior weight does the rest.
        lo, hi = priors.parallax / 2.5, priors.parallax * 2.5
    else:
        lo, hi = np.quantile(good, [0.01, 0.999])
    floor = MIN_PLX_FLOOR_PRIOR if priors.parallax is not None else s.min_plx_floor
    lo = max(lo, floor, float(good.min()))
    hi = min(hi, float(good.max()))
    if hi <= lo:
        hi = lo * s.slab_ratio
    n = int(math.ceil(math.log(hi / lo) / math.log(s.slab_ratio))) + 1
    return lo * s.slab_ratio ** np.arange(n)


@dataclass(frozen=True)
class SlabPlan:
    """One parallax slab at one cell scale: its stars (those weighing more than MIN_WEIGHT) by
    error class with their weights, indices among the field's stars (from parallaxes and errors
    alone), and the field's proper-motion grid, which a field and its resamples
    (:func:`ocdec.methods.default.groups.search_with_nulls`) share: the resamples are searched at
    the field's resolution (their jittered motions once widened their grids to the 600-cell
    cap, coarser cells at 1.6 times the cost)."""

    parallax: float
    half_width: float
    scale: float  # mas/yr: the cell, the cluster's width at this parallax with typical errors
    stars: ClassStars
    grid: PmGrid


class _SlabPlanner:
    """Makes the :class:`SlabPlan` of each parallax slab of one set of parallaxes and errors (a
    field's, and so its resamples')."""

    def __init__(self, ast: Astrometry, s: PeakSettings) -> None:
        self.ast, self.s = ast, s
        self.field = FieldParallax(ast.parallax, ast.e_plx)
        self.e_pm = np.hypot(ast.e_pmra, ast.e_pmdec) / math.sqrt(2)
        self.e_plx2 = ast.e_plx**2

    def __call__(self, c: float) -> list[SlabPlan]:
        """The slab at parallax ``c`` at each cell scale (none where it holds too few stars)."""
        ast, s = self.ast, self.s
        half = max(c * s.slab_half_width, MIN_HALF_WIDTH)
        idx, weight = slab_stars(ast.parallax, ast.e_plx, self.field.density, c, half,
                                 MIN_WEIGHT, self.e_plx2)
        if weight.sum() < 20:
            return []
        precise = idx[weight > 0.5]
        pm_ok = (ast.e_plx[idx] < max(half, PM_CONTRAST_MAX_PLX_ERROR)).astype(float)
        e_pm = self.e_pm
        e_med = float(np.median(e_pm[precise])) if precise.size else float(np.median(e_pm[idx]))
        plans = []
        e_slab, pmra, pmdec = e_pm[idx], ast.pmra[idx], ast.pmdec[idx]
        for factor in s.scale_factors:
            intrinsic = factor * s.sigma_v_kms * c / KMS_PER_MASYR_KPC
            classes = error_classes(e_slab, intrinsic, ERROR_CLASSES)
            grid = pm_grid(pmra, pmdec, classes, s.background_cells)
            # pm_ok: the stars whose parallax places them in the slab count in proper motion
            stars = class_stars(weight, classes, grid, PM_CLASS_RATIO, pm_ok, idx)
            plans.append(SlabPlan(c, half, math.hypot(intrinsic, e_med), stars, grid))
        return plans


def _centres(ast: Astrometry, priors: ClusterPriors, s: PeakSettings,
             beyond: tuple[float, float] | None = None) -> np.ndarray:
    """The slab centres of a search; with ``beyond`` = (lo, hi), only those below lo or above
    hi."""
    centres = _slab_centres(ast, priors, s)
    if beyond is not None:
        centres = centres[(centres < beyond[0]) | (centres > beyond[1])]
    return centres


def _bracket_beyond(planned: list[float], s: PeakSettings) -> tuple[float, float] | None:
    """The range the every-parallax search covers (its planned slab centres ``planned``, half a
    slab step out), which the catalogue bracket leaves out; None where it planned nothing."""
    if not planned:
        return None
    half_step = math.sqrt(s.slab_ratio)
    return min(planned) / half_step, max(planned) * half_step


def search_plan(ast: Astrometry, priors: ClusterPriors, s: PeakSettings | None = None,
                map_fn: MapFn = map, beyond: tuple[float, float] | None = None
                ) -> list[SlabPlan]:
    """The slabs and cell scales :func:`find_peaks` searches, with their stars and weights.
    ``map_fn``: how the slabs are planned (a thread pool's ``map`` plans them side by side; each
    slab's plan is the same however it runs). ``beyond`` = (lo, hi): only the slabs centred
    below lo or above hi (another search covers the rest)."""
    s = s or PeakSettings()
    planner = _SlabPlanner(ast, s)
    return [plan for plans in map_fn(planner, _centres(ast, priors, s, beyond))
            for plan in plans]


def _slab_peaks(ast: Astrometry, sky_w: np.ndarray | None, slab: SlabPlan, s: PeakSettings
                ) -> list[Peak]:
    """The peaks of one slab's maps for the stars ``ast`` (sky weights ``sky_w``)."""
    pm, sky, ex, ey, cell, row0 = significance_rows(
        ast.pmra, ast.pmdec, slab.stars, slab.grid, s.background_cells, sky_w=sky_w,
        threshold=s.min_significance)
    return _map_peaks((pm, sky, ex, ey, cell), slab.parallax, slab.half_width, slab.scale, s,
                      row0)


def find_peaks(ast: Astrometry, priors: ClusterPriors, s: PeakSettings | None = None,
               plan: list[SlabPlan] | None = None) -> list[Peak]:
    """Overdensities in proper motion within parallax slabs: significance over the local field.

    Every star counts (:mod:`~ocdec.methods.default.density`): weighted by its parallax likelihood
    at the slab and gathered by its proper-motion error class. The excess is measured in proper
    motion against the local field and, where stars have positions, on the sky: the stars
    weighted by nearness to the catalogue's centre (else the field's) against all of them, so
    that a compact cluster stands out where the field's own motions hide it. A peak's
    significance is the larger of the two (both are kept on the peak). ``plan``: the
    :func:`search_plan` of these stars' parallaxes and errors (made here when None)."""
    s = s or PeakSettings()
    sky_w = _sky_weights(ast, priors)
    peaks: list[Peak] = []
    for slab in plan if plan is not None else search_plan(ast, priors, s):
        peaks.extend(_slab_peaks(ast, sky_w, slab, s))
    return _suppress_duplicates(peaks)


SearchPlans = tuple[list[SlabPlan], list[SlabPlan] | None]


def search_plans(ast: Astrometry, priors: ClusterPriors, s: PeakSettings | None = None,
                 map_fn: MapFn = map) -> SearchPlans:
    """The plans of the two searches (every parallax; the catalogue's bracket where it reaches
    beyond those, None without a catalogue parallax), made whole; ``map_fn`` as
    :func:`search_plan`'s. :func:`search_fields` makes the same plans a few slabs at a time (it is
    tested against the search over these).

    The bracket searches only the slabs the first search does not reach (half a slab step
    beyond its first and last centres): within that range a bracket slab lies within half a
    step (6 %) of one of the first search's, with the same sky weights and nearly the same stars
    and weights, so it found the same groups again, at up to about 43 % of the search's grid
    work (docs/performance.md)."""
    s = s or PeakSettings()
    every = search_plan(ast, priors.centre_only(), s, map_fn)
    if priors.parallax is None:
        return every, None
    beyond = _bracket_beyond([p.parallax for p in every], s)
    return every, search_plan(ast, priors, s, map_fn, beyond)


# Slabs planned and searched together by search_fields: their plans are all it holds at once.
SLABS_AT_ONCE = 3


def _search_slabs(fields: list[Astrometry], sky: list[np.ndarray | None],
                  planner: _SlabPlanner, centres: np.ndarray, s: PeakSettings, map_fn: MapFn
                  ) -> tuple[list[list[Peak]], list[float]]:
    """Each field's peaks over the slabs ``centres`` in slab order (not yet merged), and the
    centres that were planned; SLABS_AT_ONCE slabs at a time, their plans then dropped."""
    peaks: list[list[Peak]] = [[] for _ in fields]
    planned: list[float] = []
    for start in range(0, len(centres), SLABS_AT_ONCE):
        plans = [p for ps in map_fn(planner, centres[start:start + SLABS_AT_ONCE]) for p in ps]
        planned.extend(p.parallax for p in plans)
        pairs = [(i, plan) for plan in plans for i in range(len(fields))]
        found = map_fn(lambda pair: _slab_peaks(fields[pair[0]], sky[pair[0]], pair[1], s),
                       pairs)
        for k, slab_peaks in enumerate(found):
            peaks[pairs[k][0]].extend(slab_peaks)
        del plans, pairs, found  # before the next group's are made
    return peaks, planned


def search_fields(fields: list[Astrometry], priors: ClusterPriors,
                  s: PeakSettings | None = None, map_fn: MapFn = map,
                  orders: list[np.ndarray | None] | None = None) -> list[list[Peak]]:
    """Every group of each of ``fields``, which share their parallaxes and errors (a field and
    its resamples: one plan serves them all): :func:`find_peaks` over the slabs of every
    parallax (centre and radius only), and with a catalogue parallax also over the slabs of its
    bracket that lie beyond those (:func:`search_plans`), merged into one peak per group.

    The slabs are planned and searched a few at a time (SLABS_AT_ONCE), in every field, and
    their plans dropped: the plans of a whole search, held for the six fields' searches, were
    most of the default method's memory (about 1 KB per star, docs/performance.md). ``map_fn``
    runs a group's plans, then its (field, slab) maps, side by side; the peaks are the same
    however it runs, and the same as :func:`find_peaks` over the whole :func:`search_plans`
    finds them field by field. ``orders``: for each field, the permutation of the first
    field's positions it holds (a resample's), or None; such a field's sky weights are the
    first's, permuted (the same numbers, without a pass of spherical trigonometry per field)."""
    s = s or PeakSettings()
    planner = _SlabPlanner(fields[0], s)
    sky = _fields_sky_weights(fields, priors, orders or [None] * len(fields))
    every, planned = _search_slabs(fields, sky, planner,
                                   _centres(fields[0], priors.centre_only(), s), s, map_fn)
    found = [_suppress_duplicates(p) for p in every]
    if priors.parallax is None:
        return found
    centres = _centres(fields[0], priors, s, _bracket_beyond(planned, s))
    bracket, _ = _search_slabs(fields, sky, planner, centres, s, map_fn)
    return [_suppress_duplicates(_suppress_duplicates(b) + f)
            for b, f in zip(bracket, found, strict=True)]


def search_peaks(ast: Astrometry, priors: ClusterPriors, s: PeakSettings | None = None
                 ) -> list[Peak]:
    """Every group of the cone: the search over every parallax (centre and radius only), and with
    a catalogue parallax also the search of its bracket where that reaches farther (down to
    0.02 mas for a distant cluster, above the field's 99.9 % quantile for a nearby one of few
    stars); one peak per group (:func:`search_fields` of this one field)."""
    return search_fields([ast], priors, s)[0]


def _fields_sky_weights(fields: list[Astrometry], priors: ClusterPriors,
                        orders: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """:func:`_sky_weights` of each field, those of a field with an order permuted from the
    first's (the weights are each star's own, but for the 90 % quantile of the separations,
    which no order changes)."""
    first = _sky_weights(fields[0], priors)
    rest = [first[order] if order is not None and first is not None else _sky_weights(f, priors)
            for f, order in zip(fields[1:], orders[1:], strict=True)]
    return [first, *rest]


def _sky_weights(ast: Astrometry, priors: ClusterPriors) -> np.ndarray | None:
    """1 / (1 + (r / a)^2) about the catalogue's centre (else the field's), a the catalogue's
    cluster radius (the cone radius / 1.5) or a quarter of the field's extent."""
    if not ast.has_sky:
        return None
    if priors.has_centre:
        ra0, dec0 = float(priors.ra), float(priors.dec)  # type: ignore[arg-type]
    elif ast.frame_centre is not None:
        ra0, dec0 = ast.frame_centre
    else:
        return None
    r = angular_separation_deg(np.nan_to_num(ast.ra, nan=ra0), np.nan_to_num(ast.dec, nan=dec0),
                               ra0, dec0)
    extent = float(np.quantile(r, 0.9))
    a = priors.radius_deg / 1.5 if priors.radius_deg is not None else extent / 4
    a = min(max(a, extent * SKY_MIN_SCALE), extent)
    return 1.0 / (1.0 + (r / max(a, 1e-6)) ** 2)


def _map_peaks(maps: tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, float],
               c: float, half: float, scale: float, s: PeakSettings, row0: int = 0
               ) -> list[Peak]:
    """The peaks of a slab's maps (:func:`~ocdec.methods.default.density.significance_maps`;
    ``row0``: the grid row of their first, where they hold only some rows and every other cell
    is 0)."""
    sig_pm, sig_sky, ex, ey, cell = maps
    if cell <= 0:
        return []
    out = []
    for i, j in _local_maxima(sig_pm, s.min_significance, other=sig_sky):
        pm_sig = sig_pm[i, j]
        sig = pm_sig if sig_sky is None else np.maximum(pm_sig, sig_sky[i, j])
        out.append(Peak(pmra=float(ex[row0 + i] + cell / 2), pmdec=float(ey[j] + cell / 2),
                        parallax=c,
                        pm_scale=scale, plx_half_width=half, significance=float(sig),
                        resolution=2 * cell,
                        pm_significance=float(pm_sig),
                        sky_significance=(math.nan if sig_sky is None
                                          else float(sig_sky[i, j]))))
    return out


def _local_maxima(sig: np.ndarray, threshold: float, half: int = 2,
                  other: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The cells above ``threshold`` (compared in double, as the float64 maps were) that hold
    the maximum of their (2 ``half`` + 1)-cell square (cut at the map's edges), in row-major
    order, of a finite map ``sig`` or, given ``other``, of ``numpy.maximum(sig, other)``: as
    ``sig == maximum_filter(sig, 5)``, in one compiled pass
    (:func:`~ocdec.methods.default.map_filters.local_maxima`; the filter over whole maps was a
    tenth of the peak search, and numpy's passes to find the few cells above the threshold a
    tenth of a small field's)."""
    ii, jj = map_filters.local_maxima(sig, threshold, half, other)
    return list(zip(ii.tolist(), jj.tolist(), strict=True))


def _suppress_duplicates(peaks: list[Peak]) -> list[Peak]:
    """The same cluster shows in neighbouring slabs and cells: keep the most significant.

    Two peaks are one where their parallax slabs overlap and their proper motions lie within
    DUPLICATE_RESOLUTIONS of the coarser map's resolution (:attr:`Peak.resolution`; the member
    spread ``pm_scale`` where a peak has none). Not within 3 member spreads, as before: in a deep
    field the median member's errors make that spread mas/yr wide, and the field's own hump in
    proper motion, 2 mas/yr from a simulated cluster of 427 members at 800 pc (ASCC 110, G <= 21,
    DR2 errors), swallowed the cluster's separate peak."""
    kept: list[Peak] = []
    for p in sorted(peaks, key=lambda p: -p.significance):
        if any(abs(p.parallax - k.parallax) < 2 * max(p.plx_half_width, k.plx_half_width)
               and math.hypot(p.pmra - k.pmra, p.pmdec - k.pmdec)
               < DUPLICATE_RESOLUTIONS * max(_resolution(p), _resolution(k))
               for k in kept):
            continue
        kept.append(p)
    return kept


def _resolution(p: Peak) -> float:
    return p.pm_scale if math.isnan(p.resolution) else p.resolution


def _core_and_control(ast: Astrometry, e_pm: np.ndarray, p: Peak
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The indices of a peak's core stars and of its control ring in proper motion, among the
    stars its parallax slab reaches (the slab and a star's own error added, so faint members
    count too; ``e_pm``: each star's proper-motion error): one compiled pass over the stars
    (:func:`~ocdec.methods.default.star_loops.core_and_control`)."""
    return core_and_control(ast.parallax, ast.e_plx, ast.pmra, ast.pmdec, e_pm, p.parallax,
                            p.plx_half_width, p.pmra, p.pmdec, p.pm_scale)


def _sky_concentration(ast: Astrometry, core: np.ndarray, control: np.ndarray,
                       centre: tuple[float, float], separation: np.ndarray | None) -> float:
    """r50 of the control stars over r50 of the core stars (indices) about ``centre`` (> 1: the
    core is concentrated on the sky like a cluster); ``separation``: every star's separation
    from it, where made once for all peaks. NaN without positions or with too few stars."""
    if not ast.has_sky or core.size < 5 or control.size < 5:
        return math.nan
    if separation is not None:
        r_core, r_ctrl = np.median(separation[core]), np.median(separation[control])
    else:
        ra0, dec0 = centre
        r_core = np.median(angular_separation_deg(ast.ra[core], ast.dec[core], ra0, dec0))
        r_ctrl = np.median(angular_separation_deg(ast.ra[control], ast.dec[control], ra0, dec0))
    return float(r_ctrl / max(r_core, 1e-6))


def separation_from_centre(ast: Astrometry, priors: ClusterPriors) -> np.ndarray | None:
    """Every star's separation (degrees) from the catalogue's centre, which :func:`score_peaks`
    measures each peak's stars by; None without positions or a centre. A field's resamples,
    its positions shuffled, have it shuffled alike (numpy's results are each star's own)."""
    if not ast.has_sky or not priors.has_centre:
        return None
    return angular_separation_deg(ast.ra, ast.dec, float(priors.ra),  # type: ignore[arg-type]
                                  float(priors.dec))  # type: ignore[arg-type]


def score_peaks(ast: Astrometry, peaks: list[Peak], priors: ClusterPriors,
                s: PeakSettings | None = None, separation: np.ndarray | None = None
                ) -> list[Peak]:
    """Attach sky concentration, sky centre and prior weight to the most significant peaks, best
    score first.

    score = significance x concentration (clipped to [0.5, 3]; 0.5 where the stars have positions
    but the peak has too few core stars to measure it) x prior weight ^ PRIOR_POWER, where the
    prior weight is a log-normal in parallax around the catalogue distance and a Gaussian of
    ``pm_prior_sigma`` around the catalogue proper motion (each 1 when absent). The power below 1
    keeps a pre-Gaia proper motion several mas/yr off (Berkeley 29: 5) from preferring a weak
    peak near it over the cluster. The concentration is measured about the catalogue's centre
    (else the core's own); ``separation``: :func:`separation_from_centre` of these stars, where
    the caller has it (made here otherwise: one pass, not one per peak).
    """
    s = s or PeakSettings()
    e_pm = np.hypot(ast.e_pmra, ast.e_pmdec) / math.sqrt(2)
    if separation is None and peaks:
        separation = separation_from_centre(ast, priors)
    scored = []
    for p in peaks[: s.max_peaks]:
        core, control = _core_and_control(ast, e_pm, p)
        ra = dec = math.nan
        if ast.has_sky and core.size >= 5:
            ra, dec = sky_centre(ast.ra[core], ast.dec[core])
        about = ((float(priors.ra), float(priors.dec)) if priors.has_centre  # type: ignore[arg-type]
                 else (ra, dec))
        conc = _sky_concentration(ast, core, control, about, separation)
        weight = priors.weight(p.pmra, p.pmdec, p.parallax, pm_scale=p.pm_scale,
                               pm_sigma=s.pm_prior_sigma, plx_log_sigma=s.plx_prior_log_sigma)
        if math.isnan(conc):
            c_term = 0.5 if ast.has_sky else 1.0
        else:
            c_term = min(max(conc, 0.5), 3.0)
        scored.append(Peak(**{**p.__dict__, "n_core": int(core.size), "concentration": conc,
                              "prior_weight": weight, "ra": ra, "dec": dec,
                              "score": p.significance * c_term * weight**PRIOR_POWER}))
    return sorted(scored, key=lambda p: -p.score)
