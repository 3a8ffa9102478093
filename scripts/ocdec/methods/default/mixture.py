"""Step 2 of the default method: the candidates and the deconvolved cluster + field mixture.

Around the chosen peak, the stars within 12 "member spreads" (intrinsic width plus each star's own
errors) are the candidates (:func:`ocdec.methods.default.window.candidate_window`). A cluster +
field mixture is fitted to them by extreme deconvolution (Bovy et al. 2011; each star's errors
convolved in, :func:`fit_mixture`): a Gaussian cluster core, a field Gaussian, a cluster halo at
most 5 times the core's width where the core is narrower than the errors, and, where stars have
positions, a Plummer sky profile for the cluster against the field's own star density
(:class:`ocdec.methods.default.sky.SkyModel`). :func:`fit_cluster_model` fits twice, re-cutting
the window on the first fit. Its posterior is DEC's initialisation (and, with ``run_dec=False``, a
fast stand-alone answer, with bootstrap refits per seed: :func:`bootstrap_responsibilities`).

The field component's floor (:data:`FIELD_MIN_SCALE`) is what keeps a nearby cluster in a sparse
field whole. Tangential velocities instead of proper motions for nearby clusters were tried and
removed: on the TeachAstro Hyades field they did not keep the mixture on the cluster, and on a
simulated Hyades among 60,000 field stars they over-selected (precision 0.61).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.methods.default import mixture_loops
from ocdec.methods.default.peaks import KMS_PER_MASYR_KPC, Peak
from ocdec.methods.default.sky import SkyModel
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.default.window import candidate_window

HALO_SCALE = 5.0  # the widest the cluster halo may be, in units of the core's width
# The narrowest the field component may be, in units of the cluster core's width along every axis.
# The candidate window spans 12 member spreads, so a real field in it is far wider; where the
# window holds almost only members (a nearby cluster in a sparse field), a free field component
# settled on half of the cluster (simulated Hyades, 20,000 field stars: recall 0.39).
FIELD_MIN_SCALE = 3.0
# The widest a cluster core may be (issue 10): a velocity dispersion of MAX_SIGMA_V_KMS, a depth
# (standard deviation along the line of sight) of MAX_DEPTH_PC, and the Gaia systematics floor.
# Unbounded, a distant cluster's core (1 km/s is 0.01 mas/yr at 10 kpc) grew over the faint field
# stars whose errors reach it: Berkeley 29, 443 members against 53 in Hunt & Reffert (2023).
MAX_SIGMA_V_KMS = 2.0
MAX_DEPTH_PC = 10.0
SYSTEMATIC_FLOOR = np.array([0.03, 0.03, 0.015])  # mas/yr, mas/yr, mas


@dataclass
class MixtureFit:
    """The mixture's parameters in (pmra, pmdec, parallax): components ``0 .. n_cluster - 1`` are
    the cluster (the core, then the halo where there is one; they share the sky profile), the last
    one the field."""

    means: list[np.ndarray]  # (3,) each
    covs: list[np.ndarray]  # (3, 3) each: intrinsic covariances (errors deconvolved)
    weights: np.ndarray  # (K,) mixing weights, summing to 1
    n_cluster: int  # 1 (core) or 2 (core + halo)
    sky: tuple[float, float, float] | None = None  # Plummer centre (xi, eta) and scale, deg

    @property
    def core_mean(self) -> np.ndarray:
        return self.means[0]

    @property
    def core_cov(self) -> np.ndarray:
        return self.covs[0]

    def cluster(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The cluster as one distribution, moment-matched over its components: mean, covariance
        and its fraction of the window."""
        nc = self.n_cluster
        w = np.asarray(self.weights[:nc], float)
        w = w / w.sum()
        means = np.array(self.means[:nc])
        mean = w @ means
        cov = sum(wj * (cj + np.outer(mj - mean, mj - mean))
                  for wj, mj, cj in zip(w, means, self.covs[:nc], strict=True))
        return mean, cov, float(np.sum(self.weights[:nc]))


@dataclass
class ClusterModel:
    """The fitted mixture on the candidate window, with the cluster as one distribution."""

    mean: np.ndarray  # (3,) cluster centre
    cov: np.ndarray  # (3, 3) intrinsic cluster covariance
    weight: float  # cluster fraction in the window
    candidates: np.ndarray  # indices into Astrometry of the window
    p_mixture: np.ndarray  # cluster responsibility of each candidate
    iterations: int
    fit: MixtureFit
    sky_model: SkyModel | None = None
    halo: bool = False

    @property
    def sky(self) -> tuple[float, float, float] | None:
        """Plummer centre (xi, eta) and scale, deg; None without positions."""
        return self.fit.sky

    def summary(self) -> dict[str, Any]:
        sd = np.sqrt(np.diag(self.cov))
        out: dict[str, Any] = {
            "pmra": float(self.mean[0]), "pmdec": float(self.mean[1]),
            "parallax": float(self.mean[2]), "pmra_sd": float(sd[0]), "pmdec_sd": float(sd[1]),
            "parallax_sd": float(sd[2]), "cluster_fraction": float(self.weight),
            "n_candidates": int(self.candidates.size), "em_iterations": int(self.iterations),
            "halo": self.halo,
        }
        if self.sky is not None and self.sky_model is not None:
            out["plummer_scale_deg"] = float(self.sky[2])
        return out


# ------------------------------------------------------------------ extreme-deconvolution EM


# A star's total covariance T_i = V + diag(err2_i) is kept as the six distinct entries of its
# inverse, in the order 00 01 02 11 12 22: EM needs only T_i^-1 d_i and the weighted sum of
# T_i^-1, and forming (n, 3, 3) stacks and batched 3x3 products cost most of the mixture's time.
# The elementwise work runs on contiguous columns (_columns: strided columns and reductions along
# rows of three were most of what was left), in compiled loops over every component at once
# (mixture_loops: numpy's calls an iteration cost more than their arithmetic on small windows);
# the arithmetic, its order included, is that of the (n, 3) form, so the fits are the same to
# the bit (tests/test_members.py).
_SYM = np.array([[0, 1, 2], [1, 3, 4], [2, 4, 5]])
Columns = tuple[np.ndarray, ...]
# A component's E-step terms for its M step: T_i^-1's distinct entries (n, 6) and T_i^-1 d_i
# (n, 3), at the component's mean.
Terms = tuple[np.ndarray, np.ndarray]
_LOG_NORM = 3 * math.log(2 * math.pi)  # a 3-d Gaussian's log normalisation, less its log det


def _columns(a: np.ndarray | Columns) -> Columns:
    """The columns of an (n, k) array, each contiguous (columns are passed through)."""
    if isinstance(a, tuple):
        return a
    return tuple(np.ascontiguousarray(np.asarray(a, dtype=float).T))


def _components(x: Columns, err2: Columns, means: list[np.ndarray], covs: list[np.ndarray],
                log_weight: np.ndarray, sky_cluster: np.ndarray | None = None,
                sky_field: np.ndarray | None = None, n_cluster: int = 1
                ) -> tuple[np.ndarray, np.ndarray, list[Terms]]:
    """log w_k + log N(x_i | mean_k, cov_k + diag(err2_i)) [+ the sky profile's log: of the
    cluster for the first ``n_cluster`` components, of the field after] for every component k
    and star i (K, n); its largest over components (n,); each component's M-step terms
    (:data:`Terms`). ``x`` and ``err2`` as :func:`_columns`; the loops of
    :mod:`~ocdec.methods.default.mixture_loops`, logarithms numpy's."""
    empty = np.empty(0)
    prec, det = mixture_loops.precisions(*err2, np.array(covs, dtype=float))
    u, logs, top = mixture_loops.log_terms(
        *x, np.array(means, dtype=float), prec, np.log(det), log_weight, _LOG_NORM,
        empty if sky_cluster is None else np.asarray(sky_cluster, float),
        empty if sky_field is None else np.asarray(sky_field, float), n_cluster)
    return logs, top, [(prec[k], u[k]) for k in range(len(means))]


def _xd_update(r: np.ndarray, mean: np.ndarray, cov: np.ndarray, terms: Terms,
               floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The extreme-deconvolution M step of one component from the E step's ``terms``, at this
    same mean."""
    prec, u = terms
    b = mean + u @ cov  # V T_i^-1 d_i (V symmetric)
    w = r / max(r.sum(), 1e-300)
    new_mean = w @ b
    db = b - new_mean
    # sum_i w_i [(b_i - mu)(b_i - mu)^T + V - V T_i^-1 V]
    new_cov = (db * w[:, None]).T @ db + cov - cov @ (w @ prec)[_SYM] @ cov
    new_cov = 0.5 * (new_cov + new_cov.T) + np.diag(floor)
    return new_mean, new_cov


def at_least_as_wide(cov: np.ndarray, ref: np.ndarray, scale: float) -> np.ndarray:
    """``cov`` with every eigenvalue, in the frame where ``ref`` is the identity, raised to at
    least scale^2: no direction narrower than ``scale`` times ``ref``'s width along it."""
    chol = np.linalg.cholesky(ref)
    inv = np.linalg.inv(chol)
    vals, vecs = np.linalg.eigh(inv @ cov @ inv.T)
    if vals.min() >= scale**2:
        return cov
    raised = (vecs * np.maximum(vals, scale**2)) @ vecs.T
    out = chol @ raised @ chol.T
    return 0.5 * (out + out.T)


def at_most_physical(cov: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``cov`` with each axis' spread cut to what a cluster at ``mean`` can have: velocity
    dispersion and depth (which spreads the proper motion too) at their maxima, over the
    systematics floor; correlations kept."""
    plx = max(float(mean[2]), 1e-3)
    depth = plx * MAX_DEPTH_PC / 1000.0  # relative depth: sd(d) / d
    pm_cap = np.hypot(MAX_SIGMA_V_KMS * plx / KMS_PER_MASYR_KPC,
                      np.hypot(mean[0], mean[1]) * depth)
    cap = np.hypot(np.array([pm_cap, pm_cap, plx * depth]), SYSTEMATIC_FLOOR)
    sd = np.sqrt(np.maximum(np.diag(cov), 1e-300))
    shrink = np.minimum(1.0, cap / sd)
    if shrink.min() >= 1.0:
        return cov
    return cov * np.outer(shrink, shrink)


def _e_step(x: np.ndarray | Columns, err2: np.ndarray | Columns, fit: MixtureFit,
            sky: SkyModel | None, sky_idx: np.ndarray | None, sky_f: np.ndarray | None = None
            ) -> tuple[np.ndarray, float, list[Terms]]:
    """Per-component responsibilities (n, K), mean log-likelihood, and each component's
    :func:`_components` terms for the M step."""
    use_sky = fit.sky is not None and sky is not None and sky_idx is not None
    ls_c = ls_f = None
    if use_sky:
        ls_c = sky.log_cluster(sky_idx, *fit.sky)  # type: ignore[union-attr, misc, arg-type]
        ls_f = sky.log_field(sky_idx) if sky_f is None else sky_f  # type: ignore[union-attr]
    log_weight = np.array([math.log(max(w, 1e-300)) for w in fit.weights])
    logs, top, terms = _components(_columns(x), _columns(err2), fit.means, fit.covs, log_weight,
                                   ls_c, ls_f, fit.n_cluster)
    # the log-sum-exp over components, component by component (as the rows' sums reduce)
    shifted = np.exp(logs - top)
    total = shifted[0]
    for row in shifted[1:]:
        total = total + row
    norm = top + np.log(total)
    return np.ascontiguousarray(np.exp(logs - norm).T), float(norm.mean()), terms


def responsibilities(ast: Astrometry, idx: np.ndarray, fit: MixtureFit,
                     sky: SkyModel | None) -> np.ndarray:
    """p(cluster | star) under a fitted mixture, for stars ``idx``."""
    x, err2 = ast.stack(idx)
    resp = _e_step(x, err2, fit, sky, idx if sky is not None else None)[0]
    return resp[:, : fit.n_cluster].sum(axis=1)


def initial_fit(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, halo: bool) -> MixtureFit:
    """Cluster core at the peak, optionally a wider cluster halo (binaries, unresolved systematic
    errors, escapers: the Gaussian core's tails are too thin for real clusters), broad field."""
    means, covs, weights = [mean], [cov], [0.4]
    if halo:
        means.append(mean.copy())
        covs.append(cov * HALO_SCALE**2)
        weights.append(0.1)
    means.append(np.median(x, axis=0))
    covs.append(np.cov(x, rowvar=False) + np.diag([1e-4] * 3))
    weights.append(1.0 - sum(weights))
    return MixtureFit(means=means, covs=covs, weights=np.array(weights),
                      n_cluster=2 if halo else 1)


def _m_step(fit: MixtureFit, w: np.ndarray, terms: list[Terms], sw: np.ndarray) -> None:
    """New weights, means and covariances (in place) from weighted responsibilities ``w``."""
    floor = np.array([1e-6, 1e-6, 1e-8])
    fit.weights = np.clip(w.sum(axis=0) / sw.sum(), 1e-6, None)
    fit.weights /= fit.weights.sum()
    for j in range(len(fit.means)):
        fit.means[j], fit.covs[j] = _xd_update(w[:, j], fit.means[j], fit.covs[j], terms[j],
                                               floor)
    if fit.n_cluster == 2:
        # The halo shares the core's centre and is at most HALO_SCALE times as wide: free, it
        # would grow into the field wherever faint stars' errors are large.
        fit.means[1] = fit.means[0].copy()
        ratio = np.trace(fit.covs[1]) / np.trace(fit.covs[0])
        if ratio > HALO_SCALE**2:
            fit.covs[1] = fit.covs[1] * (HALO_SCALE**2 / ratio)
    fit.covs[0] = at_most_physical(fit.covs[0], fit.means[0])
    fit.covs[-1] = at_least_as_wide(fit.covs[-1], fit.covs[0], FIELD_MIN_SCALE)


def fit_mixture(x: np.ndarray, err2: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                sky: SkyModel | None = None, sky_idx: np.ndarray | None = None,
                init: MixtureFit | None = None, max_iter: int = 200, tol: float = 1e-6,
                sample_weight: np.ndarray | None = None, halo: bool = True
                ) -> tuple[MixtureFit, np.ndarray, int]:
    """Extreme-deconvolution EM (Bovy et al. 2011) of cluster core (+ halo) and field, with the sky
    profile of each where ``sky`` is given; deterministic. ``init`` (not changed) warm-starts it,
    else :func:`initial_fit` at ``mean``, ``cov``. Returns the fit, the cluster responsibility of
    each star and the iterations run."""
    start = init if init is not None else initial_fit(x, mean, cov, halo)
    fit = replace(start, means=[np.array(m) for m in start.means],
                  covs=[np.array(c) for c in start.covs])
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, float)
    prev = -np.inf
    it = 0
    nc = fit.n_cluster
    resp = np.zeros((len(x), len(fit.means)))
    sky_f = None
    if sky is not None and sky_idx is not None:
        sky_f = sky.log_field(sky_idx)
        if fit.sky is None:
            d = x - mean
            core = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov + np.diag(err2.mean(0))), d) < 9
            fit.sky = sky.update(sky_idx, core.astype(float))
    else:
        fit.sky = None
    columns, err2_columns = _columns(x), _columns(err2)
    for it in range(1, max_iter + 1):  # noqa: B007 (returned: iterations used)
        resp, ll, terms = _e_step(columns, err2_columns, fit, sky, sky_idx, sky_f)
        w = sw[:, None] * resp
        _m_step(fit, w, terms, sw)
        if fit.sky is not None:
            fit.sky = sky.update(sky_idx, w[:, :nc].sum(axis=1))  # type: ignore[union-attr, arg-type]
        if abs(ll - prev) < tol:
            break
        prev = ll
    return fit, resp[:, :nc].sum(axis=1), it


# ------------------------------------------------------------------ the cluster on its window


def _fit_window(ast: Astrometry, peak: Peak, mean: np.ndarray, cov: np.ndarray,
                window_sigma: float, sky: SkyModel | None, max_fit_stars: int, halo: bool
                ) -> tuple[np.ndarray, MixtureFit, np.ndarray, int]:
    """Cut the window around (mean, cov) and fit the mixture on it: the window, the fit, the
    cluster responsibility of every window star and the EM iterations."""
    idx = candidate_window(ast, mean, cov, window_sigma)
    if idx.size < 10:
        raise OcdecError(f"only {idx.size} stars near the peak at pm ({peak.pmra:.2f}, "
                         f"{peak.pmdec:.2f}), parallax {peak.parallax:.3f}: too few to fit")
    # EM on at most max_fit_stars (a fixed-seed random subset keeps the cluster fraction
    # unbiased); the responsibilities of the whole window follow from the fitted model.
    fit_idx = idx
    if idx.size > max_fit_stars:
        rng = np.random.default_rng(0)
        fit_idx = np.sort(rng.choice(idx, max_fit_stars, replace=False))
    x, err2 = ast.stack(fit_idx)
    fit, r, it = fit_mixture(x, err2, mean, cov, sky=sky, sky_idx=fit_idx if sky else None,
                             halo=halo)
    if fit_idx.size != idx.size:
        r = responsibilities(ast, idx, fit, sky)
    return idx, fit, r, it


def fit_cluster_model(ast: Astrometry, peak: Peak, sigma_v_kms: float = 1.0,
                      window_sigma: float = 12.0, use_sky: bool = True,
                      max_fit_stars: int = 20_000, halo: bool = True) -> ClusterModel:
    """Start at the peak with a velocity-dispersion-sized cluster; fit; re-cut the window on the
    fitted cluster; fit again (with the sky profiles where the stars have positions).

    The second fit adds a cluster halo (``halo``) only where the first fit's intrinsic proper-motion
    width is below the members' median error: there the tails (binary orbits, underestimated errors
    of bright stars) are what a single Gaussian misses; with wide nearby clusters a halo would only
    soak up field stars of similar motion."""
    mean = np.array([peak.pmra, peak.pmdec, peak.parallax])
    pm_sig = sigma_v_kms * peak.parallax / KMS_PER_MASYR_KPC
    cov = np.diag([pm_sig**2, pm_sig**2, (0.02 * peak.parallax) ** 2 + 1e-4])
    idx, fit, r, _ = _fit_window(ast, peak, mean, cov, window_sigma, None, max_fit_stars, False)
    use_halo = False
    if halo:
        e_pm = np.hypot(ast.e_pmra[idx], ast.e_pmdec[idx]) / math.sqrt(2)
        width = math.sqrt(0.5 * (fit.core_cov[0, 0] + fit.core_cov[1, 1]))
        use_halo = bool((r >= 0.5).any() and width < np.median(e_pm[r >= 0.5]))
    sky: SkyModel | None = None
    if use_sky and ast.has_sky:
        # The sky profile is centred on the astrometric members of the first fit.
        from ocdec.methods.astrometry import sky_centre_and_r50

        members = idx[r >= 0.5] if (r >= 0.5).sum() >= 5 else idx
        c = sky_centre_and_r50(pd.DataFrame({"ra": ast.ra[members], "dec": ast.dec[members]}))
        sky = SkyModel(ast, c["ra"], c["dec"])
    idx, fit, r, it = _fit_window(ast, peak, fit.core_mean, fit.core_cov, window_sigma, sky,
                                  max_fit_stars, use_halo)
    mean, cov, weight = fit.cluster()
    return ClusterModel(mean=mean, cov=cov, weight=weight, candidates=idx, p_mixture=r,
                        iterations=it, fit=fit, sky_model=sky, halo=use_halo)


def bootstrap_responsibilities(ast: Astrometry, model: ClusterModel, seed: int,
                               max_fit_stars: int, max_iter: int) -> np.ndarray:
    """One ensemble member of the mixture alone: refit the mixture on a Poisson bootstrap of the
    window (weights from ``seed``), warm started at the full fit; responsibilities of every
    candidate."""
    idx = model.candidates
    rng = np.random.default_rng(seed)
    fit_idx = idx
    if idx.size > max_fit_stars:
        fit_idx = np.sort(rng.choice(idx, max_fit_stars, replace=False))
    weights = rng.poisson(1.0, fit_idx.size).astype(float)
    x, err2 = ast.stack(fit_idx)
    sky = model.sky_model
    fit, _, _ = fit_mixture(x, err2, model.mean, model.cov, sky=sky,
                            sky_idx=fit_idx if sky is not None else None, init=model.fit,
                            max_iter=max_iter, sample_weight=weights, halo=model.halo)
    return responsibilities(ast, idx, fit, sky)
