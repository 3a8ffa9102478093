"""The default membership method: find the cluster's peak, fit cluster + field around it, DEC.

Plain clustering of a whole cone does not isolate a cluster of a few hundred stars among 10^5: the
field dominates every centroid. So the default works in steps, one module each:

0. **Local frame** (:mod:`~ocdec.methods.default.stars`): proper motions on the tangent plane at
   the catalogue's centre, where the frame turns across the cluster (near the pole, wide cones).
1. **Peak search** (:mod:`~ocdec.methods.default.peaks`): overdensities in proper motion within
   parallax slabs, every star weighted by what its errors allow, in proper motion and on the sky;
   ranked by significance, sky concentration and the catalogue priors. They become
   the cone's **groups** (:mod:`~ocdec.methods.default.groups`: split on the sky, each with a
   false-alarm probability from field resamples); the target is the believable group compatible
   with the catalogue's cluster (:mod:`ocdec.verdict`), and without one the cluster is not found
   (no members, a reason: a result, not an error).
2. **Candidates and the initial split** (:mod:`~ocdec.methods.default.mixture`): around the chosen
   peak, a cluster + field mixture fitted by extreme deconvolution (each star's errors convolved
   in; the error model in :mod:`~ocdec.methods.default.stars`, the sky profile in
   :mod:`~ocdec.methods.default.sky`, the candidate window and whitening in
   :mod:`~ocdec.methods.default.window`). Its posterior is DEC's initialisation (and, with
   ``run_dec=False``, a fast stand-alone answer).
3. **DEC, the membership model** (:mod:`~ocdec.methods.default.dec_stage`): DEC with the weighted
   Student-t mixture layer on the whitened features, started from the mixture's member/field
   split, one run per seed. ``p_member`` is the seeds' mean of DEC's cluster soft assignment;
   ``member`` is p_member >= 0.5.
4. **Counts** (:mod:`~ocdec.methods.default.counts`): selected against sky-vouched member counts
   and the stability under a bootstrap of the field, in ``diagnostics`` for the verdict layer.

Measured (p_member >= 0.5 against CG18 / Gaia Coll. 2018, G <= 18, Dias priors): F1 Praesepe
0.965, alpha Per 0.970, NGC 188 0.978, Ruprecht 147 0.927, seed Jaccard 1.0. What was tried and did
not work is written down with each step.

This module holds the orchestration (:func:`run_default`), its settings and result, and the
plug-in (:data:`METHOD`, loaded by ``ocdec.methods.registry``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.methods.base import MethodResult
from ocdec.methods.default.counts import bootstrap_stability, sky_count_check
from ocdec.methods.default.dec_stage import dec_membership, default_dec_settings, seed_agreement
from ocdec.methods.default.groups import (
    Group,
    GroupSettings,
    choose_target,
    describe_groups,
    false_alarm,
    not_found_reason,
    search_with_nulls,
    territory,
)
from ocdec.methods.default.mixture import (
    ClusterModel,
    bootstrap_responsibilities,
    fit_cluster_model,
)
from ocdec.methods.default.peaks import Peak, PeakSettings
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.priors import ClusterPriors
from ocdec.verdict import GROUP_COLUMNS

__all__ = ["ClusterPriors", "DefaultMethod", "METHOD", "MemberSettings", "MembershipResult",
           "default_dec_settings", "run_default"]

log = logging.getLogger(__name__)

LOCAL_FRAME_MIN_ROTATION = 0.05  # rad: the turn of the frame across the cluster that needs it
# The mixture starts on the target group's peak; where its cluster ends farther than this many
# member spreads (the peak's pm_scale, the search's proper-motion cell) from it, the members
# would describe another clump of the field, so the region is not found. In the simulated thesis
# catalogue to 5 M rows, the 102 regions found on their simulated cluster moved 0-0.8 spreads
# (NGC 6514's wrong group 1.3); in the two wide, dense cones where the EM walked off (Collinder
# 173: 1.7 M candidates, 13.6 mas/yr; Collinder 359: 7.3 mas/yr) 7.6 and 2.7, with F1 0 against
# the simulated cluster.
MAX_MEMBERSHIP_DRIFT = 1.5
STABILITY_BOOTSTRAPS = 3  # field-bootstrap refits measuring stability (DEC path)


@dataclass(frozen=True)
class MemberSettings:
    """Settings of the default method (see the module docstring)."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    threshold: float = 0.5  # members: p_member >= threshold
    min_stars: int = 50  # fewer usable stars than this: an error, not a guess
    sigma_v_kms: float = 1.0
    window_sigma: float = 12.0  # candidate window, in member spreads (intrinsic + errors)
    use_sky: bool = True
    max_fit_stars: int = 20_000
    halo: bool = True  # a second, wider cluster component (heavier tails than one Gaussian)
    bootstrap_iter: int = 60  # EM iterations of each seed's bootstrap refit (warm started)
    bagging: bool = False  # p_member = mean of the seeds' bootstrap posteriors (else full fit)
    run_dec: bool = True
    dec_radius: float = 5.0  # DEC runs on candidates within this whitened radius ...
    dec_max_stars: int = 20_000  # ... and at most this many (nearest first)
    dec_field_groups: int = 4  # DEC models the field as this many groups (K-Means of the field)
    # DEC's encoder: one linear layer as wide as the features (the settings' ``hidden`` is then
    # replaced); a non-linear encoder distorts the whitened geometry (dec_stage's docstring).
    dec_linear_encoder: bool = True
    # DEC runs on stars whose error volume is at most e^this times the typical member's (log
    # det of intrinsic + error covariance, over its median among the mixture's members); beyond,
    # errors swamp the cluster's width, whitening squeezes such stars onto the cluster whatever
    # their motion, and the deconvolved mixture's posterior is kept. None: DEC on every star.
    dec_max_log_error_volume: float | None = 2.0
    peaks: PeakSettings = field(default_factory=PeakSettings)
    groups: GroupSettings = field(default_factory=GroupSettings)
    dec: Any = None  # ocdec.methods.dec.DecSettings; None: default_dec_settings()

    def __post_init__(self) -> None:
        if not self.seeds:
            raise OcdecError("at least one seed is needed")
        if not 0 < self.threshold <= 1:
            raise OcdecError(f"membership threshold must be in (0, 1], got {self.threshold}")


@dataclass
class MembershipResult:
    p_member: np.ndarray  # (n_input,) in [0, 1]; 0 for stars without astrometry or off-window
    member: np.ndarray  # (n_input,) bool
    group: np.ndarray  # (n_input,) int: 0 cluster (member), 1 field candidate, -1 not a candidate
    history: pd.DataFrame  # DEC training curve (empty when DEC is not run)
    seeds: list[int]
    seed_jaccard: float
    seed_jaccard_min: float
    peak: Peak | None  # the target's peak; None: not found
    peaks: list[Peak]
    model: dict[str, Any]
    stages: dict[str, float]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    target: Group | None = None
    reason: str = ""  # why not found


def _detect(ast: Astrometry, priors: ClusterPriors, settings: MemberSettings
            ) -> tuple[Group | None, list[Group], str]:
    """Every group of the cone with its false-alarm probability, the target among them (None:
    not found) and why not."""
    # Every parallax is searched, not just a bracket around the catalogue's: the groups table
    # lists every group of the cone, and a distant cluster's catalogue parallax may be far off.
    peaks, maxima = search_with_nulls(ast, priors, settings.peaks, settings.groups)
    groups = describe_groups(ast, peaks, priors, settings.groups)
    if groups:
        groups = [replace(g, false_alarm_probability=false_alarm(g.statistic, maxima))
                  for g in groups]
        log.info("field resamples' best statistic: %s", np.round(maxima, 1).tolist())
    target = choose_target(groups, priors)
    if target is None:
        reason = not_found_reason(groups, priors)
        log.info("not found: %s (%d groups)", reason, len(groups))
        return None, groups, reason
    peak = target.peak
    log.info("cluster peak: pm (%.3f, %.3f) mas/yr, parallax %.3f mas, significance %.1f, "
             "sky concentration %.2f, prior weight %.2f, false-alarm probability %.2g (%d groups)",
             peak.pmra, peak.pmdec, peak.parallax, peak.significance, peak.concentration,
             peak.prior_weight, target.false_alarm_probability, len(groups))
    return target, groups, ""


def run_default(stars: pd.DataFrame, priors: ClusterPriors | None = None,
                settings: MemberSettings | None = None) -> MembershipResult:
    """Members of the region's open cluster among ``stars`` (a canonical star table)."""
    priors = priors or ClusterPriors()
    settings = settings or MemberSettings()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    # Proper motions in the frame local to the catalogue's centre (else the field's): a cluster
    # near the pole or across a wide cone stays one compact group. Only where the frame turns
    # appreciably across the catalogue's cluster (its cone radius / 1.5): elsewhere the turn is
    # below the errors, and applied to a whole cone near the pole it made NGC 188's fit narrower
    # than its published (ICRS-selected) members (DEC F1 0.978 -> 0.968).
    centre = (float(priors.ra), float(priors.dec)) if priors.has_centre else None  # type: ignore[arg-type]
    radius = priors.radius_deg / 1.5 if priors.radius_deg is not None else None
    ast = Astrometry.from_stars(stars, centre, radius, LOCAL_FRAME_MIN_ROTATION)
    if len(ast) < settings.min_stars:
        raise OcdecError(f"only {len(ast)} stars with complete astrometry (pmra, pmdec, parallax);"
                         f" the default method needs at least {settings.min_stars}")
    target, groups, reason = _detect(ast, priors, settings)
    stages["peaks"] = time.perf_counter() - t0
    if target is None:
        return _not_found(len(stars), settings, groups, reason, stages)
    peak = target.peak
    ast = territory(ast, groups, target)

    t0 = time.perf_counter()
    model = fit_cluster_model(ast, peak, settings.sigma_v_kms, settings.window_sigma,
                              settings.use_sky, settings.max_fit_stars, settings.halo)
    stages["mixture"] = time.perf_counter() - t0
    log.info("mixture: %d candidates, cluster centre (%.3f, %.3f, %.4f), intrinsic sd (%.3f, "
             "%.3f, %.4f), %d EM iterations", model.candidates.size, *model.mean,
             *np.sqrt(np.diag(model.cov)), model.iterations)
    drift = membership_drift(model, peak)
    if not drift <= MAX_MEMBERSHIP_DRIFT:  # a NaN fit is no membership either
        reason = (f"the membership model left the group it started from: its cluster settled at "
                  f"pm ({model.mean[0]:.2f}, {model.mean[1]:.2f}) mas/yr, parallax "
                  f"{model.mean[2]:.3f} mas, {drift:.1f} member spreads ({peak.pm_scale:.2f} "
                  f"mas/yr each) from the group's pm ({peak.pmra:.2f}, {peak.pmdec:.2f}) "
                  f"(> {MAX_MEMBERSHIP_DRIFT:g}); its members would not be the group's")
        log.warning("not found: %s", reason)
        # the evidence stays in summary.json's diagnostics
        return _not_found(len(stars), settings, groups, reason, stages, {
            "membership_drift": drift, "rejected_peak": peak.as_dict(),
            "rejected_model": model.summary()})

    t0 = time.perf_counter()
    if settings.run_dec:
        # DEC is the membership model: p_member is the seeds' mean of its cluster q.
        dec = dec_membership(ast, model, settings)
        stages["dec"] = time.perf_counter() - t0
        used, p_cand, per_seed = dec.used, dec.p_candidates[dec.used], dec.per_seed
        history, diagnostics = dec.history, dec.diagnostics
    else:
        used, p_cand, per_seed, diagnostics = _mixture_membership(ast, model, settings)
        stages["ensemble"] = time.perf_counter() - t0
        history = pd.DataFrame(columns=["seed", "phase", "epoch", "loss", "label_change"])
    t0 = time.perf_counter()
    diagnostics = {"n_candidates": int(model.candidates.size), "membership_drift": drift,
                   **diagnostics,
                   **_count_diagnostics(ast, model, used, p_cand, per_seed, settings)}
    stages["counts"] = time.perf_counter() - t0
    p_member = np.zeros(len(stars))
    group = np.full(len(stars), -1, dtype=np.int64)
    rows = ast.rows[model.candidates[used]]
    p_member[rows] = np.clip(p_cand, 0.0, 1.0)
    group[rows] = np.where(p_cand >= settings.threshold, 0, 1)
    jac_mean, jac_min = seed_agreement([p >= settings.threshold for p in per_seed])
    return MembershipResult(
        p_member=p_member, member=p_member >= settings.threshold, group=group, history=history,
        seeds=list(settings.seeds), seed_jaccard=jac_mean, seed_jaccard_min=jac_min, peak=peak,
        peaks=_peaks_of(groups), model=model.summary(), stages=stages,
        diagnostics=diagnostics, groups=groups, target=target)


def _not_found(n: int, settings: MemberSettings, groups: list[Group], reason: str,
               stages: dict[str, float], diagnostics: dict[str, Any] | None = None
               ) -> MembershipResult:
    """No group is the catalogue's cluster: no members, the groups and the reason."""
    return MembershipResult(
        p_member=np.zeros(n), member=np.zeros(n, bool), group=np.full(n, -1, np.int64),
        history=pd.DataFrame(columns=["seed", "phase", "epoch", "loss", "label_change"]),
        seeds=list(settings.seeds), seed_jaccard=math.nan, seed_jaccard_min=math.nan, peak=None,
        peaks=_peaks_of(groups), model={}, stages=stages, diagnostics=diagnostics or {},
        groups=groups, reason=reason)


def membership_drift(model: ClusterModel, peak: Peak) -> float:
    """How far the mixture's cluster moved in proper motion from the peak it started on, in member
    spreads (the peak's ``pm_scale``)."""
    return math.hypot(model.mean[0] - peak.pmra, model.mean[1] - peak.pmdec) / peak.pm_scale


def _peaks_of(groups: list[Group]) -> list[Peak]:
    """The groups' peaks, once each (a peak split on the sky gives several groups)."""
    return list({id(g.peak): g.peak for g in groups}.values())


def _count_diagnostics(ast: Astrometry, model: ClusterModel, used: np.ndarray,
                       p_cand: np.ndarray, per_seed: list[np.ndarray], settings: MemberSettings
                       ) -> dict[str, Any]:
    """Selected against vouched-for member counts and the field-bootstrap stability
    (:mod:`~ocdec.methods.default.counts`), for the verdict layer."""
    selected = np.zeros(model.candidates.size, dtype=bool)
    selected[used[p_cand >= settings.threshold]] = True
    out: dict[str, Any] = {"p_member_sum": float(np.sum(p_cand)),
                           "selected_members": int(selected.sum())}
    out.update(sky_count_check(model, selected))
    if settings.run_dec:
        # DEC's seeds share the mixture's start and agree by construction: resample the field
        boots = [bootstrap_responsibilities(ast, model, seed, settings.max_fit_stars,
                                            settings.bootstrap_iter)
                 for seed in settings.seeds[:STABILITY_BOOTSTRAPS]]
    else:
        boots = per_seed
    out.update(bootstrap_stability(boots, settings.threshold))
    expected = out.get("expected_members")
    if expected is not None and expected > 0:
        out["selection_inflation"] = float(out["selected_members"] / expected)
    return out


def _mixture_membership(ast: Astrometry, model: ClusterModel, settings: MemberSettings
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], dict[str, Any]]:
    """The mixture alone (fast, for tests and as a cross-check): its full-data posterior, with
    bootstrap refits per seed measuring stability (``bagging``: their mean). Returns the
    candidates given a probability (all), their probability, each seed's and diagnostics."""
    per_seed = [bootstrap_responsibilities(ast, model, seed, settings.max_fit_stars,
                                           settings.bootstrap_iter)
                for seed in settings.seeds]
    p_cand = np.mean(per_seed, axis=0) if settings.bagging else model.p_mixture
    diagnostics: dict[str, Any] = {}
    return np.arange(model.candidates.size), p_cand, per_seed, diagnostics


class DefaultMethod:
    """ocdec's default method as a plug-in (:class:`ocdec.methods.base.Method`)."""

    name = "default"
    settings_class = MemberSettings

    def default_settings(self) -> MemberSettings:
        return MemberSettings(dec=default_dec_settings())

    def run(self, stars: pd.DataFrame, priors: ClusterPriors, settings: MemberSettings,
            seeds: Sequence[int]) -> MethodResult:
        from ocdec.methods.astrometry import cluster_parameters

        result = run_default(stars, priors, replace(settings, seeds=tuple(seeds)))
        target = result.target
        summary = {"seeds": result.seeds, "seed_jaccard": result.seed_jaccard,
                   "seed_jaccard_min": result.seed_jaccard_min, "stages": result.stages,
                   "peak": result.peak.as_dict() if result.peak else None, "model": result.model,
                   "diagnostics": result.diagnostics,
                   "false_alarm_probability": (target.false_alarm_probability if target
                                               else None)}
        if result.reason:
            summary["reason"] = result.reason
        groups = pd.DataFrame([g.row(i, g is target) for i, g in enumerate(result.groups)],
                              columns=list(GROUP_COLUMNS))
        return MethodResult(p_member=result.p_member, member=result.member, group=result.group,
                            parameters=cluster_parameters(stars, result.member),
                            history=result.history, summary=summary, groups=groups)


METHOD = DefaultMethod()
