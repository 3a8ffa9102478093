"""The default method on real Gaia fields, scored against published member lists (issue 3).

Priors are the Dias et al. (2002) catalogue's (centre, 1.5 x radius, distance -> parallax, pre-Gaia
proper motion), read from ../shared/data/openclust_dias2002 as the pipeline reads them; never the
literature answer. Scores: p_member >= 0.5 against Cantat-Gaudin et al. 2018 members with
p >= 0.5 (Gaia Collaboration 2018 where CG18 lacks the cluster), stars with G <= 18 inside the
field. These run the full default method: p_member is the 5-seed mean of DEC's soft assignment
(the mixture only initialises DEC).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ocdec.characterize import characterize
from ocdec.cli import main
from ocdec.data.columns import read_stars
from ocdec.methods.default.method import ClusterPriors, MemberSettings
from ocdec.results.validation import read_published, score_members

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

DEFAULT = MemberSettings()

# field file, Dias region id, published list (path under data, Cluster selector), F1 to reach
CASES = {
    "praesepe": ("ngc2632_praesepe_dr2_r2deg_plxcut.csv", "NGC_2632",
                 ("members/cg2018_per_cluster/NGC_2632.csv", None), 0.96),
    "alpha_per": ("melotte20_alphaper_dr2_r2deg_plxcut.csv", "Melotte_20",
                  ("babusiaux2018_A10/GaiaHRD_tab1a.tsv", "alphaPer"), 0.96),
    "ngc188": ("ngc188_dr2_r1deg_plx0.4-0.7.csv", "NGC_188",
               ("members/cg2018_per_cluster/NGC_188.csv", None), 0.97),
    "rup147": ("ngc6774_rup147_dr2_r2deg_plxgt1.csv.gz", "Ruprecht_147",
               ("babusiaux2018_A10/GaiaHRD_tab1b.tsv", "NGC6774"), 0.85),
}


@pytest.fixture(scope="module")
def dias(shared_data: Path) -> pd.DataFrame:
    from ocdec.data.catalogue import read_dias_catalogue, regions_from_catalogue

    table = read_dias_catalogue(shared_data / "openclust_dias2002")
    return regions_from_catalogue(table, min_diameter_arcmin=0.0).set_index("id")


def dias_priors(dias: pd.DataFrame, region: str) -> ClusterPriors:
    row = dias.loc[region]

    def value(key: str) -> float | None:
        v = float(row[key])
        return v if math.isfinite(v) else None

    return ClusterPriors(ra=value("ra"), dec=value("dec"), radius_deg=value("radius_deg"),
                         pmra=value("pmra_prior"), pmdec=value("pmdec_prior"),
                         parallax=value("parallax_prior"))


def _run(shared_data: Path, tmp_path: Path, field: str, priors: ClusterPriors,
         published: tuple[str, str | None]) -> dict:
    stars = read_stars(shared_data / "fields" / field)
    characterize(stars, tmp_path, priors=priors, settings=DEFAULT)
    members = pd.read_parquet(tmp_path / "members.parquet")
    return score_members(members, read_published(shared_data / published[0], published[1]))


@pytest.mark.parametrize("case", list(CASES))
def test_default_with_dias_priors(shared_data, dias, tmp_path, case) -> None:
    field, region, published, target = CASES[case]
    s = _run(shared_data, tmp_path, field, dias_priors(dias, region), published)
    assert s["n_truth"] > 100
    assert s["f1"] >= target, s
    assert abs(s["offset_pmra"]) <= 0.10 and abs(s["offset_pmdec"]) <= 0.10, s
    assert abs(s["offset_parallax"]) <= 0.02, s
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed_jaccard_min"] > 0.9
    assert summary["stages"]["dec"] > 0 and summary["diagnostics"]["dec_stars"] > 100


@pytest.mark.parametrize("case", ["praesepe", "ngc188", "rup147"])
def test_default_without_any_prior(shared_data, tmp_path, case) -> None:
    field, _, published, target = CASES[case]
    s = _run(shared_data, tmp_path, field, ClusterPriors(), published)
    assert s["f1"] >= target, s


def teachastro(shared_data: Path, name: str) -> pd.DataFrame:
    return read_stars(shared_data / "fields" / f"teachastro_{name}_dr3_astrometry_only.csv.gz")


def hunt_members_in_field(shared_data: Path, cluster: str, stars: pd.DataFrame) -> np.ndarray:
    """Rows of a TeachAstro field (DR3, no ids, no positions) that are Hunt & Reffert (2023)
    members with p > 0.5: both are DR3, so G and parallax match exactly (to the field's
    rounding)."""
    root = shared_data / "members" / "hunt2023_nearby_clusters"
    ids = set(json.loads((root / "hunt2023.json").read_text())[cluster])
    astro = json.loads((root / "hunt2023-astro.json").read_text())
    keys = {(round(v["gmag"], 3), round(v["plx"], 3)) for k, v in astro.items() if k in ids}
    g, plx = stars["phot_g_mean_mag"].to_numpy(), stars["parallax"].to_numpy()
    return np.array([(round(a, 3), round(b, 3)) in keys for a, b in zip(g, plx, strict=True)])


@pytest.fixture(scope="module")
def hyades(shared_data, dias, tmp_path_factory) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """204k DR3 stars with no ids and no positions; the Dias prior is only a distance."""
    stars = teachastro(shared_data, "Hyades")
    priors = dias_priors(dias, "Melotte_25")
    assert priors.pmra is None  # Dias has no proper motion for the Hyades; no positions either
    out = tmp_path_factory.mktemp("hyades")
    summary = characterize(stars, out, priors=priors, settings=DEFAULT)
    return summary, pd.read_parquet(out / "members.parquet"), stars


def test_hyades_in_an_astrometry_only_field(hyades) -> None:
    summary, members, stars = hyades
    assert 80 <= summary["n_members"] <= 400
    assert abs(summary["parallax"] - 21.1) <= 0.3
    assert summary["seed_jaccard_min"] > 0.9
    assert np.array_equal(members["source_id"], np.arange(len(stars)))


def test_hyades_proper_motion_is_that_of_its_published_members_in_this_field(
        shared_data, hyades) -> None:
    """The issue asks for pm within 3 mas/yr of the whole cluster's (104.1, -28.7). The Hunt &
    Reffert members inside this field (the cluster's core, about 3 deg) move at about
    (105.9, -25.3): 3.6 mas/yr from the whole-cluster mean, because the Hyades spans 10-20 deg
    and its proper motions change across the sky. So the yardstick is the published members that
    are in the field, as for every other field."""
    summary, members, stars = hyades
    truth = hunt_members_in_field(shared_data, "Hyades", stars)
    assert truth.sum() > 80
    pm_truth = stars.loc[truth, ["pmra", "pmdec"]].mean().to_numpy()
    assert math.hypot(pm_truth[0] - 104.1, pm_truth[1] + 28.7) > 3.0  # why the yardstick
    assert math.hypot(summary["pmra"] - pm_truth[0], summary["pmdec"] - pm_truth[1]) <= 1.5
    # 0.3 mas, the issue's: ocdec also keeps stars that the HR23 p > 0.5 list lacks, many of them
    # bright (G 3.4 to 8) with Hyades parallaxes and motions.
    assert abs(summary["parallax"] - stars.loc[truth, "parallax"].mean()) <= 0.3
    member = members["member"].to_numpy()
    assert (member & truth).sum() / truth.sum() >= 0.9


def test_hyades_found_without_any_prior(shared_data) -> None:
    """No prior and no positions: at one 1 km/s cell the Hyades's spread-out proper motions lose
    to a compact co-moving group at 7 mas (Taurus); the search at a wider cell finds it."""
    from ocdec.methods.default.method import run_default

    stars = teachastro(shared_data, "Hyades")
    result = run_default(stars, ClusterPriors(), DEFAULT)
    truth = hunt_members_in_field(shared_data, "Hyades", stars)
    pm_truth = stars.loc[truth, ["pmra", "pmdec"]].mean().to_numpy()
    assert abs(result.model["parallax"] - 21.1) <= 0.3
    assert math.hypot(result.model["pmra"] - pm_truth[0],
                      result.model["pmdec"] - pm_truth[1]) <= 1.5
    assert (result.member & truth).sum() / truth.sum() >= 0.9


def test_held_out_pleiades_deep_dr3_field(shared_data, dias, tmp_path) -> None:
    """TeachAstro Pleiades (257k DR3 stars to G 22, no ids or positions), not tuned on."""
    stars = teachastro(shared_data, "Pleiades")
    summary = characterize(stars, tmp_path, priors=dias_priors(dias, "Melotte_22"),
                           settings=DEFAULT)
    member = pd.read_parquet(tmp_path / "members.parquet")["member"].to_numpy()
    truth = hunt_members_in_field(shared_data, "Pleiades", stars)
    assert truth.sum() > 500
    assert (member & truth).sum() / truth.sum() >= 0.95
    # Hunt & Reffert list 1,721 Pleiades members, only 1,014 of them with p > 0.5.
    assert member.sum() <= 2 * truth.sum()
    for col, tol in (("pmra", 0.1), ("pmdec", 0.1), ("parallax", 0.02)):
        assert abs(summary[col] - stars.loc[truth, col].mean()) <= tol, col


# Hunt & Reffert (2023) DR3 means and member counts (SOURCES.md section 6)
DEEP = {"NGC188": ("NGC_188", (-2.318, -1.015, 0.523), 1338),
        "M67": ("NGC_2682", (-10.965, -2.906, 1.150), 1844)}


@pytest.mark.parametrize("name", list(DEEP))
def test_held_out_deep_dr3_fields(shared_data, dias, tmp_path, name) -> None:
    """TeachAstro NGC 188 and M67 to G = 20 (no ids or positions), not tuned on. Faint stars'
    errors exceed these clusters' widths many times over: they keep the deconvolved mixture's
    posterior, and the members do not swell with the faint field."""
    region, (pmra, pmdec, plx), n_hr = DEEP[name]
    summary = characterize(teachastro(shared_data, name), tmp_path,
                           priors=dias_priors(dias, region), settings=DEFAULT)
    assert 0.6 * n_hr <= summary["n_members"] <= 1.6 * n_hr
    assert math.hypot(summary["pmra"] - pmra, summary["pmdec"] - pmdec) <= 0.1
    assert abs(summary["parallax"] - plx) <= 0.03
    assert summary["diagnostics"]["error_dominated"] > 0
    assert summary["seed_jaccard_min"] > 0.9


def test_held_out_ngc103_dr3_box(shared_data, dias, tmp_path) -> None:
    """A clipped DR3 box (not centred on the cluster), VizieR column names; not tuned on."""
    stars = read_stars(shared_data / "fields" / "ngc103_dr3_box_G18.5_asteca.csv")
    summary = characterize(stars, tmp_path, priors=dias_priors(dias, "NGC_103"), settings=DEFAULT)
    # No member list for this field; SOURCES.md describes its cluster as pm about (-2.8, -1.3),
    # parallax 0.30 (verified there), so the check is loose.
    assert summary["n_members"] > 100
    assert math.hypot(summary["pmra"] + 2.8, summary["pmdec"] + 1.2) < 0.3
    assert abs(summary["parallax"] - 0.30) < 0.03


def test_dec_run_on_praesepe_through_the_command_line(shared_data, dias, tmp_path, capsys) -> None:
    field, region, published, target = CASES["praesepe"]
    p = dias_priors(dias, region)
    out = tmp_path / "out"
    code = main(["characterize", str(shared_data / "fields" / field), "--out", str(out),
                 "--ra", str(p.ra), "--dec", str(p.dec), "--radius", str(p.radius_deg),
                 "--pm-prior", str(p.pmra), str(p.pmdec), "--parallax-prior", str(p.parallax)])
    assert code == 0
    scores = out / "scores.json"
    assert main(["validate", str(out / "members.parquet"), "--published",
                 str(shared_data / published[0]), "--json", str(scores)]) == 0
    assert json.loads(scores.read_text())["f1"] >= target
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert set(history["seed"]) == {0, 1, 2, 3, 4}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["dec"] > 0 and summary["diagnostics"]["dec_stars"] > 100
