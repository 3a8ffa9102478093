"""Clustering features: the thesis set, scalings, unusable stars, user errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocdec.errors import OcdecError
from ocdec.methods.features import THESIS_FEATURES, build_features, feature_values


@pytest.fixture()
def stars() -> pd.DataFrame:
    return pd.DataFrame({
        "pmra": [10.0, -4.0, 3.0, 6.0, 1.0],
        "pmdec": [0.0, 3.0, -4.0, 8.0, 1.0],
        "parallax": [2.0, 1.0, 0.5, np.nan, -1.0],
    })


def test_thesis_features_are_tangential_motions_and_parallax(stars):
    v = feature_values(stars, THESIS_FEATURES)
    np.testing.assert_allclose(v[:3], [[5.0, 0.0, 5.0, 2.0], [-4.0, 3.0, 5.0, 1.0],
                                       [6.0, -8.0, 10.0, 0.5]])


def test_minmax_scaling_drops_unusable_stars(stars):
    x, usable = build_features(stars)
    # NaN parallax and negative parallax (a ratio would flip sign) are not usable.
    np.testing.assert_array_equal(usable, [True, True, True, False, False])
    assert x.dtype == np.float32 and x.shape == (3, 4)
    np.testing.assert_allclose(x.min(axis=0), 0.0)
    np.testing.assert_allclose(x.max(axis=0), 1.0)
    # pm_over_parallax: 5, 5, 10 -> 0, 0, 1
    np.testing.assert_allclose(x[:, 2], [0.0, 0.0, 1.0])


def test_other_features_and_scalings(stars):
    x, usable = build_features(stars, ["pmra", "pmdec"], "standard")
    assert usable.all()  # no ratio by parallax: negative parallax is fine here
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-6)
    raw, _ = build_features(stars, ["pm"], None)
    np.testing.assert_allclose(raw[:, 0], np.hypot(stars.pmra, stars.pmdec), rtol=1e-6)
    robust, _ = build_features(stars, ["parallax"], "robust")
    finite = stars.parallax.dropna().to_numpy()
    assert robust[:, 0] == pytest.approx((finite - np.median(finite)) /
                                         np.subtract(*np.percentile(finite, [75, 25])))


def test_user_errors_name_the_problem(stars):
    with pytest.raises(OcdecError, match="'phot_g_mean_mag'"):
        build_features(stars, ["phot_g_mean_mag"])
    with pytest.raises(OcdecError, match="unknown feature scaling 'zscore'"):
        build_features(stars, THESIS_FEATURES, "zscore")
    with pytest.raises(OcdecError, match="no star has finite values"):
        build_features(stars.assign(parallax=np.nan))
