"""Every significant group of the cone, how believable each is, and which one is the target.

The peak search (:mod:`~ocdec.methods.default.peaks`) finds overdensities in proper motion and
parallax. Here each becomes one or more *groups*:

- **Sky split** (:func:`sky_clumps`): the stars of a peak's core are binned on the sky against
  the same slab's stars of nearby motion (the field there); separate sky maxima are separate
  groups (the Orion Nebula Cluster and NGC 1977 share one motion and parallax 0.6 deg apart).
- **False-alarm probability** (:func:`false_alarm`): the detection statistic (significance x
  clipped sky concentration, the peak score without priors) of the field's best peak when it has
  no cluster, from a handful of resamples of the field itself: positions shuffled against the
  astrometry (no sky clustering) and each proper motion jittered by a few cluster widths (no
  clump in motion; the field's large-scale shape kept). A Gumbel law fitted to the resamples'
  maxima gives how often such a field reaches a group's statistic.
- **Target** (:func:`choose_target`): among believable groups compatible with the catalogue
  (:mod:`ocdec.verdict`), the one nearest it; without a catalogue value, the best score. None:
  the cluster is not found.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ocdec import verdict
from ocdec.methods.default.peaks import (
    KMS_PER_MASYR_KPC,
    Peak,
    PeakSettings,
    score_peaks,
    search_fields,
    separation_from_centre,
)
from ocdec.methods.default.sky import tangent_plane
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.priors import ClusterPriors
from ocdec.threads import available_threads, thread_map

log = logging.getLogger(__name__)

EULER_GAMMA = 0.5772156649


@dataclass(frozen=True)
class GroupSettings:
    n_resamples: int = 5  # field resamples behind the false-alarm probability
    jitter_widths: float = 3.0  # pm jitter of a resample, in cluster widths at the star's parallax
    sky_cells: int = 30  # sky grid across the field for the split
    sky_min_significance: float = 5.0  # a sky maximum must stand this far above its surroundings
    sky_min_separation: int = 3  # cells between two sky maxima of one peak
    sky_box: int = 7  # cells: the surroundings a sky maximum is measured against
    seed: int = 12345


@dataclass(frozen=True)
class Group:
    """One overdensity: its peak, its stars' mean astrometry and sky centre, how believable."""

    peak: Peak
    pmra: float
    pmdec: float
    parallax: float
    ra: float
    dec: float
    n_members: int
    significance: float
    statistic: float
    pm_width: float
    parallax_width: float
    false_alarm_probability: float = math.nan
    tension: dict | None = None

    @property
    def compatible(self) -> bool:
        return verdict.compatible(self.tension or {})

    @property
    def believable(self) -> bool:
        return not self.false_alarm_probability > verdict.MAX_FALSE_ALARM

    def row(self, index: int, target: bool) -> dict:
        t = self.tension or {}
        return {"group": index, "pmra": self.pmra, "pmdec": self.pmdec, "parallax": self.parallax,
                "ra": self.ra, "dec": self.dec, "n_members": self.n_members,
                "significance": self.significance,
                "false_alarm_probability": self.false_alarm_probability,
                "tension_centre": t.get("centre"), "tension_pm": t.get("pm"),
                "tension_parallax": t.get("parallax"), "compatible": self.compatible,
                "target": target, "known_as": "", "pm_width": self.pm_width,
                "parallax_width": self.parallax_width}


def statistic(peak: Peak) -> float:
    """The detection statistic: significance x sky concentration clipped to [0.5, 3] (the peak
    score without the priors)."""
    c = 1.0 if math.isnan(peak.concentration) else min(max(peak.concentration, 0.5), 3.0)
    return peak.significance * c


def _core(ast: Astrometry, peak: Peak) -> tuple[np.ndarray, np.ndarray]:
    in_slab = np.abs(ast.parallax - peak.parallax) < peak.plx_half_width
    dpm = np.hypot(ast.pmra - peak.pmra, ast.pmdec - peak.pmdec)
    return in_slab & (dpm < 1.5 * peak.pm_scale), in_slab & (dpm > 3 * peak.pm_scale) & (
        dpm < 6 * peak.pm_scale)


def field_plane(ast: Astrometry) -> tuple[np.ndarray, np.ndarray] | None:
    """Every star's tangent-plane offsets about the field's centre (a mean unit vector: safe
    across RA = 0 and near a pole); None without positions."""
    if not ast.has_sky:
        return None
    import pandas as pd

    from ocdec.methods.astrometry import sky_centre_and_r50

    c = sky_centre_and_r50(pd.DataFrame({"ra": ast.ra, "dec": ast.dec}))
    return tangent_plane(ast.ra, ast.dec, c["ra"], c["dec"])


def sky_clumps(plane: tuple[np.ndarray, np.ndarray] | None, core: np.ndarray,
               control: np.ndarray, s: GroupSettings) -> list[tuple[np.ndarray, float]]:
    """Separate sky maxima of the core stars: (mask of core stars within two cells of it,
    significance) for each, strongest first; empty where the core is not clumped on the sky.

    A maximum is measured against its surroundings: the core's own mean over a box of
    ``sky_box`` cells (so a second cluster beside a large one stands out of its wings, Orion) or
    the field there (the control ring's stars, scaled by the ratio of the areas in proper
    motion), whichever is higher."""
    if plane is None or core.sum() < 10:
        return []
    xi, eta = plane
    lo, hi = float(min(xi.min(), eta.min())), float(max(xi.max(), eta.max())) + 1e-9
    edges = np.linspace(lo, hi, s.sky_cells + 1)
    cell = edges[1] - edges[0]
    at = np.flatnonzero(core)
    hc, _, _ = np.histogram2d(xi[at], eta[at], bins=(edges, edges))
    hf, _, _ = np.histogram2d(xi[control], eta[control], bins=(edges, edges))
    # core disc (radius 1.5) over control ring (3 to 6) in proper motion: 2.25 / 27
    area_ratio = 2.25 / 27.0
    sm = ndimage.gaussian_filter(hc, 1.0, mode="constant") * 4 * math.pi
    field = ndimage.gaussian_filter(hf * area_ratio, 3.0, mode="constant") * 4 * math.pi
    bg = np.maximum(field, ndimage.uniform_filter(sm, size=s.sky_box, mode="constant"))
    sig = (sm - bg) / np.sqrt(bg + 1.0)
    size = 2 * s.sky_min_separation + 1
    peaks = (sig == ndimage.maximum_filter(sig, size=size)) & (sig > s.sky_min_significance)
    out = []
    for i, j in sorted(zip(*np.nonzero(peaks), strict=True), key=lambda ij: -sig[ij]):
        x0, y0 = edges[i] + cell / 2, edges[j] + cell / 2
        # measured for the core's stars alone (a pass over every star per maximum was most of
        # this function in a field of a million stars)
        near = np.zeros_like(core)
        near[at[np.hypot(xi[at] - x0, eta[at] - y0) < 2 * cell]] = True
        if near.sum() >= 5:
            out.append((near, float(sig[i, j])))
    return out


def _group(ast: Astrometry, peak: Peak, stars: np.ndarray, significance: float,
           centre_stars: np.ndarray | None = None) -> Group:
    """A group of ``stars`` (its sky centre from ``centre_stars`` where given)."""
    import pandas as pd

    from ocdec.methods.astrometry import sky_centre_and_r50

    ra = dec = math.nan
    if ast.has_sky:
        at = stars if centre_stars is None else centre_stars
        c = sky_centre_and_r50(pd.DataFrame({"ra": ast.ra[at], "dec": ast.dec[at]}))
        ra, dec = c["ra"], c["dec"]
    pm_w = float(np.hypot(np.std(ast.pmra[stars]), np.std(ast.pmdec[stars])) / math.sqrt(2))
    return Group(peak=peak, pmra=float(np.median(ast.pmra[stars])),
                 pmdec=float(np.median(ast.pmdec[stars])),
                 parallax=float(np.median(ast.parallax[stars])), ra=ra, dec=dec,
                 n_members=int(stars.sum()), significance=significance,
                 statistic=statistic(peak), pm_width=pm_w,
                 parallax_width=float(np.std(ast.parallax[stars])))


def describe_groups(ast: Astrometry, peaks: list[Peak], priors: ClusterPriors,
                    s: GroupSettings) -> list[Group]:
    """The groups of scored peaks (a peak split on the sky gives one group per clump)."""
    groups: list[Group] = []
    plane = field_plane(ast) if peaks else None
    for peak in peaks:
        core, control = _core(ast, peak)
        if core.sum() < 2:
            continue
        clumps = sky_clumps(plane, core, control, s)
        if len(clumps) > 1:
            # the clumps share the peak's statistic (and so its false-alarm probability)
            groups.extend(_group(ast, peak, near, sig) for near, sig in clumps)
        else:
            # one group: the whole core, centred on its sky maximum (the core's mean position
            # leans towards the field's centre)
            groups.append(_group(ast, peak, core, peak.significance,
                                 clumps[0][0] if clumps else None))
    return [replace(g, tension=verdict.prior_tension(priors, g.pmra, g.pmdec, g.parallax,
                                                      g.ra, g.dec)) for g in groups]


def _resamples(ast: Astrometry, peak_settings: PeakSettings, s: GroupSettings
               ) -> tuple[list[Astrometry], list[np.ndarray]]:
    """``n_resamples`` cluster-free versions of the field: positions shuffled against the
    astrometry, proper motions jittered by ``jitter_widths`` cluster widths (drawn in turn from
    ``seed``: the same resamples however many threads search them); and the permutation that
    shuffled each one's positions."""
    rng = np.random.default_rng(s.seed)
    # a cluster's width at each star's parallax, as the peak search's cell
    speed = np.clip(ast.parallax, 0.0, None) / KMS_PER_MASYR_KPC * peak_settings.sigma_v_kms
    width = np.hypot(speed, np.hypot(ast.e_pmra, ast.e_pmdec) / math.sqrt(2))
    nulls, perms = [], []
    for _ in range(s.n_resamples):
        perm = rng.permutation(len(ast))
        perms.append(perm)
        nulls.append(replace(
            ast, pmra=ast.pmra + s.jitter_widths * width * rng.standard_normal(len(ast)),
            pmdec=ast.pmdec + s.jitter_widths * width * rng.standard_normal(len(ast)),
            ra=ast.ra[perm], dec=ast.dec[perm]))
    return nulls, perms


def search_with_nulls(ast: Astrometry, priors: ClusterPriors, peak_settings: PeakSettings,
                      s: GroupSettings) -> tuple[list[Peak], np.ndarray]:
    """The field's scored peaks (:func:`~ocdec.methods.default.peaks.search_peaks`, then
    :func:`~ocdec.methods.default.peaks.score_peaks` with the priors) and the best statistic of
    each cluster-free resample (:func:`_resamples`; 0: no peak at all), searched alike and scored
    without the catalogue's weight.

    The searches share each slab's plan (the resamples keep parallaxes and errors: made once,
    searched in every field, then dropped, :func:`~ocdec.methods.default.peaks.search_fields`)
    and run side by side in threads: numpy and scipy.ndimage release the GIL, and
    :func:`ocdec.threads.available_threads` keeps a Snakemake job to its ``threads``. The
    results are the same with one thread or many."""
    centre = priors.centre_only()
    nulls, perms = _resamples(ast, peak_settings, s)
    fields = [ast, *nulls]
    # the (field, slab) maps use every thread the job has, the scoring one per field
    with thread_map(available_threads()) as tmap:
        raw = search_fields(fields, priors, peak_settings, tmap, orders=[None, *perms])
        # the resamples' positions are the field's shuffled, and so are their separations
        # (permuted as each is scored: six at once were 480 MB on 10 M stars)
        separation = separation_from_centre(ast, priors)

        def score(i: int, stars: Astrometry, field_peaks: list[Peak]) -> list[Peak]:
            own = separation if separation is None or i == 0 else separation[perms[i - 1]]
            return score_peaks(stars, field_peaks, priors if i == 0 else centre, peak_settings,
                               own)

        found = list(tmap(score, range(len(fields)), fields, raw))
    maxima = [max((statistic(p) for p in peaks), default=0.0) for peaks in found[1:]]
    return found[0], np.asarray(maxima, float)


def false_alarm(stat: float, maxima: np.ndarray, min_spread: float = 1.0) -> float:
    """P(a cluster-free field's best statistic >= ``stat``): a Gumbel law fitted to ``maxima`` by
    moments (its spread at least ``min_spread``, so identical resamples do not claim certainty)."""
    if maxima.size == 0:
        return math.nan
    beta = max(float(np.std(maxima, ddof=1)) if maxima.size > 1 else 0.0, min_spread) \
        * math.sqrt(6) / math.pi
    mu = float(np.mean(maxima)) - EULER_GAMMA * beta
    return float(-np.expm1(-math.exp(-(stat - mu) / beta)))


# Groups whose combined tension is within this of the nearest count as equally near (the same
# distant cluster found in two parallax slabs: a Dias distance, often a factor 2 off, must not
# pick the weaker copy); the strongest of them is the target.
TENSION_TIE = 0.25


def choose_target(groups: list[Group], priors: ClusterPriors) -> Group | None:
    """The believable group compatible with the catalogue's cluster that is nearest it (combined
    tension, ties within :data:`TENSION_TIE` to the strongest); with no catalogue value, the one
    with the best peak score. None: not found."""
    ok = [g for g in groups if g.believable and g.compatible]
    if not ok:
        return None
    if all(not any(v is not None for v in (g.tension or {}).values()) for g in ok):
        return max(ok, key=lambda g: (g.peak.score, g.significance))
    tension = {id(g): verdict.combined_tension(g.tension or {}) for g in ok}
    nearest = min(tension.values())
    near = [g for g in ok if tension[id(g)] <= nearest + TENSION_TIE]
    return max(near, key=lambda g: (g.statistic, g.significance))


def not_found_reason(groups: list[Group], priors: ClusterPriors) -> str:
    """Why no group is the target: none, none believable, or none compatible (the nearest)."""
    if not groups:
        return "no overdensity in proper motion and parallax stands out of the field"
    believable = [g for g in groups if g.believable]
    if not believable:
        best = min(groups, key=lambda g: g.false_alarm_probability)
        return (f"no group is believable: the best has false-alarm probability "
                f"{best.false_alarm_probability:.2g} (> {verdict.MAX_FALSE_ALARM:g})")
    nearest = min(believable, key=lambda g: verdict.combined_tension(g.tension or {}))
    return ("no group is compatible with the catalogue's cluster; the nearest (pm "
            f"{nearest.pmra:.2f} {nearest.pmdec:.2f} mas/yr, parallax {nearest.parallax:.3f} mas) "
            f"lies at {verdict.describe_tension(nearest.tension or {})}")


def territory(ast: Astrometry, groups: list[Group], target: Group) -> Astrometry:
    """The stars the membership model sees: all of them, or, where the target's peak was split on
    the sky, those nearer the target's centre than any sibling's (else the mixture, centred on
    the peak's strongest clump, would take the siblings' stars)."""
    siblings = [g for g in groups if g.peak is target.peak and g is not target]
    if not siblings or not ast.has_sky or not np.isfinite([target.ra, target.dec]).all():
        return ast
    from ocdec.methods.default.sky import angular_separation_deg

    own = angular_separation_deg(ast.ra, ast.dec, target.ra, target.dec)
    keep = np.ones(len(ast), bool)
    for g in siblings:
        keep &= own <= angular_separation_deg(ast.ra, ast.dec, g.ra, g.dec)
    log.info("target split from %d sibling group(s) on the sky: %d of %d stars are its territory",
             len(siblings), int(keep.sum()), len(ast))
    return Astrometry(**{k: (v[keep] if isinstance(v, np.ndarray) else v)
                         for k, v in ast.__dict__.items()})
