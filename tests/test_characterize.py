"""characterize: the products' exact names and contents, the command line, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ocdec.characterize import characterize, write_skipped
from ocdec.cli import main
from ocdec.data.columns import CANONICAL_COLUMNS
from ocdec.io import read_provenance
from ocdec.methods.default.method import ClusterPriors, MemberSettings
from synthetic_field import synthetic_field

SUMMARY_KEYS = {"n_stars", "n_members", "pmra", "pmra_error", "pmdec", "pmdec_error", "parallax",
                "parallax_error", "ra", "dec", "r50_deg", "seeds", "seed_jaccard",
                "seed_jaccard_min", "method", "runtime_s", "status", "parameters", "stages"}
HISTORY = ["seed", "phase", "epoch", "loss", "label_change"]


@pytest.fixture(scope="module")
def field() -> pd.DataFrame:
    return synthetic_field(n_field=3000, n_cluster=200)


def test_default_products_follow_the_contract(field, tmp_path) -> None:
    stars = field.drop(columns=["true_member"])
    summary = characterize(stars, tmp_path, seed=2, n_seeds=3,
                           settings=MemberSettings(run_dec=False), provenance={"source": "test"})
    members = pd.read_parquet(tmp_path / "members.parquet")
    assert list(members.columns[:4]) == ["source_id", "p_member", "member", "group"]
    assert list(members.columns[4:]) == [c for c in CANONICAL_COLUMNS if c != "source_id"]
    assert len(members) == len(stars)
    assert np.array_equal(members["source_id"], stars["source_id"])
    assert members["p_member"].between(0, 1).all()
    assert np.array_equal(members["member"], members["p_member"] >= 0.5)
    assert read_provenance(tmp_path / "members.parquet")["source"] == "test"

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(saved)
    assert saved["method"] == "default" and saved["status"] == "found"
    assert saved["seeds"] == [2, 3, 4]
    assert saved["n_members"] == int(members["member"].sum()) == summary["n_members"]
    # Top-level numbers are the members' parameters: means weighted by error and spread.
    sel = members[members["member"]]
    for col in ("pmra", "parallax"):
        x, e = sel[col].to_numpy(), sel[f"{col}_error"].to_numpy()
        w = 1 / (e**2 + max(x.var(ddof=1) - np.mean(e**2), 0))
        assert saved[col] == pytest.approx(np.sum(w * x) / np.sum(w))
        assert saved[f"{col}_error"] == pytest.approx(1 / math.sqrt(w.sum()))
    assert "robust" in saved["parameters"]
    truth = field["true_member"].to_numpy()
    tp = int((members["member"].to_numpy() & truth).sum())
    assert 2 * tp / (members["member"].sum() + truth.sum()) > 0.95
    hist = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert list(hist.columns) == HISTORY
    assert not (tmp_path / "silhouette.tsv").exists()


def test_rows_without_ids_use_row_numbers(field, tmp_path) -> None:
    stars = field.drop(columns=["true_member", "source_id"])
    characterize(stars, tmp_path, n_seeds=1, settings=MemberSettings(run_dec=False))
    members = pd.read_parquet(tmp_path / "members.parquet")
    assert np.array_equal(members["source_id"], np.arange(len(stars)))


@pytest.mark.slow  # thesis mode trains DEC on the whole field (JAX compilation)
def test_thesis_products(field, tmp_path) -> None:
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.thesis import ThesisSettings

    settings = ThesisSettings(k_values=(2, 3), dec=DecSettings(pretrain_epochs=1,
                                                               cluster_epochs=1))
    characterize(field.drop(columns=["true_member"]), tmp_path, method="thesis",
                 settings=settings, priors=ClusterPriors(pmra=-5.0, pmdec=3.0, parallax=1.0))
    members = pd.read_parquet(tmp_path / "members.parquet")
    for col in ("kmeans_group", "kmeans_member", "dec_group", "dec_member",
                "dec_filtered_member"):
        assert col in members
    assert np.array_equal(members["member"], members["dec_filtered_member"])
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["method"] == "thesis"
    assert set(saved["selections"]) == {"kmeans", "dec", "dec_filtered"}
    assert saved["n_members"] == saved["selections"]["dec_filtered"]["n_members"]
    sil = pd.read_csv(tmp_path / "silhouette.tsv", sep="\t")
    assert list(sil.columns) == ["k", "silhouette"] and list(sil["k"]) == [2, 3]
    assert list(pd.read_csv(tmp_path / "history.tsv", sep="\t").columns) == HISTORY


def test_skipped_region_still_writes_every_product(field, tmp_path) -> None:
    summary = write_skipped(tmp_path, "default", field.head(10), "too few usable stars")
    assert summary["status"] == "skipped" and summary["n_members"] == 0
    members = pd.read_parquet(tmp_path / "members.parquet")
    assert len(members) == 10 and not members["member"].any()
    assert (members["group"] == -1).all()
    assert json.loads((tmp_path / "summary.json").read_text())["reason"] == "too few usable stars"
    assert (tmp_path / "history.tsv").exists()


def test_cli_reads_vizier_names_and_writes_products(field, tmp_path, capsys) -> None:
    vizier = pd.DataFrame({
        "Source": field["source_id"], "RA_ICRS": field["ra"], "DE_ICRS": field["dec"],
        "Plx": field["parallax"], "e_Plx": field["parallax_error"], "pmRA": field["pmra"],
        "pmDE": field["pmdec"], "Gmag": field["phot_g_mean_mag"],
    })
    path = tmp_path / "field.csv"
    vizier.to_csv(path, index=False)
    out = tmp_path / "out"
    code = main(["characterize", str(path), "--out", str(out), "--ra", "120", "--dec", "-30",
                 "--radius", "0.5", "--pm-prior", "-4", "2", "--parallax-prior", "0.9",
                 "--seed", "1", "--n-seeds", "2", "--no-dec"])
    assert code == 0
    assert "members of" in capsys.readouterr().out
    saved = json.loads((out / "summary.json").read_text())
    assert saved["seeds"] == [1, 2]
    assert saved["priors"]["parallax"] == 0.9
    assert saved["pmra"] == pytest.approx(-5.0, abs=0.05)


@pytest.mark.parametrize("case", ["no_parallax", "all_nan", "too_few", "negative_radius"])
def test_cli_bad_input_one_line_error(field, tmp_path, capsys, case) -> None:
    stars = field.drop(columns=["true_member"])
    extra: list[str] = []
    if case == "no_parallax":
        stars = stars.drop(columns=["parallax", "parallax_error"])
    elif case == "all_nan":
        stars[["parallax", "pmra", "pmdec"]] = np.nan
    elif case == "too_few":
        stars = stars.head(12)
    else:
        extra = ["--ra", "1", "--dec", "2", "--radius", "-1"]
    path = tmp_path / "stars.csv"
    stars.to_csv(path, index=False)
    code = main(["characterize", str(path), "--out", str(tmp_path / "o"), "--no-dec", *extra])
    err = capsys.readouterr().err.strip().splitlines()  # log lines (INFO) may precede it
    assert code == 2
    errors = [line for line in err if line.startswith("ocdec characterize: error:")]
    assert len(errors) == 1 and err[-1] == errors[0]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "o" / "summary.json").exists()


def test_faint_members_do_not_pull_the_mean() -> None:
    """A distant cluster: 50 bright members at parallax 0.15 +- 0.01 and 400 faint ones with
    errors of 0.5 mas drawn low by chance; the weighted mean stays at the cluster's, the plain
    mean does not, and the spread is still the members' own."""
    from ocdec.methods.astrometry import cluster_parameters, weighted_mean

    rng = np.random.default_rng(3)
    e = np.r_[np.full(50, 0.01), np.full(400, 0.5)]
    x = 0.15 + e * rng.standard_normal(e.size) - np.r_[np.zeros(50), np.full(400, 0.1)]
    mean, err = weighted_mean(x, e)
    assert abs(mean - 0.15) < 0.01 and abs(x.mean() - 0.15) > 0.05
    assert err == pytest.approx(1 / math.sqrt(np.sum(1 / e**2)), rel=0.2)
    stars = pd.DataFrame({"parallax": x, "parallax_error": e})
    params = cluster_parameters(stars, np.ones(e.size, bool))
    assert params["parallax"] == pytest.approx(mean)
    assert params["parallax_std"] == pytest.approx(x.std(ddof=1))
