"""Thesis mode: the original method, reproduced step by step, for the comparison rows of reports.

1. Features pmra/parallax, pmdec/parallax, their modulus and the parallax, min-max scaled.
2. K-Means for k = 2..10; k chosen by the (sampled) silhouette score.
3. DEC with that k (hidden layers [50, 50, 40]): autoencoder pretraining, K-Means centroids in the
   latent space, self-training on the target distribution. By default on every star, as the
   thesis did. ``dec_max_stars`` (opt-in) trains on a seeded random sample of at most that many
   stars and lets the trained model assign every star: about three times faster on the Hyades
   cone, but the k = 2 split came out broader there (measured over five seeds; README,
   Performance), so it is a speed setting, not the reproduction.
4. The cluster's group, then the 0.1 / 0.9 quantile filter: inside each group, stars outside the
   0.1 and 0.9 quantiles of any feature are dropped.

The thesis picked the cluster's group by eye. Here it is picked automatically
(:func:`pick_cluster_group`): with a catalogue prior, the group of the densest place in
(pmra, pmdec, parallax) near the prior, each axis in units of the field's robust spread; with no
prior, the group that is most concentrated in those three quantities. Three selections come out:
K-Means (the chosen K-Means group), DEC (the chosen DEC group) and DEC filtered (DEC after the
quantile filter).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.methods.astrometry import ASTROMETRY, MAD_TO_SIGMA, cluster_parameters
from ocdec.methods.base import MethodResult
from ocdec.methods.dec import DecResult, DecSettings, fit_dec, predict
from ocdec.methods.features import THESIS_FEATURES, build_features, feature_values
from ocdec.methods.kmeans import K_VALUES, KMeansSweep, kmeans_sweep
from ocdec.methods.priors import ClusterPriors
from ocdec.methods.registry import THESIS_COLUMNS

log = logging.getLogger(__name__)

MEMBER_COLUMNS = ["group", "p_member", "member", "kmeans_group", "kmeans_member", "dec_group",
                  "dec_member", "dec_filtered_member"]


@dataclass(frozen=True)
class ThesisSettings:
    features: tuple[str, ...] = THESIS_FEATURES
    scaling: str = "minmax"
    k_values: tuple[int, ...] = K_VALUES
    silhouette_sample: int | None = 10_000
    kmeans_fit_sample: int | None = 50_000
    kmeans_n_init: int = 4
    dec: DecSettings = field(default_factory=DecSettings)
    dec_max_stars: int | None = None  # DEC trains on a seeded sample of at most this many
    quantiles: tuple[float, float] = (0.1, 0.9)
    n_neighbours: int = 20  # neighbours that define density and vote (pick_cluster_group)
    prior_radius: float = 1.0  # search radius around a prior, in units of the field's spread
    min_group_stars: int = 10  # smaller groups are never "the cluster" in the no-prior rule

    def __post_init__(self) -> None:
        if self.dec_max_stars is not None and self.dec_max_stars < 2:
            raise OcdecError(f"thesis dec_max_stars must be >= 2 or null, got {self.dec_max_stars}")
        lo, hi = self.quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise OcdecError(
                f"thesis quantiles must satisfy 0 <= low < high <= 1, got {self.quantiles}"
            )


@dataclass
class ThesisResult:
    members: pd.DataFrame  # index of the input frame; MEMBER_COLUMNS
    selections: dict[str, dict[str, Any]]  # kmeans, dec, dec_filtered -> cluster_parameters
    kmeans_k: int
    silhouette: pd.DataFrame  # k, silhouette
    kmeans_group: int  # the K-Means group taken as the cluster
    dec_group: int  # the DEC group taken as the cluster
    history: pd.DataFrame  # DEC training curve (seed, phase, epoch, loss, label_change)
    stages: dict[str, float]  # seconds per stage
    group_rule: str  # "prior" or "concentration"
    dec: DecResult | None = None

    def summary(self) -> dict[str, Any]:
        """The thesis-specific keys of summary.json (top-level numbers are dec_filtered's)."""
        return {
            "selections": self.selections,
            "kmeans_k": self.kmeans_k,
            "silhouette": {str(int(k)): float(s) for k, s in  # JSON object keys are strings
                           zip(self.silhouette["k"], self.silhouette["silhouette"], strict=True)},
            "kmeans_group": self.kmeans_group,
            "dec_group": self.dec_group,
            "group_rule": self.group_rule,
        }


def _robust_scale(values: np.ndarray) -> float:
    """MAD-based spread, falling back to the standard deviation, then 1 (never zero)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    s = MAD_TO_SIGMA * float(np.median(np.abs(values - np.median(values))))
    if not s > 0:
        s = float(values.std())
    return s if s > 0 else 1.0


def _prior_axes(prior: Mapping[str, float | None] | None) -> dict[str, float]:
    if not prior:
        return {}
    out = {}
    for name in ASTROMETRY:
        value = prior.get(name)
        if value is not None and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def pick_cluster_group(
    astrometry: pd.DataFrame,
    groups: np.ndarray,
    prior: Mapping[str, float | None] | None = None,
    *,
    n_neighbours: int = 20,
    prior_radius: float = 1.0,
    min_group_stars: int = 10,
) -> tuple[int, str]:
    """Which group is the open cluster; returns (group, rule used).

    Distances are in (pmra, pmdec, parallax), each axis divided by the field's robust spread so
    that mas/yr and mas compare. With a prior (any of pmra, pmdec, parallax; catalogue proper
    motions can be off by several mas/yr): among the stars within ``prior_radius`` of the prior
    (in the axes it has; at least the 200 nearest), take the one in the densest place (smallest
    distance to its ``n_neighbours``-th neighbour); its neighbours vote with their group. That finds
    the cluster's peak near the prior rather than whatever field stars sit exactly at the prior.
    Without a prior: the group (of at least ``min_group_stars`` stars) with the smallest robust
    volume, the product of the MAD spreads of pmra, pmdec and parallax.
    """
    from sklearn.neighbors import NearestNeighbors

    groups = np.asarray(groups)
    values = astrometry.reindex(columns=list(ASTROMETRY)).to_numpy(dtype=float)
    ok = (groups >= 0) & np.isfinite(values).all(axis=1)
    if not ok.any():
        raise OcdecError("no star was clustered, so no group can be the cluster")
    axes = _prior_axes(prior)
    if axes:
        v = values[ok]
        v = v / np.array([_robust_scale(v[:, i]) for i in range(v.shape[1])])
        g = groups[ok]
        cols = [ASTROMETRY.index(c) for c in axes]
        target = np.array([axes[c] for c in axes]) / np.array(
            [_robust_scale(values[ok][:, i]) for i in cols])
        d = np.sqrt(((v[:, cols] - target) ** 2).sum(axis=1))
        near = np.flatnonzero(d <= prior_radius)
        if near.size < 200:
            near = np.argsort(d, kind="stable")[:200]
        k = min(n_neighbours + 1, len(v))
        dist, idx = NearestNeighbors(n_neighbors=k).fit(v).kneighbors(v[near])
        densest = int(np.argmin(dist[:, -1]))
        votes = np.bincount(g[idx[densest]])
        return int(votes.argmax()), "prior"
    best, best_volume = -1, math.inf
    for label in np.unique(groups[ok]):
        sel = values[ok & (groups == label)]
        if len(sel) < min_group_stars:
            continue
        volume = math.prod(_robust_scale(sel[:, i]) for i in range(sel.shape[1]))
        if volume < best_volume:
            best, best_volume = int(label), volume
    if best < 0:
        raise OcdecError(f"no group has at least {min_group_stars} stars to be the cluster")
    return best, "concentration"


def quantile_filter(
    values: np.ndarray, groups: np.ndarray, quantiles: tuple[float, float]
) -> np.ndarray:
    """True for stars inside [low, high] quantiles of every feature column within their own group
    (the thesis' cleaning step); False for unclustered stars (group < 0)."""
    lo_q, hi_q = quantiles
    keep = np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups[groups >= 0]):
        sel = groups == g
        v = values[sel]
        lo, hi = np.quantile(v, lo_q, axis=0), np.quantile(v, hi_q, axis=0)
        keep[sel] = ((v >= lo) & (v <= hi)).all(axis=1)
    return keep


def dec_training_sample(n: int, max_stars: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices of the seeded sample DEC trains on; None when all ``n`` rows are used."""
    if max_stars is None or n <= max_stars:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_stars, replace=False))


def _fit_dec_sampled(x: np.ndarray, k: int, settings: ThesisSettings, seed: int) -> DecResult:
    """DEC trained on at most ``settings.dec_max_stars`` stars (a seeded sample), q and labels of
    every star from the trained model; on the whole input when it is small enough."""
    sample = dec_training_sample(len(x), settings.dec_max_stars, seed)
    if sample is None:
        return fit_dec(x, k, settings.dec, seed)
    dec = fit_dec(x[sample], k, settings.dec, seed)
    if dec.model is None:
        raise OcdecError("DEC returned no trained model to assign the stars outside its sample")
    latent, q = predict(dec.model, x, float(settings.dec.alpha), settings.dec.predict_chunk)
    log.info("thesis: DEC trained on a sample of %d of %d stars, then assigned all", len(sample),
             len(x))
    # initial_labels keep the training sample's rows (they describe the training run).
    return replace(dec, q=q, labels=q.argmax(axis=1), latent=latent)


def run_thesis(
    frame: pd.DataFrame,
    settings: ThesisSettings | None = None,
    seed: int = 0,
    prior: Mapping[str, float | None] | None = None,
) -> ThesisResult:
    """The thesis method on one region's clean star table; see the module docstring.

    ``prior`` may hold the catalogue's ``pmra``, ``pmdec``, ``parallax`` (missing or NaN entries are
    ignored); it only decides which group is the cluster, never the clustering itself.
    """
    settings = settings or ThesisSettings()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    x, usable = build_features(frame, settings.features, settings.scaling)
    n_usable = int(usable.sum())
    if n_usable <= max(settings.k_values):
        raise OcdecError(f"thesis mode needs more than {max(settings.k_values)} stars with finite "
                         f"features, got {n_usable}")
    stages["features"] = time.perf_counter() - t0
    log.info("thesis: %d of %d stars usable; features %s (%s scaling)", n_usable, len(frame),
             list(settings.features), settings.scaling)

    t0 = time.perf_counter()
    sweep: KMeansSweep = kmeans_sweep(x, settings.k_values, seed,
                                      silhouette_sample=settings.silhouette_sample,
                                      fit_sample=settings.kmeans_fit_sample,
                                      n_init=settings.kmeans_n_init)
    stages["kmeans"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dec = _fit_dec_sampled(x, sweep.k, settings, seed)
    stages["dec"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = len(frame)
    kmeans_groups = np.full(n, -1, dtype=np.int64)
    kmeans_groups[usable] = sweep.labels
    dec_groups = np.full(n, -1, dtype=np.int64)
    dec_groups[usable] = dec.labels
    astrometry = frame.reindex(columns=list(ASTROMETRY)).reset_index(drop=True)
    pick = {"n_neighbours": settings.n_neighbours, "prior_radius": settings.prior_radius,
            "min_group_stars": settings.min_group_stars}
    kmeans_g, rule = pick_cluster_group(astrometry, kmeans_groups, prior, **pick)
    dec_g, _ = pick_cluster_group(astrometry, dec_groups, prior, **pick)
    feats = np.full((n, len(settings.features)), np.nan)
    feats[usable] = feature_values(frame.loc[usable], settings.features)
    inside = quantile_filter(feats, dec_groups, settings.quantiles)
    q_cluster = np.zeros(n, dtype=np.float32)
    q_cluster[usable] = dec.q[:, dec_g]
    members = pd.DataFrame(index=frame.index)
    members["group"] = dec_groups
    members["kmeans_group"] = kmeans_groups
    members["kmeans_member"] = kmeans_groups == kmeans_g
    members["dec_group"] = dec_groups
    members["dec_member"] = dec_groups == dec_g
    members["dec_filtered_member"] = members["dec_member"].to_numpy() & inside
    # DEC's soft assignment to the cluster's group; zero where the thesis' filter drops the star,
    # so that member (the thesis' final selection, DEC filtered) and p_member tell the same story.
    members["p_member"] = np.where(members["dec_filtered_member"], q_cluster, 0.0).astype(float)
    members["member"] = members["dec_filtered_member"]
    members = members[MEMBER_COLUMNS]
    selections = {
        "kmeans": cluster_parameters(frame, members["kmeans_member"].to_numpy()),
        "dec": cluster_parameters(frame, members["dec_member"].to_numpy()),
        "dec_filtered": cluster_parameters(frame, members["dec_filtered_member"].to_numpy()),
    }
    stages["selection"] = time.perf_counter() - t0
    log.info("thesis: k=%d; cluster is K-Means group %d (%d stars), DEC group %d (%d stars, %d "
             "after the quantile filter); rule %s", sweep.k, kmeans_g,
             selections["kmeans"]["n_members"], dec_g, selections["dec"]["n_members"],
             selections["dec_filtered"]["n_members"], rule)
    return ThesisResult(
        members=members,
        selections=selections,
        kmeans_k=sweep.k,
        silhouette=sweep.scores[["k", "silhouette"]].copy(),
        kmeans_group=kmeans_g,
        dec_group=dec_g,
        history=dec.history,
        stages=stages,
        group_rule=rule,
        dec=dec,
    )


class ThesisMethod:
    """The thesis's method as a plug-in (:class:`ocdec.methods.base.Method`): one seed (the
    first); the catalogue's proper motion and parallax only pick the cluster's group."""

    name = "thesis"
    settings_class = ThesisSettings

    def default_settings(self) -> ThesisSettings:
        return ThesisSettings()

    def run(self, stars: pd.DataFrame, priors: ClusterPriors, settings: ThesisSettings,
            seeds: Sequence[int]) -> MethodResult:
        seed = int(seeds[0])
        prior = {"pmra": priors.pmra, "pmdec": priors.pmdec, "parallax": priors.parallax}
        thesis = run_thesis(stars, settings, seed=seed, prior=prior)
        tm = thesis.members.reset_index(drop=True)
        summary = {"seeds": [seed], "seed_jaccard": 1.0, "seed_jaccard_min": 1.0,
                   "stages": thesis.stages, **thesis.summary()}
        return MethodResult(
            p_member=tm["p_member"].to_numpy(float), member=tm["member"].to_numpy(bool),
            group=tm["group"].to_numpy(np.int64),
            parameters=thesis.selections["dec_filtered"], history=thesis.history,
            summary=summary, columns=tm[list(THESIS_COLUMNS)],
            tables={"silhouette": thesis.silhouette})


METHOD = ThesisMethod()
