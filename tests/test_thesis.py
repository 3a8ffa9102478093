"""Thesis mode: group choice, quantile filter, three selections on a synthetic and a real field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocdec.errors import OcdecError
from ocdec.methods.dec import DecSettings
from ocdec.methods.thesis import (
    MEMBER_COLUMNS,
    ThesisSettings,
    dec_training_sample,
    pick_cluster_group,
    quantile_filter,
    run_thesis,
)

FAST = ThesisSettings(dec=DecSettings(pretrain_epochs=4, cluster_epochs=3, batch_size=256),
                      silhouette_sample=2_000)


def synthetic_field(n_field: int = 2500, n_cluster: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    field = pd.DataFrame({
        "pmra": rng.normal(-2, 6, n_field), "pmdec": rng.normal(-3, 6, n_field),
        "parallax": rng.uniform(0.3, 3.0, n_field),
    })
    cluster = pd.DataFrame({
        "pmra": rng.normal(-11.0, 0.2, n_cluster), "pmdec": rng.normal(-3.0, 0.2, n_cluster),
        "parallax": rng.normal(1.15, 0.04, n_cluster),
    })
    stars = pd.concat([field, cluster], ignore_index=True)
    stars["ra"] = rng.uniform(132.0, 134.0, len(stars))
    stars["dec"] = rng.uniform(11.0, 13.0, len(stars))
    stars["true_member"] = np.r_[np.zeros(n_field, bool), np.ones(n_cluster, bool)]
    return stars


def test_pick_cluster_group_by_prior_and_by_concentration():
    stars = synthetic_field()
    # Group 0: the field, group 1: the cluster, group 2: a loose far group.
    groups = np.where(stars["true_member"], 1, 0)
    groups[:200] = 2
    stars.loc[:199, ["pmra", "pmdec"]] += 40.0
    # A prior several mas/yr off (like a pre-Gaia catalogue proper motion) still finds it.
    assert pick_cluster_group(stars, groups, {"pmra": -8.0, "pmdec": -5.0, "parallax": 1.1}) == (
        1, "prior")
    # Only a parallax prior, others missing or NaN.
    assert pick_cluster_group(stars, groups, {"pmra": None, "pmdec": float("nan"),
                                              "parallax": 1.15})[0] == 1
    assert pick_cluster_group(stars, groups, None) == (1, "concentration")
    assert pick_cluster_group(stars, groups, {"pmra": 38.0, "pmdec": 37.0})[0] == 2
    # Unclustered stars (-1) never vote, and tiny groups are not "the cluster" without a prior.
    groups2 = groups.copy()
    groups2[stars.index[stars.true_member][:5]] = 3
    assert pick_cluster_group(stars, groups2, None)[0] == 1
    with pytest.raises(OcdecError, match="no star was clustered"):
        pick_cluster_group(stars, np.full(len(stars), -1), None)


def test_quantile_filter_is_per_group_and_per_feature():
    values = np.column_stack([np.arange(20.0), np.arange(20.0)[::-1]])
    groups = np.r_[np.zeros(10, int), np.ones(9, int), -1]
    keep = quantile_filter(values, groups, (0.1, 0.9))
    # In each group the lowest and highest of each feature fall outside [q10, q90].
    assert not keep[[0, 9, 10, 18, 19]].any()
    assert keep[1:9].all() and keep[11:18].all()


def check_thesis_result(res, stars: pd.DataFrame) -> None:
    m = res.members
    assert list(m.columns) == MEMBER_COLUMNS and m.index.equals(stars.index)
    assert 2 <= res.kmeans_k <= 10 and list(res.silhouette["k"]) == list(range(2, 11))
    assert res.kmeans_k == int(res.silhouette.loc[res.silhouette["silhouette"].idxmax(), "k"])
    assert (m["group"] == m["dec_group"]).all()
    assert m["kmeans_member"].equals(m["kmeans_group"] == res.kmeans_group)
    assert m["dec_member"].equals(m["dec_group"] == res.dec_group)
    assert not (m["dec_filtered_member"] & ~m["dec_member"]).any()
    assert 0 < m["dec_filtered_member"].sum() < m["dec_member"].sum()
    assert m["member"].equals(m["dec_filtered_member"])
    assert m["p_member"].between(0, 1).all() and (m.loc[~m["member"], "p_member"] == 0).all()
    for name, col in (("kmeans", "kmeans_member"), ("dec", "dec_member"),
                      ("dec_filtered", "dec_filtered_member")):
        assert res.selections[name]["n_members"] == int(m[col].sum())
    summary = res.summary()
    assert summary["kmeans_k"] == res.kmeans_k and set(summary["selections"]) == {
        "kmeans", "dec", "dec_filtered"}
    assert set(res.history["phase"]) == {"pretrain", "cluster"}


def test_thesis_on_a_synthetic_field():
    stars = synthetic_field()
    stars.index = stars.index + 1000  # results keep the caller's index
    stars.loc[1000, "parallax"] = np.nan  # an unusable star is not clustered
    res = run_thesis(stars, FAST, seed=0, prior={"pmra": -10.0, "pmdec": -2.0, "parallax": 1.2})
    check_thesis_result(res, stars)
    assert res.members.loc[1000, "group"] == -1 and not res.members.loc[1000, "kmeans_member"]
    truth = stars["true_member"].to_numpy()
    dec_sel = res.members["dec_member"].to_numpy()
    # Whatever the thesis' field contamination, its chosen groups hold the cluster.
    assert (dec_sel & truth).sum() / truth.sum() > 0.9
    assert (res.members["kmeans_member"].to_numpy() & truth).sum() / truth.sum() > 0.9
    params = res.selections["dec_filtered"]
    assert params["n_members"] > 0 and np.isfinite(params["pmra"])


def test_thesis_needs_enough_stars():
    with pytest.raises(OcdecError, match="needs more than 10 stars"):
        run_thesis(synthetic_field(8, 2), FAST, seed=0)


def test_dec_training_sample_is_seeded_sorted_and_bounded():
    assert dec_training_sample(500, None, 0) is None
    assert dec_training_sample(500, 500, 0) is None  # small inputs train on every star
    a, b = dec_training_sample(5000, 1200, 3), dec_training_sample(5000, 1200, 3)
    assert np.array_equal(a, b) and len(a) == 1200 and len(np.unique(a)) == 1200
    assert np.all(np.diff(a) > 0) and a.max() < 5000
    assert not np.array_equal(a, dec_training_sample(5000, 1200, 4))
    with pytest.raises(OcdecError, match="dec_max_stars"):
        ThesisSettings(dec_max_stars=1)


def test_thesis_with_dec_trained_on_a_sample_labels_every_star(caplog):
    stars = synthetic_field(n_field=4000, n_cluster=400, seed=2)
    settings = ThesisSettings(dec=FAST.dec, silhouette_sample=2_000, dec_max_stars=1500)
    with caplog.at_level("INFO", logger="ocdec.methods.thesis"):
        res = run_thesis(stars, settings, seed=0, prior={"pmra": -10.0, "pmdec": -2.0,
                                                         "parallax": 1.2})
    check_thesis_result(res, stars)
    assert (res.members["dec_group"] >= 0).all()  # stars outside the sample are assigned too
    assert res.dec is not None and res.dec.q.shape[0] == len(stars)
    np.testing.assert_allclose(res.dec.q.sum(axis=1), 1.0, rtol=1e-4)
    truth = stars["true_member"].to_numpy()
    assert (res.members["dec_member"].to_numpy() & truth).sum() / truth.sum() > 0.9
    assert "trained on a sample of 1500 of 4400 stars" in caplog.text


def test_dec_predict_reproduces_dec_q_on_its_training_rows():
    from ocdec.methods.dec import fit_dec, predict

    x = np.random.default_rng(0).uniform(size=(700, 4)).astype(np.float32)
    res = fit_dec(x, 3, FAST.dec, seed=1)
    latent, q = predict(res.model, x, FAST.dec.alpha, chunk=256)
    np.testing.assert_allclose(q, res.q, atol=1e-5)
    np.testing.assert_allclose(latent, res.latent, atol=1e-4)


@pytest.mark.slow
@pytest.mark.realdata
def test_thesis_on_praesepe(shared_data):
    stars = pd.read_csv(shared_data / "fields" / "ngc2632_praesepe_dr2_r2deg_plxcut.csv")
    prior = {"pmra": -35.7, "pmdec": -12.7, "parallax": 5.6}  # about the pre-Gaia catalogue
    res = run_thesis(stars, FAST, seed=0, prior=prior)
    check_thesis_result(res, stars)
    cg = pd.read_csv(shared_data / "members" / "cg2018_per_cluster" / "NGC_2632.csv")
    truth = stars["source_id"].isin(cg.loc[cg["PMemb"] >= 0.5, "Source"]).to_numpy()
    found = res.members["dec_filtered_member"].to_numpy()
    # The thesis selection recovers most published members (precision is the thesis' weak side).
    assert (found & truth).sum() / truth.sum() > 0.8
    filtered = res.selections["dec_filtered"]
    assert abs(filtered["parallax"] - 5.37) < 0.3
