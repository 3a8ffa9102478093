"""HDBSCAN (Hunt & Reffert 2023) as a plug-in method: found by the registry, picks the group
compatible with the catalogue, runs through characterize, the CLI and the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ocdec import cli
from ocdec.characterize import characterize, find_members, method_settings
from ocdec.errors import OcdecError
from ocdec.methods.hdbscan import HdbscanSettings
from ocdec.methods.priors import ClusterPriors
from ocdec.methods.registry import REGISTRY, get_method
from synthetic_field import synthetic_field

TWO = dict(cluster=(-5.0, 3.0, 1.0), second=(4.0, -6.0, 1.6))


def f1(truth: np.ndarray, member: np.ndarray) -> float:
    tp = int((truth & member).sum())
    return 2 * tp / max(int(truth.sum() + member.sum()), 1)


def test_registry_loads_hdbscan_with_its_settings() -> None:
    method = get_method("hdbscan")
    assert method.name == "hdbscan" and "hdbscan" in REGISTRY
    settings = method_settings("hdbscan", {"hdbscan": {"min_cluster_size": 25}, "threshold": 0.7})
    assert settings == HdbscanSettings(min_cluster_size=25)  # members are the group: no threshold
    with pytest.raises(OcdecError, match="characterize.hdbscan.min_cluster"):
        method_settings("hdbscan", {"hdbscan": {"min_cluster": 25}})


def test_hdbscan_recovers_a_synthetic_cluster() -> None:
    stars = synthetic_field()
    result = find_members(stars, method="hdbscan",
                          priors=ClusterPriors(ra=120.0, dec=-30.0, radius_deg=1.0))
    truth = stars["true_member"].to_numpy(bool)
    assert f1(truth, result.member) > 0.9
    assert abs(result.parameters["pmra"] + 5.0) < 0.05
    assert np.all(result.p_member[~result.member] == 0)
    assert result.summary["n_groups"] >= 1


@pytest.mark.parametrize(("pm", "plx", "want"), [((-5.0, 3.0), 1.0, 0), ((4.0, -6.0), 1.6, 1)])
def test_hdbscan_picks_the_group_of_the_catalogue_priors(pm, plx, want) -> None:
    stars = synthetic_field(**TWO)
    priors = ClusterPriors(pmra=pm[0], pmdec=pm[1], parallax=plx)
    result = find_members(stars, method="hdbscan", priors=priors)
    picked = stars.loc[result.member]
    assert abs(picked["pmra"].median() - pm[0]) < 0.2, picked["pmra"].median()
    assert result.member.sum() > 200
    other = stars["true_member"].to_numpy(bool) if want else ~stars["true_member"].to_numpy(bool)
    assert (result.member & other).sum() < (result.member.sum() * 0.1 if want else 300)


def test_hdbscan_without_compatible_group_is_not_found(tmp_path: Path) -> None:
    """No compatible group is a result (issue 10): no members and the reason, exit 0."""
    stars = synthetic_field(n_field=3000, n_cluster=0)
    result = find_members(stars, method="hdbscan",
                          priors=ClusterPriors(pmra=-5.0, pmdec=3.0, parallax=1.0),
                          settings=HdbscanSettings(min_cluster_size=1000))
    assert not result.member.any() and "none compatible" in result.summary["reason"]
    field = tmp_path / "field.csv"
    stars.drop(columns=["true_member"]).to_csv(field, index=False)
    rc = cli.main(["characterize", str(field), "--out", str(tmp_path / "out"), "--method",
                   "hdbscan", "--settings", str(_settings(tmp_path)), "--pm-prior", "-5", "3",
                   "--parallax-prior", "1"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert rc == 0 and summary["status"] == "not_found" and summary["n_members"] == 0
    assert (tmp_path / "out" / "groups.tsv").exists()
    with pytest.raises(OcdecError, match="needs more than min_cluster_size"):
        find_members(stars.head(50), method="hdbscan",
                     settings=HdbscanSettings(min_cluster_size=100))


def _settings(tmp_path: Path) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text("hdbscan: {min_cluster_size: 1000}\n")
    return path


def test_cli_runs_hdbscan_and_writes_the_products(tmp_path: Path) -> None:
    field = tmp_path / "field.csv"
    synthetic_field().drop(columns=["true_member"]).to_csv(field, index=False)
    rc = cli.main(["characterize", str(field), "--out", str(tmp_path / "out"),
                   "--method", "hdbscan", "--ra", "120", "--dec", "-30", "--radius", "1"])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["method"] == "hdbscan" and 250 < summary["n_members"] < 400
    members = pd.read_parquet(tmp_path / "out" / "members.parquet")
    assert int(members["member"].sum()) == summary["n_members"]


def test_characterize_writes_one_method_folder_per_method(tmp_path: Path) -> None:
    stars = synthetic_field()
    out = {}
    for method in ("hdbscan", "default"):
        settings = (method_settings(method, {"default": {"run_dec": False}})
                    if method == "default" else None)
        out[method] = characterize(stars, tmp_path / method, method=method, settings=settings,
                                   n_seeds=2)
    assert abs(out["hdbscan"]["pmra"] - out["default"]["pmra"]) < 0.05
    from ocdec.results.comparison import comparison_table

    table = comparison_table([], {"default": out["default"], "hdbscan": out["hdbscan"]})
    assert list(table["method"]) == ["default", "hdbscan"]
