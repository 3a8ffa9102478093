"""K-Means sweep over k with the number of groups chosen by the silhouette score (the thesis' step).

Both costs are kept bounded at Gaia sizes (4x10^5 stars): each K-Means is fitted on a seeded random
sample of at most ``fit_sample`` stars and then assigns every star to its nearest centroid, and the
silhouette (exactly O(n^2)) is evaluated on one seeded sample of ``silhouette_sample`` stars, the
same sample for every k so the scores compare like with like. The sample's distance matrix is
computed once, in row chunks, and shared by every k (``silhouette_scores``): scikit-learn's
``silhouette_score`` recomputes it per k and measured about 2.6 s CPU per k at 10,000 stars, against
well under a second here for all nine k together; the tests check both agree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from ocdec.errors import OcdecError

log = logging.getLogger(__name__)

K_VALUES = tuple(range(2, 11))
# K-Means and the silhouette products run single-threaded: measured on the shared 2-core machine,
# scikit-learn's OpenMP K-Means on 2,500 stars took 1.5 s with 2 threads under load against 0.02 s
# with 1 (spinning threads lose badly when cores are oversubscribed, as in parallel workflow jobs),
# while on 434,000 stars a second thread would save at most half of a few seconds.
THREADS = 1


@dataclass
class KMeansSweep:
    k: int  # the chosen number of groups (best silhouette)
    labels: np.ndarray  # (n,) labels of every star for the chosen k
    centroids: np.ndarray  # (k, d)
    scores: pd.DataFrame  # one row per k tried: k, silhouette, inertia (on the fit sample)
    labels_by_k: dict[int, np.ndarray]  # labels of every star for every k tried
    seconds: float


def _sample(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted random indices of ``size`` rows, or None for all rows."""
    if size is None or size >= n:
        return None
    return np.sort(rng.choice(n, size=size, replace=False))


def silhouette_scores(
    x: np.ndarray, labelings: list[np.ndarray], chunk: int = 1024
) -> list[float]:
    """Mean silhouette coefficient of each labeling of the same rows ``x`` (as scikit-learn's
    ``silhouette_score``: s = 0 for a star alone in its group; NaN if a labeling has fewer than two
    groups or as many groups as rows). The distance matrix is formed chunk by chunk, once."""
    x = np.asarray(x, dtype=np.float64)
    m = x.shape[0]
    codes, sizes, one_hots = [], [], []
    for labels in labelings:
        _, code = np.unique(np.asarray(labels), return_inverse=True)
        counts = np.bincount(code)
        codes.append(code)
        sizes.append(counts)
        one_hots.append(np.eye(counts.size)[code])
    stacked = np.hstack(one_hots)  # (m, total groups): distance sums per group by one product
    offsets = np.cumsum([0] + [c.size for c in sizes])
    sums = np.empty((m, stacked.shape[1]))
    sq = np.einsum("ij,ij->i", x, x)
    for start in range(0, m, chunk):
        xc = x[start : start + chunk]
        d2 = sq[start : start + chunk, None] + sq[None, :] - 2.0 * xc @ x.T
        sums[start : start + chunk] = np.sqrt(np.maximum(d2, 0.0)) @ stacked
    out = []
    rows = np.arange(m)
    for i, (code, counts) in enumerate(zip(codes, sizes, strict=True)):
        k = counts.size
        if not 2 <= k < m:
            out.append(float("nan"))
            continue
        s = sums[:, offsets[i] : offsets[i + 1]]
        own = counts[code]
        a = s[rows, code] / np.maximum(own - 1, 1)
        mean_other = s / counts[None, :]
        mean_other[rows, code] = np.inf
        b = mean_other.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sil = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)
        out.append(float(np.nan_to_num(sil).mean()))
    return out


def fit_kmeans(
    x: np.ndarray, k: int, seed: int, *, n_init: int = 4, fit_sample: int | None = 50_000
) -> tuple[np.ndarray, np.ndarray, float]:
    """K-Means fitted on a seeded sample (all rows if ``fit_sample`` is None), then every row
    assigned to its nearest centroid. Returns labels, centroids and the inertia on the fit rows."""
    idx = _sample(x.shape[0], fit_sample, np.random.default_rng(seed))
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    with threadpool_limits(limits=THREADS):
        km.fit(x if idx is None else x[idx])
        labels = km.labels_ if idx is None else km.predict(x)
    return labels.astype(np.int64), km.cluster_centers_, float(km.inertia_)


def kmeans_sweep(
    x: np.ndarray,
    k_values: Iterable[int] = K_VALUES,
    seed: int = 0,
    *,
    silhouette_sample: int | None = 10_000,
    fit_sample: int | None = 50_000,
    n_init: int = 4,
) -> KMeansSweep:
    """K-Means for every k in ``k_values``; the k with the highest (sampled) silhouette wins."""
    x = np.asarray(x)
    k_values = sorted({int(k) for k in k_values})
    if x.ndim != 2 or x.shape[0] < 3:
        raise OcdecError(f"K-Means needs a 2-d feature array with at least 3 rows, got {x.shape}")
    if not k_values or k_values[0] < 2 or k_values[-1] >= x.shape[0]:
        raise OcdecError(f"K-Means k values must lie in 2..{x.shape[0] - 1}, got {k_values}")
    with threadpool_limits(limits=THREADS):
        return _sweep(x, k_values, seed, silhouette_sample, fit_sample, n_init)


def _sweep(x: np.ndarray, k_values: list[int], seed: int, silhouette_sample: int | None,
           fit_sample: int | None, n_init: int) -> KMeansSweep:
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 1])
    sil_idx = _sample(x.shape[0], silhouette_sample, rng)
    x_sil = x if sil_idx is None else x[sil_idx]
    inertias, labels_by_k, centroids_by_k = [], {}, {}
    for k in k_values:
        labels, centroids, inertia = fit_kmeans(x, k, seed, n_init=n_init, fit_sample=fit_sample)
        inertias.append(inertia)
        labels_by_k[k], centroids_by_k[k] = labels, centroids
    sil = silhouette_scores(
        x_sil, [lab if sil_idx is None else lab[sil_idx] for lab in labels_by_k.values()]
    )
    scores = pd.DataFrame({"k": k_values, "silhouette": sil, "inertia": inertias})
    for k, score in zip(k_values, sil, strict=True):
        log.info("K-Means k=%d silhouette %.4f", k, score)
    if scores["silhouette"].isna().all():
        raise OcdecError("K-Means sweep: no k could be scored by the silhouette")
    best = int(scores.loc[scores["silhouette"].idxmax(), "k"])
    seconds = time.perf_counter() - t0
    log.info("K-Means sweep over k=%s on %d stars: k=%d chosen, %.2f s", k_values, x.shape[0],
             best, seconds)
    return KMeansSweep(k=best, labels=labels_by_k[best], centroids=centroids_by_k[best],
                       scores=scores, labels_by_k=labels_by_k, seconds=seconds)
