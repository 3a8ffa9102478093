"""Step 3 of the default method: DEC as the membership model.

DEC (:func:`ocdec.methods.dec.fit_dec`) with the weighted Student-t mixture layer (mixing weights,
per-cluster scales; see ``ocdec.methods.dec``) runs on
:func:`ocdec.methods.default.window.dec_features` (whitened astrometric offsets, in which members
form a unit ball, plus sky offsets in Plummer scales), started from the deconvolved mixture's
member/field split, one run per seed (5 by default), each padded to a power-of-two bucket
(:func:`pad_bucket`) so the ensemble compiles once. ``p_member`` is the seeds' mean of DEC's
cluster soft assignment; the seeds' member sets give the agreement (:func:`seed_agreement`: mean
and minimum pairwise Jaccard). Stars whose errors swamp the cluster's width (error volume over e^2
times the typical member's) are not given to DEC: whitening by a star's own errors squeezes such a
star onto the cluster whatever its motion, and DEC's one Euclidean metric cannot tell it from a
member; they keep the deconvolved mixture's posterior (``dec_max_log_error_volume``). Where
DEC's members share less than half the mixture's it started from (:data:`DEC_MIN_JACCARD`), DEC
has left the cluster it was given and the mixture's posterior is kept (``dec_rejected``).

What did not work: plain DEC's layer on these features (one scale, no weights, 32-32-8 encoder)
shrank the cluster to half (F1 0.72 Praesepe, 0.80 NGC 188); the mixture layer with that
non-linear encoder still did (it distorts the whitened geometry); a linear encoder trained during
self-training collapsed single seeds (held-back TeachAstro Pleiades and M67: one seed of five with
half the members), so the encoder is linear and fixed, whitened on the initial cluster (which
makes pretraining it void: :func:`default_dec_settings`), and self-training moves the clustering
layer (centroids, scales, weights). One broad field kernel
let the cluster grow into a dense field; the field is four groups (:func:`field_split`). Giving
DEC every star, the deep TeachAstro NGC 188 field (G <= 20, 200k stars; 15,500 of DEC's 20,000
nearest candidates fainter than G = 19) came out with 4,294 members, bright members lost and faint
field gained; with the error-dominated stars left to the mixture it has 1,439 at pm (-2.324,
-1.019) (Hunt & Reffert 2023: 1,338 at (-2.318, -1.015)). A per-star log error-volume term on the
field groups' density instead (the factor whitening hides) was measured worse on Ruprecht 147 (F1
0.927 -> 0.909).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ocdec.methods.base import HISTORY_COLUMNS
from ocdec.methods.default.mixture import ClusterModel
from ocdec.methods.default.stars import Astrometry, log_error_volume
from ocdec.methods.default.window import dec_features, whitened_features

if TYPE_CHECKING:
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.default.method import MemberSettings

log = logging.getLogger(__name__)

MIN_DEC_GROUP = 5  # stars DEC's cluster and field groups each need to start from
# DEC's members sharing less than this (Jaccard) with the mixture's it started from have left the
# cluster it was given: in the simulated thesis catalogue (G <= 21, DR2 errors), a few dozen
# mixture members on a hump of the field's motions grew to thousands (Jaccard 0.0004-0.03), and
# in its 102 regions to 300,000 rows DEC at Jaccard 0.21-0.31 grew or moved three clusters into
# the field (F1 against the truth 0.20-0.39; the mixture's own 0.54-0.71). On the real fields
# DEC keeps 0.96-0.98 of the mixture's members.
DEC_MIN_JACCARD = 0.5


def default_dec_settings(n_features: int | None = None) -> DecSettings:
    """DEC as the membership model (measurements in the module docstring): the weighted
    Student-t mixture layer (alpha = 20: near-Gaussian tails, as the whitened features have), a
    linear encoder of the input's width, its latent whitened on the initial cluster and kept
    fixed during self-training (so no IDEC reconstruction term), a small learning rate, and the
    per-cluster stopping rule (every group changes by < 1 % between target updates, after at
    least 3 epochs) rather than 0.1 % of all labels.

    The encoder is not pretrained: whitening an invertible linear map's output on the initial
    cluster leaves the cluster's whitened offsets, turned by some rotation, whatever the map was,
    and the clustering layer (isotropic kernels, one scale per group) sees only distances. Its
    40 epochs of reconstruction were half of DEC's time where self-training ran its 30 epochs,
    and nine tenths where it stopped after 3."""
    from ocdec.methods.dec import DecSettings

    # The width is the features' (3, or 5 with sky offsets); dec_membership sets it (see
    # MemberSettings.dec_linear_encoder), so the value without n_features is a placeholder.
    hidden = (5,) if n_features is None else (n_features,)
    return DecSettings(hidden=hidden, pretrain_epochs=0, cluster_epochs=30, batch_size=256,
                       learning_rate=1e-4, alpha=20.0, min_cluster_epochs=3, cluster_tol=0.01,
                       reconstruction_weight=0.0, mixture=True, whiten_cluster=0,
                       train_encoder=False,
                       log_every_s=30.0)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def seed_agreement(member_sets: list[np.ndarray]) -> tuple[float, float]:
    """Mean and minimum pairwise Jaccard index of the seeds' member sets (1, 1 for one seed)."""
    vals = [jaccard(member_sets[i], member_sets[j])
            for i in range(len(member_sets)) for j in range(i + 1, len(member_sets))]
    return (float(np.mean(vals)), float(np.min(vals))) if vals else (1.0, 1.0)


def field_split(x: np.ndarray, p0: np.ndarray, n_field: int) -> np.ndarray:
    """DEC's initial soft assignment: column 0 the mixture's cluster probability, the rest
    (1 - p0) split among ``n_field`` field groups by K-Means of the likely non-members (fixed
    random state): one broad field kernel is a poor model of a field that is dense on one side of
    the cluster, and lets the cluster group grow into it."""
    from sklearn.cluster import KMeans

    field_rows = p0 < 0.5
    n_field = max(1, min(n_field, int(field_rows.sum()) // 20))
    init = np.zeros((x.shape[0], 1 + n_field))
    init[:, 0] = p0
    if n_field == 1:
        init[:, 1] = 1 - p0
        return init
    km = KMeans(n_clusters=n_field, n_init=4, random_state=0).fit(x[field_rows])
    init[np.arange(x.shape[0]), 1 + km.predict(x)] = 1 - p0
    # A group no star fell into cannot place its centroid: drop it.
    return init[:, init.sum(axis=0) > 0]


def pad_bucket(n: int, smallest: int = 1024) -> int:
    """The padded size DEC runs at for ``n`` stars: the next power of two (at least ``smallest``),
    so that fields of similar size share one compilation."""
    return max(smallest, 1 << max(n - 1, 1).bit_length())


@dataclass
class DecMembership:
    """DEC's answer on the candidates (arrays indexed like ``ClusterModel.candidates``)."""

    p_candidates: np.ndarray  # seeds' mean cluster q (the mixture's posterior where not DEC's)
    per_seed: list[np.ndarray]  # each seed's cluster q on the stars DEC ran on
    history: pd.DataFrame  # every seed's training curve
    used: np.ndarray  # candidates with a probability: DEC's and the error-dominated
    diagnostics: dict[str, Any]


def _dec_stars(ast: Astrometry, model: ClusterModel, settings: MemberSettings
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates DEC runs on (nearest first within ``dec_radius``, at most
    ``dec_max_stars``), which candidates are informative (errors not swamping the cluster) and
    every candidate's whitened radius."""
    z3 = whitened_features(ast, model.candidates, model.mean, model.cov)
    radius = np.linalg.norm(z3, axis=1)
    vol = log_error_volume(ast, model.candidates, model.cov)
    likely = model.p_mixture >= 0.5
    excess = vol - np.median(vol[likely] if likely.any() else vol)
    informative = np.ones(vol.size, bool)
    if settings.dec_max_log_error_volume is not None:
        informative = excess < settings.dec_max_log_error_volume
    use = np.flatnonzero(informative & (radius < settings.dec_radius))
    if (model.p_mixture[use] < 0.5).sum() < MIN_DEC_GROUP:
        # Hardly any field near the cluster (sparse or simulated fields): give DEC every candidate
        # so that its field groups have stars to sit on.
        use = np.flatnonzero(informative)
    if use.size > settings.dec_max_stars:
        use = np.sort(use[np.argsort(radius[use], kind="stable")[: settings.dec_max_stars]])
    return use, informative, radius


def _mixture_kept(model: ClusterModel, settings: MemberSettings, history: pd.DataFrame,
                  diagnostics: dict[str, Any]) -> DecMembership:
    """The deconvolved mixture's posterior as the membership (every seed alike), where DEC could
    not run or flipped to the field; ``diagnostics`` say why."""
    p_mix = model.p_mixture
    return DecMembership(p_candidates=p_mix, per_seed=[p_mix for _ in settings.seeds],
                         history=history, used=np.arange(p_mix.size), diagnostics=diagnostics)


def dec_membership(ast: Astrometry, model: ClusterModel, settings: MemberSettings
                   ) -> DecMembership:
    """DEC as the membership model: a weighted Student-t mixture DEC (k = 2, cluster and field) on
    the candidates' :func:`dec_features`, started from the mixture's member/field split (centroids,
    mixing weights and scales), one run per seed; p_member of every candidate is the seeds' mean of
    DEC's cluster soft assignment (0 beyond ``dec_radius``)."""
    from ocdec.methods.dec import fit_dec

    use, informative, radius = _dec_stars(ast, model, settings)
    p0 = np.clip(model.p_mixture[use], 1e-4, 1 - 1e-4)
    if (p0 >= 0.5).sum() < MIN_DEC_GROUP or (p0 < 0.5).sum() < MIN_DEC_GROUP:
        # A sparse field can leave no field star near the cluster (or a tiny cluster no member):
        # DEC has no second group to learn, so the deconvolved mixture's answer stands.
        why = (f"{use.size} candidates near the cluster, {int((p0 >= 0.5).sum())} of them likely "
               f"members: DEC needs at least {MIN_DEC_GROUP} of each; the mixture's posterior "
               "is kept")
        log.warning("%s", why)
        return _mixture_kept(model, settings, pd.DataFrame(columns=HISTORY_COLUMNS),
                             {"dec_skipped": why})
    x = dec_features(ast, model, use)
    dec_settings = settings.dec or default_dec_settings(x.shape[1])
    if settings.dec_linear_encoder and tuple(dec_settings.hidden) != (x.shape[1],):
        dec_settings = replace(dec_settings, hidden=(x.shape[1],))
    init = field_split(x, p0, settings.dec_field_groups)
    pad = pad_bucket(use.size)
    histories, qs = [], []
    core = np.argsort(radius[use], kind="stable")[: max(5, use.size // 20)]
    # One seed after another: the seeds trained side by side in two threads measured no faster
    # (DEC 3.1-3.5 s either way on the 434,000-row benchmark field, 2 cores).
    for seed in settings.seeds:
        res = fit_dec(x, init.shape[1], dec_settings, seed, init_assignment=init, pad_to=pad)
        # Group 0 started on the members; check that it still holds the cluster centre.
        cl = int(np.argmax(res.q[core].mean(axis=0)))
        qs.append(res.q[:, cl].astype(np.float64))
        histories.append(res.history)
    p_use = np.mean(qs, axis=0)
    p_cand = np.zeros(model.candidates.size)
    p_cand[use] = p_use
    # Stars whose errors swamp the cluster's width keep the deconvolved mixture's posterior.
    blurred = np.flatnonzero(~informative)
    p_cand[blurred] = model.p_mixture[blurred]
    mix = model.p_mixture[use] >= settings.threshold
    diag = {"dec_stars": int(use.size), "dec_padded_to": int(pad),
            "error_dominated": int(blurred.size),
            "error_dominated_members": int((model.p_mixture[blurred] >= settings.threshold).sum()),
            "dec_jaccard_with_mixture": jaccard(p_use >= settings.threshold, mix),
            "dec_seed_members": [int((q >= settings.threshold).sum()) for q in qs],
            "mixture_members": int(mix.sum())}
    log.info("DEC on %d candidates (padded to %d): %d members (mixture initialisation %d), "
             "Jaccard with the initialisation %.3f", use.size, pad,
             int((p_use >= settings.threshold).sum()), int(mix.sum()),
             diag["dec_jaccard_with_mixture"])
    if diag["dec_jaccard_with_mixture"] < DEC_MIN_JACCARD:
        why = (f"DEC's {int((p_use >= settings.threshold).sum())} members share a Jaccard index "
               f"of {diag['dec_jaccard_with_mixture']:.3f} with the mixture's {int(mix.sum())} "
               f"it started from (< {DEC_MIN_JACCARD}): DEC flipped to the field; the mixture's "
               "posterior is kept")
        log.warning("%s", why)
        return _mixture_kept(model, settings, pd.concat(histories, ignore_index=True),
                             {**diag, "dec_rejected": why})
    return DecMembership(p_candidates=p_cand, per_seed=qs,
                         history=pd.concat(histories, ignore_index=True),
                         used=np.union1d(use, blurred), diagnostics=diag)
