"""The mixture's E step over its stars, compiled (numba), with numpy's exp and log.

The extreme-deconvolution EM (:mod:`~ocdec.methods.default.mixture`) runs up to a few hundred
iterations on windows of one to twenty thousand stars. As numpy expressions its E step was some
120 calls an iteration (each component's precisions, distances and log-densities, then the
log-sum-exp), and on a small window dispatching them cost more than their arithmetic: 1 ms an
iteration at 1,400 stars, where the mixture was as long as the peak search. Here that work is
two loops over the stars of every component at once, and the exponentials and logarithms are
numpy's, one call over every component: each star gets the operations it got before, in their
order, in IEEE double (no fast-math: no reassociation, no fused multiply-adds), so the
responsibilities, the log-likelihood and the M step's terms are the same to the bit
(tests/test_members.py compares them with the numpy form). A division by zero (a singular
covariance, a star without errors) gives numpy's inf or NaN, not an exception
(``error_model="numpy"``).

Compiled on first use and cached as :mod:`~ocdec.methods.default.star_loops` is; the warm
interpreter loads them before it forks its jobs (:func:`load`).
"""

from __future__ import annotations

import numpy as np

from ocdec.methods.default.star_loops import compiled, maximum


@compiled(error_model="numpy")
def precisions(e0: np.ndarray, e1: np.ndarray, e2: np.ndarray, covs: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """For each component k (``covs`` (K, 3, 3)) and star i (errors squared ``e0``, ``e1``,
    ``e2``): the distinct entries of T^-1, T = covs[k] + diag(e_i), in the order 00 01 02 11
    12 22 (K, n, 6), by the adjugate, and det T (K, n)."""
    n, n_comp = e0.size, covs.shape[0]
    if not e1.size == e2.size == n or covs.shape[1:] != (3, 3):
        raise ValueError("precisions: three error columns as long as the stars, 3 x 3 covariances")
    prec = np.empty((n_comp, n, 6))
    det = np.empty((n_comp, n))
    for k in range(n_comp):
        cov = covs[k]
        b, c, e = cov[0, 1], cov[0, 2], cov[1, 2]
        ee, ce, bb, cc, bc = e * e, c * e, b * b, c * c, b * c
        for i in range(n):
            a = cov[0, 0] + e0[i]
            d = cov[1, 1] + e1[i]
            f = cov[2, 2] + e2[i]
            c00 = d * f - ee
            c01 = ce - b * f
            c02 = b * e - c * d
            dt = a * c00 + b * c01 + c * c02
            prec[k, i, 0] = c00 / dt
            prec[k, i, 1] = c01 / dt
            prec[k, i, 2] = c02 / dt
            prec[k, i, 3] = (a * f - cc) / dt
            prec[k, i, 4] = (bc - a * e) / dt
            prec[k, i, 5] = (a * d - bb) / dt
            det[k, i] = dt
    return prec, det


@compiled(error_model="numpy")
def log_terms(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray, means: np.ndarray,
              prec: np.ndarray, logdet: np.ndarray, log_weight: np.ndarray, const: float,
              sky_cluster: np.ndarray, sky_field: np.ndarray, n_cluster: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each component k and star i, with d = x_i - means[k] and T^-1 from
    :func:`precisions` (``logdet`` its log det T): u = T^-1 d (K, n, 3) and
    log w_k + log N = log_weight[k] + (-0.5 (d u + logdet + const) [+ the sky term: ``sky_cluster``
    for k < ``n_cluster``, ``sky_field`` after; none where they are empty]) (K, n); and the
    largest of those over components (n,), NaN where any is (as numpy.maximum takes it)."""
    n, n_comp = x0.size, means.shape[0]
    with_sky = sky_cluster.size > 0
    if not (x1.size == x2.size == n and prec.shape == (n_comp, n, 6)
            and logdet.shape == (n_comp, n) and log_weight.size == n_comp
            and (not with_sky or sky_cluster.size == sky_field.size == n)):
        raise ValueError("log_terms: the stars' columns, terms and sky terms of one length")
    u = np.empty((n_comp, n, 3))
    logs = np.empty((n_comp, n))
    top = np.empty(n)
    for i in range(n):
        for k in range(n_comp):
            d0, d1, d2 = x0[i] - means[k, 0], x1[i] - means[k, 1], x2[i] - means[k, 2]
            p = prec[k, i]
            u0 = p[0] * d0 + p[1] * d1 + p[2] * d2
            u1 = p[1] * d0 + p[3] * d1 + p[4] * d2
            u2 = p[2] * d0 + p[4] * d1 + p[5] * d2
            u[k, i, 0], u[k, i, 1], u[k, i, 2] = u0, u1, u2
            maha = d0 * u0 + d1 * u1 + d2 * u2
            lj = -0.5 * (maha + logdet[k, i] + const)
            if with_sky:
                lj = lj + (sky_cluster[i] if k < n_cluster else sky_field[i])
            logs[k, i] = log_weight[k] + lj
        t = logs[0, i]
        for k in range(1, n_comp):
            t = maximum(t, logs[k, i])
        top[i] = t
    return u, logs, top


def load() -> None:
    """Compile or load the loops for the float64 arrays the mixture passes, so that the
    processes forked after it find them ready (:data:`ocdec.warm.COMPILED`)."""
    x = np.zeros(1)
    covs = np.eye(3)[None].copy()
    prec, det = precisions(x, x, x, covs)
    log_terms(x, x, x, np.zeros((1, 3)), prec, det, np.zeros(1), 0.0, np.empty(0), np.empty(0), 1)
