"""The candidate window around the cluster and the whitened features DEC sees.

Both measure a star's offset from the cluster in units of a member's expected spread there (the
cluster's intrinsic covariance plus the star's own errors,
:func:`ocdec.methods.default.stars.member_covariances`): the window keeps the stars within a
Mahalanobis radius of it (:func:`candidate_window`), and the whitened offsets
(:func:`whitened_features`) make members a unit ball whatever their distance and magnitude.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ocdec.methods.default.stars import Astrometry, inv3, member_covariances

if TYPE_CHECKING:
    from ocdec.methods.default.mixture import ClusterModel


def candidate_window(ast: Astrometry, mean: np.ndarray, cov: np.ndarray,
                     radius: float) -> np.ndarray:
    """Stars within a Mahalanobis radius of the cluster, counting each star's own errors."""
    x, err2 = ast.stack(np.arange(len(ast)))
    # Cheap box first (the cluster is a tiny part of a large field), then the exact distance.
    reach = radius * np.sqrt(np.diag(cov)[None, :] + err2)
    box = np.flatnonzero(np.all(np.abs(x - mean) < reach, axis=1))
    t = member_covariances(cov, err2[box])
    d = x[box] - mean
    maha = np.sum(d * (inv3(t)[0] @ d[:, :, None])[:, :, 0], axis=1)
    return box[maha < radius**2]


def whitened_features(ast: Astrometry, idx: np.ndarray, mean: np.ndarray,
                      cov: np.ndarray) -> np.ndarray:
    """Offsets from the cluster centre in units of a member's expected spread: L_i^-1 (x_i - mu)
    with L_i L_i^T = intrinsic covariance + the star's error covariance. Members form a unit ball
    whatever their distance and magnitude, so one Euclidean metric (DEC's) fits every star."""
    x, err2 = ast.stack(idx)
    chol = np.linalg.cholesky(member_covariances(cov, err2))
    return np.linalg.solve(chol, (x - mean)[:, :, None])[:, :, 0]


def dec_features(ast: Astrometry, model: ClusterModel, idx: np.ndarray) -> np.ndarray:
    """DEC's input for candidates ``idx`` (indices into ``model.candidates``): the whitened
    astrometric offsets (a member's expected spread is a unit ball at any distance and magnitude)
    and, where the stars have positions, the tangent-plane offsets from the fitted sky centre in
    units of the Plummer scale (members within about one unit, the field spread over the cone)."""
    z = whitened_features(ast, model.candidates[idx], model.mean, model.cov)
    if model.sky is not None and model.sky_model is not None:
        x0, y0, a = model.sky
        rows = model.candidates[idx]
        sky = np.stack([(model.sky_model.xi[rows] - x0) / a,
                        (model.sky_model.eta[rows] - y0) / a], axis=1)
        z = np.concatenate([z, sky], axis=1)
    return z
