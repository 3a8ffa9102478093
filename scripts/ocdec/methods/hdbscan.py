"""HDBSCAN, the method of Hunt & Reffert (2023), as a plug-in.

scikit-learn's :class:`sklearn.cluster.HDBSCAN` on robust-scaled (pmra, pmdec, parallax) plus
the stars' sky position (offsets on the tangent plane at the field's centre, robust-scaled too),
as Hunt & Reffert (2023, A&A 673, A114) run it on Gaia DR3 fields. HDBSCAN returns every group it
finds; the cluster is picked the way ocdec's default method picks its peak: each group's score is
sqrt(stars) x its sky concentration (clipped to [0.5, 3]) x its compatibility with the catalogue's
proper motion and parallax (:meth:`ocdec.methods.priors.ClusterPriors.weight`). Members are the
picked group's stars (Hunt & Reffert's definition); ``p_member`` is HDBSCAN's membership strength
(1 in the group's core, falling towards its edge), 0 outside the group.

HDBSCAN's cost grows about as n^2 (README, Performance: 944 s for 319,000 stars on 2 cores),
so it is opt-in (``characterize.methods: [default, thesis, hdbscan]``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.methods.astrometry import ASTROMETRY, cluster_parameters, sky_centre_and_r50
from ocdec.methods.base import MethodResult
from ocdec.methods.priors import ClusterPriors
from ocdec.verdict import groups_from_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HdbscanSettings:
    min_cluster_size: int = 10  # as Hunt & Reffert (2023)
    min_samples: int = 10
    # "eom" (excess of mass): measured better than "leaf" here, where one group must hold the
    # whole cluster (leaf split Praesepe, recall 0.33); Hunt & Reffert merge leaves afterwards.
    cluster_selection_method: str = "eom"
    use_sky: bool = True  # add the tangent-plane position to the features
    pm_prior_sigma: float = 3.0  # mas/yr, as the default method's peak scoring
    plx_prior_log_sigma: float = 0.25

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2 or self.min_samples < 1:
            raise OcdecError("hdbscan needs min_cluster_size >= 2 and min_samples >= 1, got "
                             f"{self.min_cluster_size} and {self.min_samples}")
        if self.cluster_selection_method not in ("leaf", "eom"):
            raise OcdecError("hdbscan cluster_selection_method must be 'leaf' or 'eom', got "
                             f"{self.cluster_selection_method!r}")


def hdbscan_features(stars: pd.DataFrame, use_sky: bool) -> tuple[np.ndarray, np.ndarray]:
    """Robust-scaled features of the stars with complete astrometry, and which rows those are."""
    from sklearn.preprocessing import RobustScaler

    cols = [stars[c].to_numpy(float) for c in ASTROMETRY]
    if use_sky and {"ra", "dec"} <= set(stars.columns):
        centre = sky_centre_and_r50(stars)
        x, y = tangent_offsets(stars["ra"].to_numpy(float), stars["dec"].to_numpy(float),
                               centre["ra"], centre["dec"])
        cols += [x, y]
    raw = np.column_stack(cols)
    usable = np.isfinite(raw).all(axis=1)
    return RobustScaler().fit_transform(raw[usable]), usable


def tangent_offsets(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic offsets (deg) from (ra0, dec0): a cone's geometry without the RA = 0 seam."""
    ra, dec = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cos_c = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    x = np.cos(dec) * np.sin(ra - a0) / cos_c
    y = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cos_c
    return np.degrees(x), np.degrees(y)


def group_scores(stars: pd.DataFrame, labels: np.ndarray, priors: ClusterPriors,
                 settings: HdbscanSettings) -> pd.DataFrame:
    """One row per HDBSCAN group: size, median astrometry, sky concentration, prior weight, score.

    Concentration: the median distance of all stars from the group's centre (the catalogue's
    where known) over the group's own, as the default method's peak scoring."""
    rows = []
    has_sky = {"ra", "dec"} <= set(stars.columns)
    for g in np.unique(labels[labels >= 0]):
        sel = stars.loc[labels == g]
        med = {c: float(np.nanmedian(sel[c])) for c in ASTROMETRY}
        pm_scale = float(np.hypot(np.nanstd(sel["pmra"]), np.nanstd(sel["pmdec"])))
        conc = math.nan
        if has_sky:
            if priors.has_centre:
                centre = {"ra": float(priors.ra), "dec": float(priors.dec)}  # type: ignore[arg-type]
            else:
                centre = sky_centre_and_r50(sel)
            r_group = _median_separation(sel, centre)
            r_all = _median_separation(stars, centre)
            conc = r_all / max(r_group, 1e-6)
        if med["parallax"] > 0 or priors.parallax is None:
            log_weight = priors.log_weight(med["pmra"], med["pmdec"], med["parallax"],
                                           pm_scale=pm_scale, pm_sigma=settings.pm_prior_sigma,
                                           plx_log_sigma=settings.plx_prior_log_sigma)
        else:  # a group behind the catalogue's (positive) parallax prior cannot be the cluster
            log_weight = -math.inf
        c_term = 1.0 if math.isnan(conc) else min(max(conc, 0.5), 3.0)
        rows.append({"group": int(g), "n": len(sel), **med, "pm_scale": pm_scale,
                     "concentration": conc, "log_prior_weight": log_weight,
                     "log_score": 0.5 * math.log(len(sel)) + math.log(c_term) + log_weight})
    table = pd.DataFrame(rows, columns=["group", "n", *ASTROMETRY, "pm_scale", "concentration",
                                        "log_prior_weight", "log_score"])
    return table.sort_values("log_score", ascending=False, kind="stable").reset_index(drop=True)


def _median_separation(stars: pd.DataFrame, centre: dict[str, float]) -> float:
    x, y = tangent_offsets(stars["ra"].to_numpy(float), stars["dec"].to_numpy(float),
                           centre["ra"], centre["dec"])
    return float(np.nanmedian(np.hypot(x, y)))


class HdbscanMethod:
    """:class:`ocdec.methods.base.Method` for HDBSCAN (deterministic: seeds are not used)."""

    name = "hdbscan"
    settings_class = HdbscanSettings

    def default_settings(self) -> HdbscanSettings:
        return HdbscanSettings()

    def run(self, stars: pd.DataFrame, priors: ClusterPriors, settings: HdbscanSettings,
            seeds: Sequence[int]) -> MethodResult:
        from sklearn.cluster import HDBSCAN

        t0 = time.perf_counter()
        x, usable = hdbscan_features(stars, settings.use_sky)
        if usable.sum() <= settings.min_cluster_size:
            raise OcdecError(f"only {int(usable.sum())} stars with complete astrometry; hdbscan "
                             f"needs more than min_cluster_size = {settings.min_cluster_size}")
        model = HDBSCAN(min_cluster_size=settings.min_cluster_size,
                        min_samples=settings.min_samples,
                        cluster_selection_method=settings.cluster_selection_method,
                        copy=False).fit(x)
        fit_s = time.perf_counter() - t0
        n = len(stars)
        labels = np.full(n, -1, np.int64)
        labels[usable] = model.labels_
        strength = np.zeros(n)
        strength[usable] = model.probabilities_
        scores = group_scores(stars, labels, priors, settings)
        if scores.empty or not np.isfinite(scores["log_score"].iloc[0]):
            # not found is a result (ocdec.verdict): no members, and why
            none = np.zeros(n, bool)
            return MethodResult(
                p_member=np.zeros(n), member=none, group=labels,
                parameters=cluster_parameters(stars, none),
                summary={"seeds": [], "seed_jaccard": None, "seed_jaccard_min": None,
                         "stages": {"hdbscan": fit_s}, "n_groups": int(len(scores)),
                         "reason": f"HDBSCAN found {len(scores)} groups, none compatible with "
                                   "the catalogue's cluster"},
                groups=groups_from_labels(stars, labels, priors))
        best = scores.iloc[0]
        member = labels == int(best["group"])
        p_member = np.where(member, strength, 0.0)
        log.info("hdbscan: %d groups; cluster is group %d (%d stars, pm %.3f %.3f, parallax "
                 "%.3f, concentration %.2f, log prior weight %.1f); %.1f s", len(scores),
                 int(best["group"]), int(best["n"]), best["pmra"], best["pmdec"],
                 best["parallax"], best["concentration"], best["log_prior_weight"], fit_s)
        summary = {"seeds": [], "seed_jaccard": 1.0, "seed_jaccard_min": 1.0,
                   "stages": {"hdbscan": fit_s, "pick": time.perf_counter() - t0 - fit_s},
                   "n_groups": int(len(scores)), "cluster_group": int(best["group"]),
                   "groups": scores.head(10).to_dict("records")}
        return MethodResult(p_member=p_member, member=member, group=labels,
                            parameters=cluster_parameters(stars, member), summary=summary,
                            groups=groups_from_labels(stars, labels, priors, int(best["group"])))


METHOD = HdbscanMethod()
