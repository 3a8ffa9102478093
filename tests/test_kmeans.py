"""K-Means sweep: silhouette choice of k, sampled silhouette equal to scikit-learn's, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score

from ocdec.errors import OcdecError
from ocdec.methods import kmeans
from ocdec.methods.kmeans import kmeans_sweep, silhouette_scores


def test_sweep_chooses_the_true_number_of_blobs():
    x, y = make_blobs(n_samples=2000, centers=4, n_features=3, cluster_std=0.6, random_state=1)
    res = kmeans_sweep(x, range(2, 8), seed=0)
    assert res.k == 4
    assert list(res.scores["k"]) == list(range(2, 8))
    assert res.scores["silhouette"].idxmax() == res.scores.index[res.scores["k"] == 4][0]
    assert adjusted_rand_score(y, res.labels) > 0.99
    assert res.centroids.shape == (4, 3)
    assert set(res.labels_by_k) == set(range(2, 8))
    again = kmeans_sweep(x, range(2, 8), seed=0)
    np.testing.assert_array_equal(again.labels, res.labels)
    np.testing.assert_array_equal(again.scores["silhouette"], res.scores["silhouette"])


def test_silhouette_matches_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    labelings = [rng.integers(0, k, 600) for k in (2, 3, 7)]
    labelings.append(np.r_[np.zeros(599, int), 5])  # a singleton group scores 0 for its star
    labelings.append(np.zeros(600, int))  # one group: undefined
    ours = silhouette_scores(x, labelings, chunk=128)
    for mine, labels in zip(ours[:-1], labelings[:-1], strict=True):
        assert mine == pytest.approx(silhouette_score(x, labels), abs=1e-10)
    assert np.isnan(ours[-1])


def test_large_input_is_sampled_not_quadratic(monkeypatch):
    seen = []
    real = kmeans.silhouette_scores

    def spy(x, labelings, chunk=1024):
        seen.append(x.shape[0])
        return real(x, labelings, chunk)

    monkeypatch.setattr(kmeans, "silhouette_scores", spy)
    x, _ = make_blobs(n_samples=60_000, centers=3, n_features=4, random_state=2)
    t0 = time.perf_counter()
    res = kmeans_sweep(x, (2, 3, 4), seed=0, silhouette_sample=2_000, fit_sample=5_000)
    # A quadratic silhouette on 60,000 stars would need 3.6e9 distances; the sample needs 4e6.
    assert seen == [2_000]
    assert res.k == 3 and res.labels.shape == (60_000,)
    assert time.perf_counter() - t0 < 30


def test_bad_inputs():
    with pytest.raises(OcdecError, match="k values"):
        kmeans_sweep(np.zeros((5, 2)), (2, 9))
    with pytest.raises(OcdecError, match="at least 3 rows"):
        kmeans_sweep(np.zeros((2, 2)), (2,))
